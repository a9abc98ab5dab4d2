"""Noisy-label benchmark: plain fine-tuning, cleanlab and autoft's agents side by side, in one run.

    python benchmarks/noisy_labels.py --dataset tweeteval_emotion --noise 0.4 --seeds 0 1 2
    python benchmarks/noisy_labels.py --train a.csv --validation b.csv --test c.csv --noise 0.2
    python benchmarks/noisy_labels.py --dataset banking77 --noise 0.4 --noise-kind asymmetric \\
        --methods none cleanlab reinforce --train-limit 2000 --epochs 2

Noise is injected into the training labels only (validation and test stay clean), with a recorded
seed: ``symmetric`` replaces a label, with probability r, by a different one drawn uniformly;
``asymmetric`` flips it to one fixed confusable class (the class its validation-probe confuses it
with most). Methods (``--methods``):

- ``oracle``: the true labels, plain fine-tuning (the ceiling);
- ``none``: noisy labels, plain fine-tuning with early stopping on the clean validation set;
- ``random``: drops ``--drop-fraction`` of the samples at random (default ``auto``: the share autoft
  estimates, as the agents do — the same kept count, no ranking at all: never re-scored);
- ``static``: the agents minus learning — the offline ranking they start from (the ``suspicion`` policy: noise
  posterior, validation-set probe, neighbours) with the same re-scoring (``--rescore``), loss correction, drop
  fraction, mode and training settings; no policy learns from a reward;
- ``small-loss``: drops the samples the frozen-feature probes disagree with most, re-scored online;
- ``cleanlab``: 5-fold out-of-fold probabilities of a frozen-feature logistic-regression probe
  (``--cleanlab-c``) -> ``find_label_issues`` -> prune -> fine-tune (cleanlab itself, from the ``bench``
  extra);
- ``glc``: every sample, loss forward-corrected with the label-transition matrix autoft's noise estimate
  fits on the clean validation labels (``selection.correction: forward`` with ``policy: none``; Hendrycks
  et al.'s gold loss correction in spirit);
- ``reinforce``, ``q-learning``, ``exp3``: autoft's agents (offline valuation + online selection);
- ``alignment``: the agent whose policy learns each sample's value from per-sample rewards, the alignment of its
  output-layer gradient with a validation mini-batch's after every step (``selection.policy: alignment``).

Every method trains with the settings plain fine-tuning (``none``) resolved for that seed where they are ``auto``
(learning rate, head rate, epochs, batch size, patience: ``autoft run``'s rule), so methods differ only in what
they do to the data; ``--own-settings`` lets each resolve its own (as before). ``none`` runs first.

The agents forward-correct the loss of the samples they keep, with the noise estimated to be left among
them (``selection.correction: auto``, the default for classification); ``--correction off`` turns that off
(the result file gains ``_off``).

``--update-every N`` rewards the agents (``static`` too, which has nothing to learn from them) every N optimisation
steps on a validation mini-batch (``selection.update_every``) instead of once an epoch; the result file gains
``_every<N>``.

``--flagged unlabel`` makes the agents train the samples they leave out on the model's own consistent,
confident label (``selection.flagged``) instead of dropping them; the result file gains ``_unlabel``.

Per method: test accuracy and macro-F1 (mean ± std over seeds), noisy-sample detection AUROC,
precision / recall of the flagged samples, share of the noise found in the lowest-valued 10/20/40%,
and wall-clock relative to ``none``. Writes JSON and a Markdown table (benchmarks/results/).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from public_data import load_public
from result_files import write_result

import autoft
from autoft.data.loading import Example, load_examples
from autoft.data.writing import write_examples

log = logging.getLogger("noisy_labels")
RESULTS = Path(__file__).resolve().parent / "results"
AGENTS = ("random", "static", "small-loss", "reinforce", "q-learning", "exp3", "alignment")
ALL_METHODS = ("oracle", "none", "cleanlab", "glc", *AGENTS)
CONTROLS = {"static": "suspicion"}
"""Controls without learning: ``static`` is the agents' offline ranking with everything else theirs (re-scoring
included); only the policy's learning from rewards is missing."""
UNRANKED = ("random",)
"""Methods with no ranking at all: never re-scored either (re-scoring by training dynamics would rank them)."""


def agent_selection(method: str, args: argparse.Namespace, **extra) -> dict:
    """The ``selection:`` section of an agent method: its policy, the drop fraction (``auto``: estimated),
    the re-scoring (``off`` only for ``random``, which must not rank)."""
    optional = {  # noisy_ner has neither flagged nor correction
        k: getattr(args, k) for k in ("flagged", "correction", "update_every") if getattr(args, k, None) is not None
    }
    return {
        "policy": CONTROLS.get(method, method),
        "drop_fraction": args.drop_fraction,
        "rescore": "off" if method in UNRANKED else args.rescore,
        **optional,
        **extra,
    }


