"""Fixed learning rates and epochs for LoRA / IA3 on a slice of TweetEval emotion: the evidence behind
``training.peft``'s rate band and epoch factor (``autoft.training.plan``). Validation decides; test is reported.

    python benchmarks/peft_rates.py lora:2e-3:auto ia3:1e-2:auto lora:2e-3:12    # method:rate:epochs cells

Each cell trains the packaged MiniLM with ``training.peft: METHOD`` on ``defaults.py``'s 1,500-row slice (seed
0), the rate and epochs given (``auto``: autoft's choice at the commit it runs on; every record holds the epochs
used), and appends one JSON line (rate, epochs planned / run / best, validation and test macro-F1, the
validation curve) to ``benchmarks/results/peft_rate_sweep_tweeteval_1500.jsonl`` or ``--output``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from defaults import slice_files  # benchmarks/defaults.py, beside this script

import autoft

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cells", nargs="+", help="method:rate:epochs, e.g. lora:1e-3:auto")
    parser.add_argument("--train-limit", default="1500")
    parser.add_argument("--data-root", help="shared data folder (default: ../shared/data beside the checkout)")
    parser.add_argument("--output", type=Path, default=RESULTS / "peft_rate_sweep_tweeteval_1500.jsonl")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        files = slice_files("tweeteval_emotion", args.train_limit, Path(work), seed=0, root=args.data_root)
        for cell in args.cells:
            method, rate, epochs = cell.split(":")
            training = {
                "peft": method,
                "seed": 0,
                "progress": False,
                "learning_rate": rate if rate == "auto" else float(rate),
                "epochs": epochs if epochs == "auto" else int(epochs),
            }
            run = autoft.train(
                {"task": "classification", "data": files, "output_dir": str(Path(work) / "run"), "training": training},
                overwrite=True,
            )
            m = run.metrics
            record = {
                "method": method,
                "lr": m["training"]["learning_rate"],
                "epochs": m["training"]["epochs"],
                "best_epoch": m["best_epoch"],
                "epochs_run": len(m["epochs"]),
                "validation": m["validation"]["macro_f1"],
                "test": m["test"]["macro_f1"],
                "fit_seconds": m["fit_seconds"],
                "curve": [round(e["validation"]["macro_f1"], 3) for e in m["epochs"]],
                "auto": m.get("auto"),
            }
            with args.output.open("a", encoding="utf-8") as stream:
                stream.write(json.dumps(record) + "\n")
            print(record, flush=True)


if __name__ == "__main__":
    main()
