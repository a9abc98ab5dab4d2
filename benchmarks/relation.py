"""Relation extraction on SemEval-2010 Task 8: entity-start pooling against a sequence classifier.

    python benchmarks/relation.py                          # 2,000 training sentences, every setting auto
    python benchmarks/relation.py --train-limit 0          # all 7,200 (8,000 less the validation part)

Data (../shared/data/semeval2010_task8): TRAIN_FILE.TXT, of which a seeded 800 sentences are validation and a
seeded ``--train-limit`` of the rest train; TEST_FILE_FULL.TXT (2,717) is the test set. Score: the official one
(macro-F1 over the nine relation types, ``Other`` left out, direction counted), by ``autoft.tasks.relation``
(tested equal to the official Perl scorer).

Rows, each ``autoft train`` with no ``training:`` section on the same files:

- ``relation-extraction``: entity-marker tokens and the relation read at the two entity starts;
- ``classification on the marked text``: the same sentences, markers left as plain text, a sequence
  classifier (the first token's pooled representation) — what the entity-start pooling is measured against.

Writes ``benchmarks/results/relation_semeval.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from public_data import shared_root
from result_files import write_result

import autoft
from autoft.data.loading import load_examples
from autoft.data.writing import write_examples
from autoft.tasks.relation import official_scores

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--train-limit", type=int, default=2000, help="a seeded sample of N training sentences (0: all)"
    )
    parser.add_argument("--validation", type=int, default=800)
    parser.add_argument("--test-limit", type=int, default=0, help="a seeded sample of N test sentences (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", help="shared data folder (default: ../shared/data beside the checkout)")
    parser.add_argument("--output", type=Path, default=RESULTS / "relation_semeval.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    folder = shared_root(args.data_root) / "semeval2010_task8"
    pool = load_examples(folder / "TRAIN_FILE.TXT", task="relation-extraction")
    test = load_examples(folder / "TEST_FILE_FULL.TXT", task="relation-extraction")
    order = np.random.default_rng(args.seed).permutation(len(pool))
    validation = [pool[i] for i in sorted(order[: args.validation])]
    rest = order[args.validation :]
    train = [pool[i] for i in sorted(rest[: args.train_limit] if args.train_limit else rest)]
    if args.test_limit:
        test = [test[i] for i in sorted(np.random.default_rng(args.seed).permutation(len(test))[: args.test_limit])]
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as work:
        files = {
            name: str(write_examples(Path(work) / name, examples))
            for name, examples in (("train", train), ("validation", validation), ("test", test))
        }
        for name, task in (
            ("relation-extraction", "relation-extraction"),
            ("classification on the marked text", "classification"),
        ):
            started = time.perf_counter()
            run = autoft.train(
                {
                    "task": task,
                    "data": files,
                    "output_dir": str(Path(work) / task),
                    "training": {"seed": args.seed, "progress": False},
                }
            )
            wall = time.perf_counter() - started
            predicted = [p["label"] for p in run.predict(test)]
            scores = official_scores([e.label for e in test], predicted)
            rows[name] = {
                "macro_f1": scores["macro_f1"],
                "micro_f1": scores["micro_f1"],
                "accuracy": float(np.mean([e.label == p for e, p in zip(test, predicted)])),
                "validation": run.metrics["validation"].get("macro_f1"),
                "wall_seconds": round(wall, 1),
                "learning_rate": run.config.training.learning_rate,
                "best_epoch": run.metrics["best_epoch"],
            }
    lines = [
        (
            f"SemEval-2010 Task 8, train / validation / test = {len(train)} / {len(validation)} / {len(test)} "
            f"sentences, packaged MiniLM, every training setting auto, seed {args.seed}. Test score: the official "
            "macro-F1 (9 relation types, direction counted)."
        ),
        "",
        "| model | test macro-F1 (official) | test micro-F1 | accuracy (19 labels) | wall s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['macro_f1']:.3f} | {r['micro_f1']:.3f} | {r['accuracy']:.3f} | {r['wall_seconds']:.0f} |"
        )
    text = "\n".join(lines) + "\n"
    write_result(
        args.output,
        {
            "args": {k: str(v) for k, v in vars(args).items()},
            "sizes": {"train": len(train), "validation": len(validation), "test": len(test)},
            "rows": rows,
        },
        text,
    )


if __name__ == "__main__":
    main()