def selection_of(method: str, args: argparse.Namespace) -> dict:
    """The ``selection:`` section each method trains with."""
    if method in AGENTS:
        return agent_selection(method, args, balance=args.balance)
    if method == "glc":
        return {"policy": "none", "correction": "forward"}
    return {"policy": "none"}


def fraction_or_auto(text: str) -> float | str:
    """``--drop-fraction``: 'auto' (autoft estimates the noise rate; the default) or a number in [0, 1)."""
    if text == "auto":
        return text
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number in [0, 1), got {text}")
    return value


def auto_or(kind):
    """An argparse type: 'auto' (autoft's default, resolved by the run) or a number of ``kind``."""
    return lambda text: text if text == "auto" else kind(text)


def describe_drop(fraction: float | str) -> str:
    return "the share they estimate (drop_fraction: auto)" if fraction == "auto" else f"{fraction:.0%}"


def inject(labels: list[str], rate: float, kind: str, seed: int, confusable: dict[str, str]) -> list[str]:
    rng = np.random.default_rng(seed)
    names = sorted(set(labels))
    out = []
    for label in labels:
        if rng.random() < rate:
            if kind == "asymmetric":
                out.append(confusable[label])
            else:
                others = [n for n in names if n != label]
                out.append(others[rng.integers(len(others))])
        else:
            out.append(label)
    return out


def most_confused(x: np.ndarray, y: np.ndarray, names: list[str]) -> dict[str, str]:
    """Each class's most confused other class, from a logistic-regression probe's cross-validated confusion."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import confusion_matrix
    from sklearn.model_selection import cross_val_predict

    predicted = cross_val_predict(LogisticRegression(max_iter=500), x, y, cv=3)
    matrix = confusion_matrix(y, predicted, labels=range(len(names))).astype(float)
    np.fill_diagonal(matrix, -1)
    return {names[i]: names[int(np.argmax(matrix[i]))] for i in range(len(names))}


def confusable_classes(splits: dict[str, list[Example]], model: str, max_length: int) -> dict[str, str]:
    """Each class's most confused other class, from a frozen-feature probe's validation confusion."""
    from autoft.selection.agent import embed_examples

    val = splits["validation"]
    names = sorted({e.label for e in splits["train"]})
    x = embed_examples(model, val, max_length=max_length, progress=False)
    return most_confused(x, np.array([names.index(e.label) for e in val]), names)


def detection(values: np.ndarray, noisy: np.ndarray, flagged: np.ndarray | None) -> dict[str, float | None]:
    """How well low values point at the noisy samples."""
    from sklearn.metrics import roc_auc_score

    out: dict[str, float | None] = {"auroc": None, "precision": None, "recall": None}
    if values is None or noisy.sum() == 0:
        return out
    out["auroc"] = float(roc_auc_score(noisy, -values))
    order = np.argsort(values, kind="stable")
    for share in (0.1, 0.2, 0.4):
        out[f"noise_in_lowest_{int(share * 100)}"] = float(noisy[order[: int(share * len(values))]].sum() / noisy.sum())
    if flagged is not None and flagged.any():
        out["precision"] = float(noisy[flagged].mean())
        out["recall"] = float(flagged[noisy].mean())
    return out


def read_values(path: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    values, flagged = np.zeros(n), np.zeros(n, dtype=bool)
    with path.open(encoding="utf-8") as stream:
        for row in csv.DictReader(stream):
            values[int(row["row_id"])] = float(row["value"])
            flagged[int(row["row_id"])] = row["flagged"] == "True"
    return values, flagged


SHARED = {
    "epochs": "epochs",
    "learning_rate": "learning_rate",
    "head_learning_rate": None,
    "batch_size": "batch_size",
    "early_stopping_patience": "patience",
}
"""Training settings every method takes from plain fine-tuning's resolved run (config key -> the argument that
sets it; the head rate has none: it follows the learning rate's)."""


def shared_settings(plain: dict, args: argparse.Namespace) -> dict:
    """From ``none``'s resolved training settings, those the arguments leave ``auto``."""
    return {
        key: plain[key]
        for key, arg in SHARED.items()
        if (arg is None or getattr(args, arg) == "auto") and plain.get(key) not in (None, "auto")
    }


def count_rewards(decisions: Path) -> int:
    """How many online rewards an agent's run received (``reward`` records in ``decisions.jsonl``)."""
    if not decisions.is_file():
        return 0
    return sum(json.loads(line).get("event") == "reward" for line in decisions.read_text().splitlines() if line)


