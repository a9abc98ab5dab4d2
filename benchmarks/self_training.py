"""Learning without most labels (issue 8, part 3): labelled-only vs threshold self-training vs the agent.

A seeded ``--labelled`` share of the training split keeps its labels; the rest becomes an unlabelled pool
(``data.unlabeled``, texts only; ``--pool`` caps it). Validation and test are the given splits. Methods,
all with no ``training:`` section (the defaults) and the same labelled rows:

- ``labelled``: plain fine-tuning on the labelled rows only;
- ``threshold``: classic self-training — every pseudo-label above ``--threshold`` confidence joins the
  next epoch (``selection.self_training: threshold``), no agent;
- ``agent``: autoft's agent (``selection.self_training: agent``): pseudo-labels consistent across epochs,
  per-class thresholds at a precision target it chooses online on its validation part, class shares kept;
- ``agent+exp3``: the same plus the default data-selection agent over the labelled rows.

Per method and seed: test macro-F1 and accuracy, pseudo-labels admitted in the last epoch and their
accuracy against the pool's hidden labels (which no method sees), fit seconds.

    python benchmarks/self_training.py --dataset tweeteval_emotion --seeds 0
    taskset -c 1 python benchmarks/self_training.py --dataset banking77 --pool 3000 --threads 1

Writes ``benchmarks/results/self_training_<dataset>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from public_data import load_public, write_examples
from result_files import write_result

import autoft

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ("labelled", "threshold", "agent", "agent+exp3")
log = logging.getLogger("self_training")


def selection(method: str, threshold: float) -> dict[str, Any]:
    return {
        "labelled": {"self_training": "off"},
        "threshold": {"self_training": "threshold", "self_training_threshold": threshold},
        "agent": {"self_training": "agent"},
        "agent+exp3": {"self_training": "agent", "policy": "exp3"},
    }[method]


def run_method(method: str, files: dict[str, str], pool_truth: dict[str, str], work: Path, args) -> dict[str, Any]:
    config = {
        "task": "classification",
        "data": dict(files),
        "output_dir": str(work / method),
        "selection": selection(method, args.threshold),
        "training": {"seed": args.run_seed, "progress": False},
    }
    if method == "labelled":
        config["data"].pop("unlabeled")
    run = autoft.train(config, overwrite=True)
    metrics = run.metrics
    row = {
        "method": method,
        "test_macro_f1": metrics["test"]["macro_f1"],
        "test_accuracy": metrics["test"]["accuracy"],
        "validation_macro_f1": metrics["validation"]["macro_f1"],
        "best_epoch": metrics["best_epoch"],
        "epochs_run": len(metrics["epochs"]),
        "fit_seconds": metrics["fit_seconds"],
        "learning_rate": metrics["training"]["learning_rate"],
    }
    report = work / method / "self_training.json"
    if report.exists():
        admitted = json.loads(report.read_text())["admitted"]
        row["admitted"] = len(admitted)
        row["pseudo_label_accuracy"] = (
            float(np.mean([pool_truth[a["line"]] == a["pseudo_label"] for a in admitted])) if admitted else None
        )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="tweeteval_emotion", choices=("tweeteval_emotion", "banking77"))
    parser.add_argument("--labelled", type=float, default=0.1, help="share of the training split that keeps labels")
    parser.add_argument("--pool", type=int, default=None, help="at most this many unlabelled texts")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds of the labelled/unlabelled split")
    parser.add_argument("--run-seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--data-root")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)
    splits = load_public(args.dataset, args.data_root)
    output = args.output or RESULTS / f"self_training_{args.dataset}.json"
    rows = []
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(splits["train"]))
        n_labelled = round(args.labelled * len(order))
        labelled = [splits["train"][i] for i in sorted(order[:n_labelled])]
        pool = [splits["train"][i] for i in sorted(order[n_labelled:])][: args.pool]
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            files = {
                name: str(write_examples(folder / name, examples))
                for name, examples in (
                    ("train", labelled),
                    ("validation", splits["validation"]),
                    ("test", splits["test"]),
                )
            }
            unlabeled = folder / "unlabeled.txt"
            unlabeled.write_text("".join(" ".join(e.text.split()) + "\n" for e in pool), encoding="utf-8")
            files["unlabeled"] = str(unlabeled)
            truth = {f"{unlabeled}:{i}": e.label for i, e in enumerate(pool, start=1)}
            for method in args.methods:
                log.info("seed %d: %s (%d labelled, %d unlabelled)", seed, method, len(labelled), len(pool))
                row = run_method(method, files, truth, folder / "runs", args)
                rows.append({"seed": seed, "labelled": len(labelled), "unlabeled": len(pool), **row})
                log.info("%s", rows[-1])
                write(output, args, rows)


def write(output: Path, args, rows: list[dict[str, Any]]) -> None:
    summary = {}
    for method in METHODS:
        mine = [r for r in rows if r["method"] == method]
        if mine:
            f1 = [r["test_macro_f1"] for r in mine]
            summary[method] = {
                "test_macro_f1": float(np.mean(f1)),
                "std": float(np.std(f1)),
                "seeds": len(mine),
                "fit_seconds": float(np.mean([r["fit_seconds"] for r in mine])),
                "admitted": mine[-1].get("admitted"),
                "pseudo_label_accuracy": mine[-1].get("pseudo_label_accuracy"),
            }
    result = {
        "dataset": args.dataset,
        "labelled_share": args.labelled,
        "pool_cap": args.pool,
        "threshold": args.threshold,
        "rows": rows,
        "summary": summary,
    }
    base = summary.get("labelled", {}).get("test_macro_f1")
    lines = [
        "| method | test macro-F1 (mean ± std) | vs labelled-only | admitted (last epoch) | their accuracy | fit s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for method, s in summary.items():
        gain = f"{100 * (s['test_macro_f1'] - base):+.1f}" if base is not None else "—"
        accuracy = f"{s['pseudo_label_accuracy']:.3f}" if s["pseudo_label_accuracy"] is not None else "—"
        lines.append(
            f"| {method} | {s['test_macro_f1']:.3f} ± {s['std']:.3f} ({s['seeds']}) | {gain} | "
            f"{s['admitted'] if s['admitted'] is not None else '—'} | {accuracy} | {s['fit_seconds']:.0f} |"
        )
    write_result(output, result, "\n".join(lines), echo=False)


if __name__ == "__main__":
    main()
