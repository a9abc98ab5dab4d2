"""How well does autoft estimate a noise rate it is never told? Estimated vs injected label noise.

    python benchmarks/noise_rate.py                       # TweetEval, BANKING77, BTC NER; 3 noise seeds
    python benchmarks/noise_rate.py --datasets tweeteval_emotion --rates 0 0.2 0.4 --seeds 0 1 2

For each data set, noise kind, rate and noise seed, the training labels are corrupted (validation and
test stay clean) and autoft's offline valuation runs exactly as in ``autoft run`` with
``selection.drop_fraction: auto`` (``autoft.selection.agent.value_samples``: frozen-encoder features,
out-of-fold probes calibrated on the validation labels, EM over the label-transition matrix). Nothing
about the injected noise is passed to it. Reported: the estimated rate against the true share of wrong
labels (the real labels count as clean, so the 0% row also shows what the estimator makes of the data
sets' own annotation errors), the drop fraction ``auto`` resolves to, and the AUROC with which each
sample's posterior "this label is wrong" finds the injected flips — and that of the agents' offline
ranking (``suspicion``: the posterior, the validation-set probe and the neighbours). No fine-tuning: minutes on a CPU
once the features are cached.

Noise: ``symmetric`` replaces a label with probability r by another one drawn uniformly;
``asymmetric`` moves it to its class's most confusable class (``noisy_labels.confusable_classes``);
NER flips an entity's type (``noisy_ner.flip_entity_types``; the units are entities).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
from noisy_labels import confusable_classes, inject
from noisy_ner import entity_types, flip_entity_types
from public_data import load_public, task_of
from result_files import write_result
from sklearn.metrics import roc_auc_score

from autoft.config import parse_config
from autoft.data.loading import Example
from autoft.data.splits import Splits, sorted_labels
from autoft.selection.agent import value_samples

log = logging.getLogger("noise_rate")
RESULTS = Path(__file__).resolve().parent / "results"
NAMES = ("tweeteval_emotion", "banking77", "btc_ner")


def _splits(data: dict[str, list[Example]], labels: list) -> Splits:
    train = [Example(e.text, label, e.origin, e.source) for e, label in zip(data["train"], labels)]
    values = {v for e in train + data["validation"] for v in (e.label if isinstance(e.label, list) else [e.label])}
    return Splits(train, data["validation"], None, sorted_labels(values))


def one(name: str, data: dict, kind: str, rate: float, seed: int, args, confusable) -> dict:
    task = task_of(name)
    given = [e.label for e in data["train"]]
    if task == "token-classification":
        noisy = flip_entity_types(given, rate, seed, entity_types(data["train"]))[0] if rate else given
    else:
        noisy = inject(given, rate, kind, seed, confusable) if rate else given
    config = parse_config(
        {
            "task": task,
            "model": args.model,
            "data": {"train": "(in memory)"},
            "training": {"max_length": args.max_length, "seed": 0, "progress": False},
            "selection": {"policy": "suspicion"},
        }
    )
    started = time.perf_counter()
    valuation = value_samples(config, _splits(data, noisy), progress=False)
    seconds = time.perf_counter() - started
    units, noise = valuation.units, valuation.noise
    if task == "token-classification":  # a unit is wrong when its entity's given type differs from the real one
        from autoft.tasks.ner import bio_spans

        wrong = np.array(
            [
                {(f, la): k for k, f, la in bio_spans(given[owner])}.get(span) != units.class_names[label]
                for owner, span, label in zip(units.owner, units.spans, units.labels)
            ]
        )
    else:
        wrong = np.array([a != b for a, b in zip(given, noisy)])
    both = 0 < wrong.sum() < len(wrong)
    auroc = roc_auc_score(wrong, 1.0 - noise.correct) if both else None
    ranking = roc_auc_score(wrong, -valuation.policy.values_) if both else None
    return {
        "dataset": name,
        "kind": kind if task != "token-classification" else "entity-type",
        "rate": rate,
        "seed": seed,
        "units": len(wrong),
        "true_rate": float(wrong.mean()),
        "estimated_rate": noise.rate,
        "error": noise.rate - float(wrong.mean()),
        "drop_fraction": valuation.selection.drop_fraction,
        "auroc": auroc,
        "suspicion_auroc": ranking,
        "temperature": noise.temperature,
        "seconds": round(seconds, 1),
    }


def markdown(rows: list[dict]) -> str:
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["dataset"], row["kind"], row["rate"]), []).append(row)
    header = (
        "| data set | noise | injected | true share wrong (mean) | estimated (mean ± std) | max abs error | "
        "AUROC (posterior) | AUROC (suspicion) | seeds |"
    )
    lines = [header, "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for (name, kind, rate), items in groups.items():
        est = np.array([r["estimated_rate"] for r in items])
        auroc, ranking = (
            f"{np.mean(v):.3f}" if (v := [r[k] for r in items if r.get(k) is not None]) else "–"
            for k in ("auroc", "suspicion_auroc")
        )
        lines.append(
            f"| {name} | {kind} | {rate:.0%} | {np.mean([r['true_rate'] for r in items]):.3f} | "
            f"{est.mean():.3f} ± {est.std():.3f} | {max(abs(r['error']) for r in items):.3f} | {auroc} | {ranking} | "
            f"{len(items)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", choices=NAMES, default=list(NAMES))
    parser.add_argument("--rates", nargs="+", type=float, default=[0.0, 0.2, 0.4])
    parser.add_argument("--asymmetric-rates", nargs="+", type=float, default=[0.3])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--model", default="default")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--output", type=Path, default=RESULTS / "noise_rate.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("autoft").setLevel(logging.WARNING)
    rows = []
    for name in args.datasets:
        data = load_public(name)
        token = task_of(name) == "token-classification"
        settings = [("symmetric", r) for r in args.rates]
        if not token:
            settings += [("asymmetric", r) for r in args.asymmetric_rates]
        confusable = None if token else confusable_classes(data, args.model, args.max_length)
        for kind, rate in settings:
            for seed in args.seeds if rate else args.seeds[:1]:  # no noise: nothing random to repeat
                row = one(name, data, kind, rate, seed, args, confusable)
                log.info(
                    "%s %s %.0f%% seed %d: true %.3f, estimated %.3f, AUROC %s (%.0f s)",
                    name,
                    row["kind"],
                    100 * rate,
                    seed,
                    row["true_rate"],
                    row["estimated_rate"],
                    f"{row['auroc']:.3f}" if row["auroc"] is not None else "-",
                    row["seconds"],
                )
                rows.append(row)
    table = markdown(rows)
    write_result(
        args.output,
        {
            "command": "python benchmarks/noise_rate.py "
            + " ".join(
                f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                for k, v in vars(args).items()
                if k != "output"
            ),
            "rows": rows,
            "table": table,
        },
        table,
    )


if __name__ == "__main__":
    main()