def run_method(
    method: str,
    *,
    work: Path,
    train: list[Example],
    noisy_labels: list[str],
    files: dict[str, str],
    args: argparse.Namespace,
    seed: int,
    settings: dict | None = None,
) -> dict:
    noisy = np.array([e.label != n for e, n in zip(train, noisy_labels)])
    labels = [e.label for e in train] if method == "oracle" else noisy_labels
    rows = [Example(e.text, label) for e, label in zip(train, labels)]
    values = flagged = None
    started = time.perf_counter()
    if method == "cleanlab":
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores

        from autoft.selection.agent import embed_examples
        from autoft.selection.state import probe_probabilities

        names = sorted({e.label for e in train} | set(noisy_labels))
        y = np.array([names.index(label) for label in noisy_labels])
        val = load_examples(files["validation"], task="classification")
        both = embed_examples(args.model, rows + val, max_length=args.max_length, progress=False)  # one pass
        x, xv = both[: len(rows)], both[len(rows) :]
        oof, _ = probe_probabilities(
            x, y, xv, np.array([names.index(e.label) for e in val]), n_classes=len(names), seed=seed, c=args.cleanlab_c
        )
        flagged = find_label_issues(y, oof)
        values = get_label_quality_scores(y, oof)
        rows = [r for r, bad in zip(rows, flagged) if not bad]
    train_file = write_examples(work / f"{method}-train", rows)
    config = {
        "task": "classification",
        "model": args.model,
        "data": {**files, "train": str(train_file)},
        "training": {
            "epochs": args.epochs,
            "learning_rate": args.learning_rate,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "seed": seed,
            "early_stopping_patience": args.patience,
            "progress": False,
            **(settings or {}),
        },
        "selection": selection_of(method, args),
        "output_dir": str(work / method),
    }
    run = autoft.train(config)
    wall = time.perf_counter() - started
    if method in AGENTS:
        values, flagged = read_values(work / method / "data_values.csv", len(train))
    test = run.metrics["test"]
    estimate = run.metrics.get("noise") or {}
    return {
        "accuracy": test["accuracy"],
        "macro_f1": test["macro_f1"],
        "wall_seconds": wall,
        "validation_macro_f1": run.metrics["validation"]["macro_f1"],
        "true_noise": float(noisy.mean()),
        "estimated_noise": estimate.get("rate"),
        "drop_fraction": estimate.get("drop_fraction"),
        "learning_rate": run.metrics["training"]["learning_rate"],
        "epochs_run": len(run.metrics["epochs"]),
        "trained_samples": sum(e["samples"] for e in run.metrics["epochs"]),
        "rewards": count_rewards(work / method / "decisions.jsonl") if method in AGENTS else None,
        "settings": run.metrics["training"],
        **detection(values, noisy, flagged),
    }


def summarise(per_seed: dict[str, list[dict]]) -> dict[str, dict]:
    none_wall = np.mean([r["wall_seconds"] for r in per_seed.get("none", [])]) if "none" in per_seed else None
    out = {}
    for method, results in per_seed.items():
        row = {}
        for key in results[0]:
            values = [r[key] for r in results if isinstance(r.get(key), (int, float)) and not isinstance(r[key], bool)]
            if values:
                row[key] = {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values)}
        if none_wall:
            row["wall_vs_none"] = float(np.mean([r["wall_seconds"] for r in results]) / none_wall)
        out[method] = row
    return out


def cell(row: dict, key: str, digits: int = 3) -> str:
    """A summary entry as 'mean ± std' (one seed: the mean), '–' when absent."""
    if key not in row:
        return "–"
    m = row[key]
    return f"{m['mean']:.{digits}f} ± {m['std']:.{digits}f}" if m["n"] > 1 else f"{m['mean']:.{digits}f}"


