"""Multi-label classification on a real set: the dialogue acts of Schema-Guided Dialogue's user turns.

    python benchmarks/multilabel.py                       # 2,000 training turns, every training setting auto
    python benchmarks/multilabel.py --train-limit 0       # every training turn (12,472)

The set (``benchmarks/public_data.py``, ``sgd_acts``): each USER turn of SGD → the set of dialogue acts its frames
annotate (11 acts; a third of the turns carry two or more); train / validation / test by the shared folder's
file split. A seeded sample of ``--train-limit`` training turns and ``--validation-limit`` validation turns,
every test turn.

Rows, all on the same data:

- ``autoft``: ``autoft train`` with ``task: multi-label-classification`` and no ``training:`` section; per-label
  thresholds tuned on validation;
- ``autoft, thresholds 0.5``: the same model, every threshold 0.5 (what tuning the thresholds adds);
- ``frozen MiniLM + one-vs-rest logistic regression``: scikit-learn on the packaged encoder's mean-pooled
  embeddings (what a user would glue together without fine-tuning), thresholds 0.5.

Writes ``benchmarks/results/multilabel_sgd_acts.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from public_data import load_public
from result_files import write_result

import autoft
from autoft.data.writing import write_examples

RESULTS = Path(__file__).resolve().parent / "results"


def frozen_baseline(splits: dict, labels: list[str], seed: int) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.multiclass import OneVsRestClassifier

    from autoft.selection.embeddings import embed_examples

    def xy(examples):
        x = embed_examples("default", examples, max_length=64, progress=False)
        y = np.array([[label in e.label for label in labels] for e in examples], dtype=int)
        return x, y

    (x_train, y_train), (x_test, y_test) = xy(splits["train"]), xy(splits["test"])
    model = OneVsRestClassifier(LogisticRegression(max_iter=2000, C=1.0, random_state=seed)).fit(x_train, y_train)
    predicted = model.predict(x_test)
    return {
        "micro_f1": float(f1_score(y_test, predicted, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y_test, predicted, average="macro", zero_division=0)),
        "subset_accuracy": float((predicted == y_test).all(axis=1).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-limit", type=int, default=2000, help="a seeded sample of N training turns (0: all)")
    parser.add_argument("--validation-limit", type=int, default=500)
    parser.add_argument("--test-limit", type=int, default=0, help="a seeded sample of N test turns (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", help="shared data folder (default: ../shared/data beside the checkout)")
    parser.add_argument("--output", type=Path, default=RESULTS / "multilabel_sgd_acts.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    splits = load_public("sgd_acts", args.data_root)
    for name, limit in (("train", args.train_limit), ("validation", args.validation_limit), ("test", args.test_limit)):
        if limit and limit < len(splits[name]):  # a seeded sample, kept in file order
            rows = np.sort(np.random.default_rng(args.seed).permutation(len(splits[name]))[:limit])
            splits[name] = [splits[name][i] for i in rows]
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as work:
        files = {name: str(write_examples(Path(work) / name, examples)) for name, examples in splits.items()}
        started = time.perf_counter()
        run = autoft.train(
            {
                "task": "multi-label-classification",
                "data": files,
                "output_dir": str(Path(work) / "run"),
                "training": {"seed": args.seed, "progress": False},
            }
        )
        wall = time.perf_counter() - started
        keep = ("micro_f1", "macro_f1", "subset_accuracy")
        rows["autoft"] = {
            **{k: run.metrics["test"][k] for k in keep},
            "wall_seconds": round(wall, 1),
            "thresholds": run.adapter.decision["thresholds"],
            "settings": {k: run.config.training.model_dump()[k] for k in ("learning_rate", "epochs")},
            "best_epoch": run.metrics.get("best_epoch"),
        }
        run.adapter.decision = {"thresholds": {label: 0.5 for label in run.labels}}
        plain = run.evaluate(splits["test"])
        rows["autoft, thresholds 0.5"] = {k: plain[k] for k in keep}
        labels = run.labels
    started = time.perf_counter()
    rows["frozen MiniLM + one-vs-rest logistic regression"] = {
        **frozen_baseline(splits, labels, args.seed),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    sizes = {name: len(examples) for name, examples in splits.items()}
    lines = [
        (
            f"SGD user-turn dialogue acts ({len(labels)} acts), train / validation / test = "
            f"{sizes['train']} / {sizes['validation']} / {sizes['test']} turns, packaged MiniLM, seed {args.seed}."
        ),
        "",
        "| method | test micro-F1 | test macro-F1 | subset accuracy | wall s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        wall = f"{r['wall_seconds']:.0f}" if "wall_seconds" in r else "–"
        lines.append(f"| {name} | {r['micro_f1']:.3f} | {r['macro_f1']:.3f} | {r['subset_accuracy']:.3f} | {wall} |")
    text = "\n".join(lines) + "\n"
    write_result(args.output, {"args": {k: str(v) for k, v in vars(args).items()}, "sizes": sizes, "rows": rows}, text)


if __name__ == "__main__":
    main()
