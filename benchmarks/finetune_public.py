"""Clean fine-tuning of the packaged MiniLM on a shared public set, with autoft's loop.

    python benchmarks/finetune_public.py --dataset tweeteval_emotion
    python benchmarks/finetune_public.py --dataset btc_ner --max-length 64

Splits follow ../shared/data/README.md. Writes benchmarks/results/finetune_<dataset>.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from public_data import NAMES, materialise, task_of

import autoft

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=NAMES, required=True)
    parser.add_argument("--data-root", help="shared data folder (default: ../shared/data beside the checkout)")
    parser.add_argument("--model", default="default")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, help="result JSON (default: benchmarks/results/finetune_<dataset>.json)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    with tempfile.TemporaryDirectory() as work:
        files = materialise(args.dataset, Path(work) / "data", root=args.data_root)
        config = {
            "task": task_of(args.dataset),
            "model": args.model,
            "data": files,
            "training": {
                "epochs": args.epochs,
                "learning_rate": args.learning_rate,
                "batch_size": args.batch_size,
                "max_length": args.max_length,
                "seed": args.seed,
                "early_stopping_patience": args.patience,
                "progress": False,
            },
            "output_dir": str(Path(work) / "run"),
        }
        started = time.perf_counter()
        run = autoft.train(config)
        wall = time.perf_counter() - started
    test = {k: v for k, v in run.metrics["test"].items() if k != "report"}
    result = {
        "dataset": args.dataset,
        "config": {k: v for k, v in config.items() if k not in ("data", "output_dir")},
        "sizes": run.metrics["sizes"],
        "best_epoch": run.metrics["best_epoch"],
        "epochs": [
            {
                "epoch": e["epoch"],
                "train_loss": e["train_loss"],
                "samples_per_second": e["samples_per_second"],
                "validation": {k: v for k, v in e["validation"].items() if k != "report"},
            }
            for e in run.metrics["epochs"]
        ],
        "test": test,
        "test_report": run.metrics["test"]["report"],
        "wall_seconds": round(wall, 1),
    }
    output = args.output or RESULTS / f"finetune_{args.dataset}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        json.dumps(
            {
                "dataset": args.dataset,
                "test": test,
                "best_epoch": result["best_epoch"],
                "wall_seconds": result["wall_seconds"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
