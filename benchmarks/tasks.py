"""Every task family on its shared data set: one table of zero-shot and fine-tuned scores (issue 10).

    python benchmarks/tasks.py                                  # every family
    python benchmarks/tasks.py --families question-answering   # one
    taskset -c 1 python benchmarks/tasks.py --threads 1 ...     # one core, next to other work

Each row is one ``autoft.train`` with no ``training:`` section (every setting ``auto``: for generative tasks LoRA
on the packaged SmolLM2-135M-Instruct) on the task's default model, seed 0, with the splits of
../shared/data/README.md. The generative sets are cut to seeded samples (sizes in the table; CPU generation is
slow); ``--train-limit`` caps any family's training rows the same way. The zero-shot score is the model before fine-tuning on the same test set,
as ``autoft train`` records it for text-target tasks (``metrics.json`` ``zero_shot``); a task that starts from a
new, untrained head (relation extraction) has none. Wall-clock is the whole ``train`` call (loading, the
learning-rate search, training, the zero-shot and the final test pass), cold model cache.

Families:
- ``relation-extraction``: SemEval-2010 Task 8, the official macro-F1 (9 relations, direction counted);
- ``question-answering``: XQuAD English (articles 0–35 / 36–39 / 40–47), SQuAD token F1 and exact match;
- ``summarization``: SciTLDR-A, abstract → TLDR, ROUGE-1 (and ROUGE-L) against every reference TLDR;
- ``translation``: Multi30k English → German, sacreBLEU (and chrF);
- ``dialogue``: Schema-Guided Dialogue, the last turns → the system's next turn, ROUGE-L (and sacreBLEU).

Writes ``benchmarks/results/tasks.json`` and ``tasks.md`` (rows of families not run are kept from the last file).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from public_data import load_public, shared_root
from result_files import write_result

import autoft
from autoft.data.loading import load_examples
from autoft.data.writing import write_examples

log = logging.getLogger("benchmarks.tasks")
RESULTS = Path(__file__).resolve().parent / "results"
ANCHORS = {
    "relation-extraction": "BERT-base entity start ≈ 0.89 (Baldini Soares et al. 2019)",
    "question-answering": "–",
    "summarization": "BART-large ROUGE-1 ≈ 0.37 (Cachola et al. 2020)",
    "translation": "trained transformers BLEU ≈ 0.35–0.40 (test2016)",
    "dialogue": "–",
}


def _relation(root: Path, seed: int) -> dict:
    folder = root / "semeval2010_task8"
    pool = load_examples(folder / "TRAIN_FILE.TXT", task="relation-extraction")
    order = np.random.default_rng(seed).permutation(len(pool))
    return {
        "data": "SemEval-2010 Task 8",
        "metric": "macro_f1",
        "splits": {
            "train": [pool[i] for i in sorted(order[800:])],
            "validation": [pool[i] for i in sorted(order[:800])],
            "test": load_examples(folder / "TEST_FILE_FULL.TXT", task="relation-extraction"),
        },
    }


def _qa(root: Path, seed: int) -> dict:
    return {"data": "XQuAD-en", "metric": "f1", "also": "exact_match", "splits": load_public("xquad", root)}


def _generative(name: str, data: str, metric: str, also: str, limits: dict[str, int], max_new_tokens: int):
    def load(root: Path, seed: int) -> dict:
        splits = load_public(name, root)
        for split, limit in limits.items():
            keep = np.random.default_rng(seed).permutation(len(splits[split]))[:limit]
            splits[split] = [splits[split][i] for i in sorted(keep)]
        return {
            "data": data,
            "metric": metric,
            "also": also,
            "splits": splits,
            "config": {"generation": {"max_new_tokens": max_new_tokens}},
        }

    return load


FAMILIES = {
    "relation-extraction": ("relation-extraction", _relation),
    "question-answering": ("question-answering", _qa),
    "summarization": (
        "generation",
        _generative("scitldr", "SciTLDR-A", "rouge1", "rougeL", {"train": 150, "validation": 40, "test": 60}, 48),
    ),
    "translation": (
        "generation",
        _generative("multi30k", "Multi30k en→de", "bleu", "chrf", {"train": 600, "validation": 60, "test": 150}, 48),
    ),
    "dialogue": (
        "generation",
        _generative(
            "sgd_responses", "SGD responses", "rougeL", "bleu", {"train": 400, "validation": 60, "test": 100}, 40
        ),
    ),
}


def run_family(name: str, root: Path, args: argparse.Namespace, work: Path) -> dict:
    task, load = FAMILIES[name]
    spec = load(root, args.seed)
    splits = spec["splits"]
    if args.train_limit and len(splits["train"]) > args.train_limit:
        keep = np.random.default_rng(args.seed).permutation(len(splits["train"]))[: args.train_limit]
        splits["train"] = [splits["train"][i] for i in sorted(keep)]
    files = {split: str(write_examples(work / name / split, examples, task=task)) for split, examples in splits.items()}
    started = time.perf_counter()
    run = autoft.train(
        {
            "task": task,
            "data": files,
            "output_dir": str(work / name / "run"),
            "training": {"seed": args.seed, "progress": False},
            **spec.get("config", {}),
        }
    )
    wall = time.perf_counter() - started
    metric = spec["metric"]
    zero = (run.metrics.get("zero_shot") or {}).get(metric)
    row = {
        "task": name if task == "generation" else task,
        "data": spec["data"],
        "model": run.config.model,
        "method": run.config.training.peft.method if run.config.training.peft else "full",
        "train": len(splits["train"]),
        "validation": len(splits["validation"]),
        "test": len(splits["test"]),
        "metric": metric,
        "zero_shot": zero,
        "fine_tuned": run.metrics["test"][metric],
        "validation_scores": {k: v for k, v in run.metrics["validation"].items() if isinstance(v, float)},
        "test_loss": run.metrics["test"].get("loss"),
        "zero_shot_loss": (run.metrics.get("zero_shot") or {}).get("loss"),
        "wall_seconds": round(wall, 1),
        "learning_rate": run.config.training.learning_rate,
        "epochs_run": len(run.metrics["epochs"]),
        "best_epoch": run.metrics["best_epoch"],
        "anchor": ANCHORS.get(name, "–"),
    }
    row["commit"] = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True, cwd=Path(__file__).parent
    ).stdout.strip()
    if spec.get("also"):
        row["also"] = {
            spec["also"]: run.metrics["test"][spec["also"]],
            "zero_shot": (run.metrics.get("zero_shot") or {}).get(spec["also"]),
        }
    log.info("%s: %s", name, row)
    return row


MODEL_NAMES = {"default": "MiniLM-L6 (packaged)", "default-generative": "SmolLM2-135M-Instruct (packaged)"}


def table(rows: dict[str, dict]) -> str:
    lines = [
        (
            "| task | data (train / val / test) | model | method | metric | zero-shot | fine-tuned | wall s | "
            "published anchor |"
        ),
        "|---|---|---|---|---|---:|---:|---:|---|",
    ]
    for row in rows.values():
        zero = "–" if row["zero_shot"] is None else f"{row['zero_shot']:.3f}"
        also = ""
        if row.get("also"):
            ((key, value),) = [(k, v) for k, v in row["also"].items() if k != "zero_shot"]
            z = row["also"]["zero_shot"]
            also = f" ({key} {'–' if z is None else f'{z:.3f}'} → {value:.3f})"
        lines.append(
            f"| {row['task']} | {row['data']} ({row['train']} / {row['validation']} / {row['test']}) | "
            f"{MODEL_NAMES.get(row['model'], row['model'])} | {row['method']} | {row['metric']}{also} | {zero} | {row['fine_tuned']:.3f} | "
            f"{row['wall_seconds']:.0f} | {row['anchor']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", choices=sorted(FAMILIES), default=sorted(FAMILIES))
    parser.add_argument("--train-limit", type=int, default=0, help="a seeded sample of N training rows (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--data-root", help="shared data folder (default: ../shared/data beside the checkout)")
    parser.add_argument("--output", type=Path, default=RESULTS / "tasks.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    if args.threads:
        torch.set_num_threads(args.threads)
    root = shared_root(args.data_root)
    rows = json.loads(args.output.read_text())["rows"] if args.output.exists() else {}
    with tempfile.TemporaryDirectory() as work:
        for name in args.families:
            rows[name] = run_family(name, root, args, Path(work))
            write_result(args.output, {"command": "python benchmarks/tasks.py", "rows": rows}, table(rows))


if __name__ == "__main__":
    main()
