"""The agent on generative data: 30% of the training responses swapped between unrelated prompts (issue 10).

    python benchmarks/generative.py                              # both sets
    taskset -c 0 python benchmarks/generative.py --sets dialogue --threads 1

Per set, a seeded sample of the shared data (sizes below; SmolLM2 fine-tuning runs at about 1 pair/s on one CPU
core), then 30% of the training pairs corrupted: their responses permuted among themselves so that none keeps its
own (each goes to an unrelated prompt). Nobody is told the rate or which pairs. Four methods, each one
``autoft.train`` of the packaged SmolLM2-135M-Instruct with LoRA and the same training settings:

- ``all data``: plain fine-tuning on every pair (``selection.policy: none``);
- ``agent``: ``selection.policy: reinforce`` with every other selection setting at its default: the base model's
  prompt gain and the mismatch share it estimates on the validation pairs set how many pairs are left out
  (``drop_fraction: auto``), its estimator starts from the posterior of a matched response and is rewarded by the
  fall of the validation loss four times an epoch;
- ``static``: ``small-loss``, the pairs with the highest base-model loss of their response left out (ranking by
  base-model loss, no learning), at the agent's drop fraction;
- ``random``: a seeded random set of pairs left out, at the agent's drop fraction.

The agent's runs reserve half of the validation pairs for its reward (``selection.reward_fraction`` 0.5, the
default); the other half chooses the best epoch in every run (``all data`` is given that half alone). Training:
2 epochs, learning rate 1e-3 (near the 1.1e-3 the learning-rate range test chose for these sets in
``benchmarks/tasks.py``), batch 8, seed 0 — fixed, so that every method trains under the
same settings. Reported: the test metric and loss (the best epoch's model), the validation loss of the
best epoch on the validation half every run keeps, the share of the corrupted pairs left out (recall) and
the share of the left-out pairs that were corrupted (precision) by the last selection, and the wall-clock of each
``train`` call (the agent's includes valuing the pairs; static and random read the base model's losses from the
cache the agent's run left, so their valuation costs nothing). The base model's zero-shot score is from the
``all data`` run.

Writes ``benchmarks/results/generative.json`` and ``generative.md`` (rows of sets not run are kept).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from public_data import load_public, shared_root
from result_files import write_result

import autoft
from autoft.data.loading import Example
from autoft.data.splits import split_validation
from autoft.data.writing import write_examples
from autoft.modeling.load import resolve_model_name

log = logging.getLogger("benchmarks.generative")
RESULTS = Path(__file__).resolve().parent / "results"
SETS = {  # public name, label, metric, second metric, sizes, max new tokens
    "summarization": ("scitldr", "SciTLDR-A", "rouge1", "rougeL", {"train": 100, "validation": 40, "test": 40}, 48),
    "dialogue": ("sgd_responses", "SGD responses", "rougeL", "bleu", {"train": 240, "validation": 60, "test": 80}, 40),
}
CORRUPTED = 0.3
TRAINING = {"epochs": 2, "learning_rate": 1e-3, "batch_size": 8, "seed": 0, "progress": False}
METHODS = ("all data", "agent", "static", "random")
POLICIES = {"all data": "none", "agent": "reinforce", "static": "small-loss", "random": "random"}


def corrupt(train: list[Example], rate: float, seed: int) -> tuple[list[Example], np.ndarray]:
    """A ``rate`` share of the pairs with their responses permuted among themselves, none keeping its own."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(train), round(rate * len(train)), replace=False))
    shift = rng.permutation(rows)
    while np.any(shift == rows):  # a derangement: no pair keeps its own response
        shift = rng.permutation(rows)
    out = list(train)
    for row, donor in zip(rows, shift):
        out[row] = Example(train[row].text, train[donor].label, train[row].origin, train[row].source)
    truth = np.zeros(len(train), dtype=bool)
    truth[rows] = True
    return out, truth


def _sample(examples: list[Example], size: int, seed: int) -> list[Example]:
    keep = np.random.default_rng(seed).permutation(len(examples))[:size]
    return [examples[i] for i in sorted(keep)]


def _left_out(run_dir: Path, n: int) -> np.ndarray:
    path = run_dir / "data_values.csv"
    left = np.zeros(n, dtype=bool)
    if path.exists():
        for row in csv.DictReader(path.open(encoding="utf-8")):
            left[int(row["row_id"])] = row["flagged"] == "True"
    return left


