"""Parameter-efficient fine-tuning against full fine-tuning, with the agent on and off (issue 9).

(Not ``peft.py``: a script of that name would shadow the ``peft`` library it benchmarks.)

    python benchmarks/peft_vs_full.py                                     # TweetEval emotion and BTC NER, 1500 rows
    python benchmarks/peft_vs_full.py --datasets tweeteval_emotion --methods full lora --agents off
    taskset -c 1 python benchmarks/peft_vs_full.py --threads 1 ...        # one core, next to other work

For each data set (``defaults.py``'s slices: a seeded ``--train-limit`` training rows, a validation set of
max(200, N/5) rows drawn the same way, the full test split; ../shared/data, see its README) and each method — ``full`` (every
weight trains), ``lora`` and ``ia3`` (``training.peft``, the library's defaults: LoRA r 8 on every linear
layer of the encoder; IA3 on peft's modules for BERT) — the packaged MiniLM is fine-tuned with every other
setting left ``auto`` (the range test picks the rate within the method's band, epochs stop early), once with
the agent off (``selection.policy: none``) and once on (the default agent, ``exp3``). Each run is a fresh
process, so its peak resident memory is its own.

Per run: trainable and total parameters, training samples/s (mean over epochs), peak RSS, the chosen rate,
epochs run, fit seconds, validation and test primary metric (macro-F1 / entity F1). Results are appended to
``benchmarks/results/peft_vs_full_runs.jsonl`` as they finish (a re-run skips the runs recorded there unless
``--fresh``) and summarised in ``peft_vs_full.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from result_files import write_result

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = {"full": None, "lora": "lora", "ia3": "ia3"}
AGENTS = {"off": "none", "on": "exp3"}
PRIMARY = {"classification": "macro_f1", "token-classification": "f1"}


def one_run(
    dataset: str, method: str, agent: str, size: int, seed: int, threads: int, root: str | None
) -> dict[str, Any]:
    """One fine-tuning run in this (fresh) process; its peak RSS is the process's."""
    import torch
    from defaults import slice_files  # benchmarks/defaults.py, beside this script
    from public_data import task_of

    import autoft

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as work:
        files = slice_files(dataset, str(size), Path(work), seed=0, root=root)  # the defaults benchmark's slices
        training: dict[str, Any] = {"seed": seed, "progress": False}
        if METHODS[method] is not None:
            training["peft"] = METHODS[method]
        config = {
            "task": task_of(dataset),
            "data": files,
            "output_dir": str(Path(work) / "run"),
            "training": training,
            "selection": {"policy": AGENTS[agent]},
        }
        run = autoft.train(config, overwrite=True)
        metrics = run.metrics
    primary = PRIMARY[run.task]
    return {
        "dataset": dataset,
        "method": method,
        "agent": agent,
        "train_rows": size,
        "seed": seed,
        "trainable_parameters": metrics["parameters"]["trainable"],
        "parameters": metrics["parameters"]["total"],
        "samples_per_second": round(float(np.mean([e["samples_per_second"] for e in metrics["epochs"]])), 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "learning_rate": metrics["training"]["learning_rate"],
        "epochs_run": len(metrics["epochs"]),
        "best_epoch": metrics["best_epoch"],
        "fit_seconds": metrics["fit_seconds"],
        "validation": metrics["validation"][primary],
        "test": metrics["test"][primary],
    }


def key(record: dict[str, Any]) -> str:
    return "|".join(str(record[k]) for k in ("dataset", "train_rows", "method", "agent", "seed"))


def load_runs(path: Path) -> dict[str, dict[str, Any]]:
    """Recorded runs; a line cut short by a killed run is ignored (that run goes again)."""
    from autoft.io import read_jsonl

    return {key(record): record for record in read_jsonl(path)}


def table(records: list[dict[str, Any]]) -> str:
    header = (
        "| data set | method | agent | trainable params | samples/s | peak RSS MB | rate | epochs | test | validation |"
    )
    lines = [header, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        lines.append(
            f"| {r['dataset']}/{r['train_rows']} | {r['method']} | {r['agent']} | "
            f"{r['trainable_parameters']:,} ({100 * r['trainable_parameters'] / r['parameters']:.2f}%) | "
            f"{r['samples_per_second']:.1f} | {r['peak_rss_mb']:.0f} | {r['learning_rate']:.2g} | "
            f"{r['epochs_run']} ({r['best_epoch']}) | {r['test']:.3f} | {r['validation']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=["tweeteval_emotion", "btc_ner"],
        choices=["tweeteval_emotion", "banking77", "btc_ner"],
    )
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--agents", nargs="+", default=list(AGENTS), choices=list(AGENTS))
    parser.add_argument("--train-limit", type=int, default=1500, help="training rows of each slice")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each run")
    parser.add_argument("--data-root", help="shared data folder (default: ../shared/data beside the checkout)")
    parser.add_argument("--fresh", action="store_true", help="re-run recorded runs")
    parser.add_argument("--runs", type=Path, default=RESULTS / "peft_vs_full_runs.jsonl")
    parser.add_argument("--output", type=Path, default=RESULTS / "peft_vs_full.json")
    args = parser.parse_args()

    recorded = {} if args.fresh else load_runs(args.runs)
    wanted = [(d, m, a) for d in args.datasets for m in args.methods for a in args.agents]
    context = multiprocessing.get_context("spawn")
    for dataset, method, agent in wanted:
        name = key(
            {"dataset": dataset, "train_rows": args.train_limit, "method": method, "agent": agent, "seed": args.seed}
        )
        if name in recorded:
            continue
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:  # a fresh process per run
            record = pool.submit(
                one_run, dataset, method, agent, args.train_limit, args.seed, args.threads, args.data_root
            ).result()
        recorded[name] = record
        args.runs.parent.mkdir(parents=True, exist_ok=True)
        with args.runs.open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")
        print(table([record]).splitlines()[-1], flush=True)

    records = [recorded[n] for n in recorded if n.split("|")[0] in args.datasets]
    records.sort(key=lambda r: (r["dataset"], list(METHODS).index(r["method"]), list(AGENTS).index(r["agent"])))
    text = (
        f"PEFT vs full fine-tuning, packaged MiniLM, every training setting auto, seed {args.seed}, "
        f"{args.threads} torch thread(s) per run; test: macro-F1 (TweetEval, BANKING77) / entity F1 (BTC). "
        f"Trainable parameters include the task head; epochs: run (best).\n\n" + table(records) + "\n"
    )
    write_result(args.output, {"args": {k: str(v) for k, v in vars(args).items()}, "runs": records}, text)


if __name__ == "__main__":
    main()
