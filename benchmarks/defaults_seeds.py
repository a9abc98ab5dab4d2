"""How much of a defaults-table gap is the training seed (issue 7).

``benchmarks/defaults.py`` compares one run of the default against one run of the best grid cell, both at
training seed 0. This script re-runs both on the same slice (the slice is still drawn with seed 0) at more
training seeds — the seed of batch order, dropout and the head's initialisation — and reports each seed's
test metric and the gap of the means. The best cell is the one ``defaults.json`` chose on validation at seed
0; nothing is chosen again.

    taskset -c 0 python benchmarks/defaults_seeds.py --threads 1 --datasets tweeteval_emotion --slices 500
    python benchmarks/defaults_seeds.py --seeds 1 2 ...        # seed 0 is read from defaults.json

Writes ``benchmarks/results/defaults_seeds.json`` and ``.md`` (runs are merged per set, seed and arm, so
processes on different sets can share the file).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from defaults import MANUAL, RESULTS, TOLERANCE, slice_files, train_once
from public_data import NAMES
from result_files import write_result

log = logging.getLogger("defaults_seeds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", choices=NAMES, default=list(NAMES))
    parser.add_argument("--slices", nargs="+", default=["500", "1500", "full"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--data-root", help="shared data folder (default: ../shared/data beside the checkout)")
    parser.add_argument("--defaults", type=Path, default=RESULTS / "defaults.json")
    parser.add_argument("--output", type=Path, default=RESULTS / "defaults_seeds.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)
    table = json.loads(args.defaults.read_text())["sets"]
    for dataset in args.datasets:
        for size in args.slices:
            name = f"{dataset}/{size}"
            entry = table.get(name, {})
            if "default" not in entry or "best_cell" not in entry:
                log.warning("%s: no default or best cell in %s, skipped", name, args.defaults)
                continue
            cell = entry["best_cell"]
            runs = {"default": {0: _summary(entry["default"])}, "best_cell": {0: _summary(cell)}}
            with tempfile.TemporaryDirectory() as work:
                work = Path(work)
                files = slice_files(dataset, size, work / "data", seed=0, root=args.data_root)
                for seed in args.seeds:
                    log.info("%s seed %d: default", name, seed)
                    runs["default"][seed] = _summary(train_once(dataset, files, work, {}, seed))
                    log.info("%s seed %d: best cell %g x %d", name, seed, cell["learning_rate"], cell["epochs"])
                    runs["best_cell"][seed] = _summary(
                        train_once(
                            dataset,
                            files,
                            work,
                            {"learning_rate": cell["learning_rate"], "epochs": cell["epochs"], **MANUAL},
                            seed,
                        )
                    )
            save(
                args.output,
                name,
                {
                    "task": entry["task"],
                    "cell": {k: cell[k] for k in ("learning_rate", "epochs")},
                    "threads": args.threads,
                    "runs": runs,
                },
            )
    print(markdown(json.loads(args.output.read_text())["sets"]))


def _summary(run: dict[str, Any]) -> dict[str, Any]:
    return {
        k: run[k] for k in ("validation", "test", "best_epoch", "epochs_run", "fit_seconds", "settings") if k in run
    }


def save(output: Path, name: str, entry: dict[str, Any]) -> None:
    """Merge ``entry``'s runs into the result file under a lock, then rewrite the markdown table."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with (output.with_suffix(".lock")).open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        sets = json.loads(output.read_text())["sets"] if output.exists() else {}
        old = sets.get(name, {}).get("runs", {})
        for arm, seeds in entry["runs"].items():
            entry["runs"][arm] = {**old.get(arm, {}), **{str(k): v for k, v in seeds.items()}}
        sets[name] = entry
        write_result(output, {"sets": sets}, markdown(sets), echo=False)


def markdown(sets: dict[str, Any]) -> str:
    lines = [
        (
            "| set / train rows | best cell | seeds | default test per seed | mean | best cell test per seed | mean "
            "| gap of means | within target | fit s, default / cell (mean) |"
        ),
        "|---|---|---|---|---:|---|---:|---:|---|---|",
    ]
    for name, entry in sets.items():
        runs = entry["runs"]
        seeds = sorted(set(runs["default"]) & set(runs["best_cell"]), key=int)
        default = [runs["default"][s]["test"] for s in seeds]
        cell = [runs["best_cell"][s]["test"] for s in seeds]
        gap = float(np.mean(cell) - np.mean(default))
        fit = (
            np.mean([runs["default"][s]["fit_seconds"] for s in seeds]),
            np.mean([runs["best_cell"][s]["fit_seconds"] for s in seeds]),
        )
        lines.append(
            f"| {name} | {entry['cell']['learning_rate']:g} × {entry['cell']['epochs']} | {', '.join(seeds)} "
            f"| {' / '.join(f'{x:.3f}' for x in default)} | {np.mean(default):.3f} "
            f"| {' / '.join(f'{x:.3f}' for x in cell)} | {np.mean(cell):.3f} | {gap * 100:+.1f} "
            f"| {'yes' if gap <= TOLERANCE[entry['task']] else 'no'} | {fit[0]:.0f} / {fit[1]:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