def run_set(name: str, root: Path, args: argparse.Namespace, work: Path) -> dict:
    public, label, metric, also, sizes, max_new_tokens = SETS[name]
    splits = load_public(public, root)
    scale = args.scale
    splits = {split: _sample(splits[split], max(round(scale * size), 8), args.seed) for split, size in sizes.items()}
    splits["train"], truth = corrupt(splits["train"], CORRUPTED, args.seed)
    files = {
        split: str(write_examples(work / name / split, examples, task="generation"))
        for split, examples in splits.items()
    }
    # The agent's runs reward it on half of the validation pairs; every run chooses its best epoch on the other.
    stopping, _ = split_validation(splits["validation"], fraction=0.5, seed=args.seed, stratify=False)
    plain_files = {**files, "validation": str(write_examples(work / name / "stopping", stopping, task="generation"))}
    generation = {"max_new_tokens": max(round(scale * max_new_tokens), 4)}
    os.environ["AUTOFT_CACHE"] = str(work / "cache")  # cold: the agent's valuation is timed in full
    resolve_model_name("default-generative")  # (the packaged model's one-off conversion is not)
    rows, drop = {}, None
    for method in METHODS:
        selection = {"policy": POLICIES[method]}
        if method in ("static", "random"):
            selection["drop_fraction"] = drop
        started = time.perf_counter()
        run = autoft.train(
            {
                "task": "generation",
                "data": plain_files if method == "all data" else files,
                "training": TRAINING,
                "generation": generation,
                "selection": selection,
                "output_dir": str(work / name / method.replace(" ", "-")),
            },
            zero_shot=method == "all data",
        )
        wall = time.perf_counter() - started
        if method == "agent":
            drop = run.config.selection.drop_fraction
        left = _left_out(run.path, len(truth))
        test = run.metrics["test"]
        rows[method] = {
            "metric": test[metric],
            also: test[also],
            "test_loss": test["loss"],
            "validation_loss": run.metrics["validation"]["loss"],
            "left_out": int(left.sum()),
            "corrupted_left_out": float(left[truth].mean()),
            "precision": float(truth[left].mean()) if left.any() else None,
            "estimated_rate": (run.metrics.get("noise") or {}).get("rate"),
            "best_epoch": run.metrics["best_epoch"],
            "wall_seconds": round(wall, 1),
            **(
                {
                    "zero_shot": {
                        metric: run.metrics["zero_shot"][metric],
                        also: run.metrics["zero_shot"][also],
                        "loss": run.metrics["zero_shot"]["loss"],
                    }
                }
                if method == "all data"
                else {}
            ),
        }
        log.info("%s / %s: %s", name, method, rows[method])
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True, cwd=Path(__file__).parent
    ).stdout.strip()
    return {
        "data": label,
        "metric": metric,
        "also": also,
        "sizes": {k: len(v) for k, v in splits.items()},
        "corrupted": int(truth.sum()),
        "methods": rows,
        "commit": commit,
    }


def table(results: dict[str, dict]) -> str:
    lines = []
    for name, result in results.items():
        sizes, metric, also = result["sizes"], result["metric"], result["also"]
        zero = result["methods"]["all data"]["zero_shot"]
        lines += [
            (
                f"**{name}: {result['data']}** ({sizes['train']} / {sizes['validation']} / {sizes['test']} pairs, "
                f"{result['corrupted']} training responses swapped; zero-shot {metric} {zero[metric]:.3f}, "
                f"test loss {zero['loss']:.3f})"
            ),
            "",
            (
                f"| method | test {metric} | test {also} | test loss | validation loss | left out | corrupted "
                "left out | precision | wall s |"
            ),
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for method, row in result["methods"].items():
            precision = "–" if row["precision"] is None else f"{row['precision']:.0%}"
            lines.append(
                f"| {method} | {row['metric']:.3f} | {row[also]:.3f} | {row['test_loss']:.3f} | "
                f"{row['validation_loss']:.3f} | {row['left_out']} | {row['corrupted_left_out']:.0%} | "
                f"{precision} | {row['wall_seconds']:.0f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", choices=sorted(SETS), default=sorted(SETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0, help="scale every size (a smoke run: 0.1)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--data-root", help="shared data folder (default: ../shared/data beside the checkout)")
    parser.add_argument("--output", type=Path, default=RESULTS / "generative.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    if args.threads:
        torch.set_num_threads(args.threads)
    root = shared_root(args.data_root)
    results = json.loads(args.output.read_text())["sets"] if args.output.exists() else {}
    with tempfile.TemporaryDirectory() as work:
        for name in args.sets:
            results[name] = run_set(name, root, args, Path(work))
            write_result(args.output, {"command": "python benchmarks/generative.py", "sets": results}, table(results))


if __name__ == "__main__":
    main()
