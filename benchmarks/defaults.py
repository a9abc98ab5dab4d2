"""Out-of-the-box defaults against a manual grid (issue 7).

For each shared data set and training-size slice, plain fine-tuning of the packaged MiniLM runs
once with *no* ``training:`` section (learning rate, epochs and batch size all ``auto``) and once per
cell of a manual grid — learning rate {2e-5, 5e-5, 1e-4, 2e-4} × epochs {3, 5, 10}, early stopping on
validation (patience 2 on the validation metric, batch 32: the usual manual recipe). The best cell is chosen on validation and reported on
test; the default is reported on test too. Wall-clock is the fit time (learning-rate search, training
epochs and their validation passes), not the final test pass, which costs the same for every run.

    python benchmarks/defaults.py                                   # everything (many CPU hours)
    python benchmarks/defaults.py --datasets tweeteval_emotion --slices 500
    taskset -c 1 python benchmarks/defaults.py --threads 1 ...      # one core, next to other work

Slices: ``500`` / ``1500`` are seeded random subsets of the training split (seed 0), with a validation
set of max(200, N/5) rows drawn the same way from the given validation split; ``full`` uses the
splits of ../shared/data/README.md. The test split is always the full given one.

Grid cells do not depend on the defaults, so their results are cached in
``benchmarks/results/defaults_cells.jsonl`` (keyed by data set, slice, rate, epochs, seed and threads)
and reused by later invocations (``--fresh`` re-runs them); the default runs are always re-run.
Writes ``benchmarks/results/defaults.json`` and ``defaults.md``. ``--no-ceiling --output
benchmarks/results/defaults_no_ceiling.json`` runs the control without the ceiling on the rate for long runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from public_data import NAMES, load_public, task_of
from result_files import write_result

import autoft
from autoft.data.writing import write_examples
from autoft.io import read_jsonl
from autoft.training import plan

RESULTS = Path(__file__).resolve().parent / "results"
GRID_LRS = (2e-5, 5e-5, 1e-4, 2e-4)
GRID_EPOCHS = (3, 5, 10)
MANUAL = {"batch_size": 32, "early_stopping_patience": 2, "early_stopping_on": "metric", "on_plateau": "continue"}
"""What a grid cell fixes besides rate and epochs: the usual manual recipe (transformers' EarlyStoppingCallback
on the validation metric, patience 2; batch 32)."""
PRIMARY = {"classification": "macro_f1", "token-classification": "f1"}
TOLERANCE = {"classification": 0.01, "token-classification": 0.02}
log = logging.getLogger("defaults")


def slice_files(dataset: str, size: str, folder: Path, *, seed: int, root: str | None) -> dict[str, str]:
    """Write the slice's train / validation / test files under ``folder``."""
    splits = load_public(dataset, root)
    if size != "full":
        n = int(size)
        rng = np.random.default_rng(seed)
        train = [splits["train"][i] for i in sorted(rng.permutation(len(splits["train"]))[:n])]
        n_val = min(len(splits["validation"]), max(200, n // 5))
        validation = [splits["validation"][i] for i in sorted(rng.permutation(len(splits["validation"]))[:n_val])]
        splits = {"train": train, "validation": validation, "test": splits["test"]}
    return {name: str(write_examples(folder / name, examples)) for name, examples in splits.items()}


def train_once(dataset: str, files: dict[str, str], work: Path, training: dict[str, Any], seed: int) -> dict[str, Any]:
    """One plain fine-tuning run; ``training`` is the config's training section (empty: all defaults)."""
    config = {
        "task": task_of(dataset),
        "data": files,
        "output_dir": str(work / "run"),
        "training": {**training, "seed": seed, "progress": False},
    }
    run = autoft.train(config, overwrite=True)
    metrics = run.metrics
    primary = PRIMARY[run.task]
    return {
        "validation": metrics["validation"][primary],
        "test": metrics["test"][primary],
        "test_accuracy": metrics["test"].get("accuracy"),
        "best_epoch": metrics["best_epoch"],
        "epochs_run": len(metrics["epochs"]),
        "stopped_early": metrics["stopped_early"],
        "rollbacks": metrics.get("rollbacks", []),
        "validation_curve": [round(e["validation"][primary], 4) for e in metrics["epochs"]],
        "fit_seconds": metrics["fit_seconds"],
        "wall_seconds": metrics["wall_seconds"],
        "settings": {
            k: metrics["training"][k]
            for k in ("learning_rate", "head_learning_rate", "epochs", "batch_size")
            if k in metrics["training"]
        },
        "auto": metrics.get("auto"),
        "sizes": metrics["sizes"],
    }


def load_cells(path: Path) -> dict[str, dict[str, Any]]:
    """Cached grid cells; a line cut short by a killed run is ignored (that cell runs again)."""
    return {record["key"]: record for record in read_jsonl(path)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", choices=NAMES, default=list(NAMES))
    parser.add_argument("--slices", nargs="+", default=["500", "1500", "full"])
    parser.add_argument("--lrs", nargs="+", type=float, default=list(GRID_LRS))
    parser.add_argument("--grid-epochs", nargs="+", type=int, default=list(GRID_EPOCHS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--data-root", help="shared data folder (default: ../shared/data beside the checkout)")
    parser.add_argument("--skip-grid", action="store_true", help="only the default runs (uses cached cells)")
    parser.add_argument("--skip-default", action="store_true", help="only the grid")
    parser.add_argument(
        "--no-ceiling",
        action="store_true",
        help="a control: the default without the ceiling on the rate for long runs (the encoder and "
        "the head both at the range test's rate); write it to another --output",
    )
    parser.add_argument("--fresh", action="store_true", help="re-run cached grid cells")
    parser.add_argument("--cells", type=Path, default=RESULTS / "defaults_cells.jsonl")
    parser.add_argument("--output", type=Path, default=RESULTS / "defaults.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)

    if args.no_ceiling:
        if args.output == RESULTS / "defaults.json":
            parser.error("--no-ceiling is a control: give it its own --output")
        plan.horizon_ceiling = lambda *_: math.inf
    cells = {} if args.fresh else load_cells(args.cells)
    for dataset in args.datasets:
        for size in args.slices:
            name = f"{dataset}/{size}"
            with tempfile.TemporaryDirectory() as work:
                work = Path(work)
                files = slice_files(dataset, size, work / "data", seed=args.seed, root=args.data_root)
                entry: dict[str, Any] = {}
                grid = []
                for lr in args.lrs:
                    for epochs in args.grid_epochs:
                        key = f"{name}|lr={lr:g}|epochs={epochs}|seed={args.seed}|threads={args.threads}"
                        if key not in cells and not args.skip_grid:
                            log.info("grid %s", key)
                            cell = train_once(
                                dataset, files, work, {"learning_rate": lr, "epochs": epochs, **MANUAL}, args.seed
                            )
                            cells[key] = {"key": key, "learning_rate": lr, "epochs": epochs, **cell}
                            with args.cells.open("a", encoding="utf-8") as stream:
                                stream.write(json.dumps(cells[key]) + "\n")
                        if key in cells:
                            grid.append(cells[key])
                if grid:
                    best = max(grid, key=lambda c: c["validation"])
                    entry["grid"] = [
                        {
                            k: c[k]
                            for k in (
                                "learning_rate",
                                "epochs",
                                "validation",
                                "test",
                                "best_epoch",
                                "epochs_run",
                                "fit_seconds",
                            )
                        }
                        for c in grid
                    ]
                    entry["best_cell"] = best
                    entry["grid_complete"] = len(grid) == len(args.lrs) * len(args.grid_epochs)
                if not args.skip_default:
                    log.info("default %s", name)
                    entry["default"] = train_once(dataset, files, work, {}, args.seed)
                entry["task"] = task_of(dataset)
                entry["threads"] = args.threads
            summarise(entry)
            results = save(args.output, name, entry)
    print(table(results))


def save(output: Path, name: str, entry: dict[str, Any]) -> dict[str, Any]:
    """Merge one set's entry into the result file (other sets, perhaps from another process, stay) and
    rewrite the markdown table; returns all sets."""
    results = json.loads(output.read_text())["sets"] if output.exists() else {}
    if "default" not in entry and "default" in results.get(name, {}):
        entry = {**results[name], **entry}  # a grid-only pass keeps the last default run
        summarise(entry)
    results[name] = entry
    results = dict(sorted(results.items(), key=lambda item: _order(item[0])))
    write_result(output, {"sets": results}, table(results), echo=False)
    return results


def _order(name: str) -> tuple[int, int]:
    dataset, size = name.split("/")
    return NAMES.index(dataset), 10**9 if size == "full" else int(size)


def summarise(entry: dict[str, Any]) -> None:
    default, best = entry.get("default"), entry.get("best_cell")
    if not default or not best:
        return
    entry["gap"] = round(best["test"] - default["test"], 4)
    entry["wall_ratio"] = round(default["fit_seconds"] / max(best["fit_seconds"], 1e-9), 3)
    entry["met"] = bool(entry["gap"] <= TOLERANCE[entry["task"]] and entry["wall_ratio"] <= 1.3)


HEADER = (
    "| set / train rows | default test | rate (head), epochs planned / run (best) | best cell test (rate × epochs) | gap "
    "| default fit s | best cell fit s | ratio | met |"
)


def _default_cells(default: dict[str, Any] | None) -> tuple[str, str, str]:
    if not default:
        return "–", "–", "–"
    settings = default["settings"]
    head = settings.get("head_learning_rate", (default.get("auto") or {}).get("head_learning_rate", {}).get("value"))
    rate = f"{settings['learning_rate']:.2g}"
    if head is not None and head != settings["learning_rate"]:
        rate += f" (head {head:.2g})"
    chosen = f"{rate}, {settings['epochs']} / {default['epochs_run']} ({default['best_epoch']})"
    return f"{default['test']:.3f}", chosen, f"{default['fit_seconds']:.0f}"


def _best_cells(entry: dict[str, Any]) -> tuple[str, str]:
    best = entry.get("best_cell")
    if not best:
        return "–", "–"
    partial = "" if entry.get("grid_complete") else " (partial grid)"
    return f"{best['test']:.3f} ({best['learning_rate']:g} × {best['epochs']}){partial}", f"{best['fit_seconds']:.0f}"


def table(results: dict[str, Any]) -> str:
    lines = [HEADER, "|---|---:|---|---:|---:|---:|---:|---:|---|"]
    for name, entry in results.items():
        test, chosen, fit = _default_cells(entry.get("default"))
        best, best_fit = _best_cells(entry)
        gap = f"{entry['gap'] * 100:+.1f}" if "gap" in entry else "–"
        ratio = f"{entry['wall_ratio']:.2f}" if "wall_ratio" in entry else "–"
        met = ("yes" if entry["met"] else "no") if "met" in entry else "–"
        lines.append(f"| {name} | {test} | {chosen} | {best} | {gap} | {fit} | {best_fit} | {ratio} | {met} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