def markdown(summary: dict[str, dict], header: str) -> str:
    lines = [
        header,
        "",
        (
            "| method | test accuracy | test macro-F1 | AUROC | flagged P / R | noise in lowest 10/20/40% | "
            "wall vs none |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for method, row in summary.items():
        pr = f"{cell(row, 'precision', 2)} / {cell(row, 'recall', 2)}" if "precision" in row else "–"
        low = (
            " / ".join(
                f"{row[k]['mean']:.2f}"
                for k in ("noise_in_lowest_10", "noise_in_lowest_20", "noise_in_lowest_40")
                if k in row
            )
            or "–"
        )
        wall = f"{row['wall_vs_none']:.2f}" if "wall_vs_none" in row else "–"
        lines.append(
            f"| {method} | {cell(row, 'accuracy')} | {cell(row, 'macro_f1')} | {cell(row, 'auroc')} | "
            f"{pr} | {low} | {wall} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=("tweeteval_emotion", "banking77"), help="a named set of ../shared/data")
    parser.add_argument("--train"), parser.add_argument("--validation"), parser.add_argument("--test")
    parser.add_argument("--data-root")
    parser.add_argument("--noise", type=float, default=0.4)
    parser.add_argument("--noise-kind", choices=("symmetric", "asymmetric"), default="symmetric")
    parser.add_argument(
        "--drop-fraction",
        type=fraction_or_auto,
        default="auto",
        help="share the agents leave out (default auto: estimated by autoft, never told the noise)",
    )
    parser.add_argument(
        "--balance",
        choices=("global", "per-class"),
        default="global",
        help="agents drop that share within each given label, or overall",
    )
    parser.add_argument(
        "--cleanlab-c",
        type=float,
        default=1.0,
        help="inverse regularisation of cleanlab's logistic-regression probe (default 1.0, "
        "scikit-learn's; autoft's own probes use 0.1)",
    )
    parser.add_argument(
        "--rescore",
        choices=("off", "dynamics", "model"),
        default="dynamics",
        help="the agents' online re-scoring (selection.rescore, default dynamics)",
    )
    parser.add_argument(
        "--flagged",
        choices=("drop", "unlabel"),
        default="drop",
        help="what the agents do with the samples they leave out (selection.flagged)",
    )
    parser.add_argument(
        "--correction",
        choices=("auto", "off", "forward"),
        default="auto",
        help="the agents' loss correction (selection.correction; auto: forward, for classification)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--methods", nargs="+", default=list(ALL_METHODS), choices=ALL_METHODS)
    parser.add_argument("--model", default="default")
    parser.add_argument("--epochs", type=auto_or(int), default="auto")
    parser.add_argument("--learning-rate", type=auto_or(float), default="auto")
    parser.add_argument("--batch-size", type=auto_or(int), default="auto")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--patience", type=auto_or(int), default="auto")
    parser.add_argument(
        "--own-settings",
        action="store_true",
        help="each method resolves its own auto settings (default: plain fine-tuning's, for all)",
    )
    parser.add_argument(
        "--update-every",
        type=int,
        help="agents: a reward every N optimisation steps on a validation mini-batch (default: the run's auto)",
    )
    parser.add_argument("--train-limit", type=int, help="first N training samples only (quick runs)")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    if args.dataset:
        splits = load_public(args.dataset, args.data_root)
        name = args.dataset
    elif args.train and args.validation and args.test:
        splits = {k: load_examples(getattr(args, k), task="classification") for k in ("train", "validation", "test")}
        name = Path(args.train).stem
    else:
        parser.error("give --dataset, or --train, --validation and --test")
    if args.train_limit:
        splits["train"] = splits["train"][: args.train_limit]
    confusable = confusable_classes(splits, args.model, args.max_length) if args.noise_kind == "asymmetric" else {}

    per_seed: dict[str, list[dict]] = {m: [] for m in args.methods}
    started = time.perf_counter()
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            files = {split: str(write_examples(work / split, splits[split])) for split in ("validation", "test")}
            noisy_labels = inject([e.label for e in splits["train"]], args.noise, args.noise_kind, seed, confusable)
            settings = None
            for method in sorted(args.methods, key=lambda m: m != "none"):  # plain first: the others share its settings
                result = run_method(
                    method,
                    work=work,
                    train=splits["train"],
                    noisy_labels=noisy_labels,
                    files=files,
                    args=args,
                    seed=seed,
                    settings=settings,
                )
                if method == "none" and not args.own_settings:
                    settings = shared_settings(result["settings"], args)
                log.info(
                    "seed %d %s: %s",
                    seed,
                    method,
                    {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items() if k != "settings"},
                )
                per_seed[method].append(result)
    summary = summarise(per_seed)
    header = (
        f"{name}, {len(splits['train'])} training samples, {args.noise:.0%} {args.noise_kind} noise, "
        f"seeds {args.seeds}, packaged MiniLM (full fine-tuning, epochs {args.epochs}, learning rate "
        f"{args.learning_rate}, early stopping on the clean validation set), agents drop {describe_drop(args.drop_fraction)} ({args.balance}), rescore {args.rescore}."
    )
    report = {
        "dataset": name,
        "args": {k: v for k, v in vars(args).items() if k != "output"},
        "per_seed": per_seed,
        "summary": summary,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    stem = (
        f"noisy_{name}_{args.noise_kind}_{int(args.noise * 100)}_{args.balance}"
        + (f"_{args.flagged}" if args.flagged != "drop" else "")
        + (f"_{args.correction}" if args.correction != "auto" else "")
        + (f"_every{args.update_every}" if args.update_every else "")
    )
    output = args.output or RESULTS / f"{stem}.json"
    write_result(output, report, markdown(summary, header))


if __name__ == "__main__":
    main()
