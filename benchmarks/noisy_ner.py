"""NER benchmarks on the Broad Twitter Corpus: entity-type noise, and mixing data sources.

    python benchmarks/noisy_ner.py flips --noise 0.3 --seeds 0 1 2
    python benchmarks/noisy_ner.py flips --noise 0.3 --methods oracle none small-loss exp3 --epochs 3 \\
        --train-limit 2000
    python benchmarks/noisy_ner.py mixed --target f --methods target-alone all-sources agent --policy exp3 \\
        --per-source-limit 500 --epochs 3 --seeds 0
    python benchmarks/noisy_ner.py mixed --target f --methods all-sources agent agent-value --policy q-learning

``flips``: the BTC splits of ../shared/data (sections a b e f g for train minus a seeded 10% validation,
section h for test). Noise is injected into the training tags only (validation and test stay clean), with
the run's seed: every gold entity span is, with probability ``--noise``, given another entity type drawn
uniformly from the other types, its B-/I- prefixes kept (B-PER I-PER -> B-ORG I-ORG); a sentence is
*noisy* when any of its spans was flipped. Methods (``--methods``):

- ``oracle``: the true tags, plain fine-tuning (the ceiling);
- ``none``: noisy tags, plain fine-tuning with early stopping on the clean validation set;
- ``random``, ``small-loss``, ``reinforce``, ``q-learning``, ``exp3``: autoft's agents on the noisy tags,
  leaving out ``--drop-fraction`` of the sentences (default ``auto``: the share autoft estimates).

Per method: test entity F1 / precision / recall (seqeval, mean ± std over seeds); for the agents,
noisy-sentence detection from the run's data_values.csv (AUROC of low values, precision / recall of the
flagged sentences, share of the noise in the lowest-valued 10/20/40%); wall-clock relative to ``none``.
Also the share of training spans flipped and of sentences made noisy.

``mixed``: domain mixing. The target section (``--target``, default f) is split with ``--data-seed`` into
50% target-train, 15% validation and 35% test. The training sources are the other train sections (each a
file named by its letter, e.g. a.conll, optionally a seeded sample of ``--per-source-limit`` sentences)
plus the target-train part (f-target.conll); the source of a sentence is its file's stem. Methods:

- ``target-alone``: the target-train part only, plain fine-tuning;
- ``all-sources``: every source file, plain fine-tuning;
- ``agent``: every source file, ``--policy`` with ``bucket_by: source`` leaving out ``--drop-fraction``;
- ``agent-value``: the same with ``bucket_by: value``.

Per method: test entity F1 / precision / recall and, for the agents, the keep rate of each source
(share of its sentences not flagged in data_values.csv).

Both write JSON (args, per-seed results, summary, total wall) and a Markdown table under
benchmarks/results/ (or ``--output``) and print the table. ``--eval-limit`` cuts validation and test,
``--train-limit`` / ``--target-limit`` the training data, for quick checks only.
"""

from __future__ import annotations

import argparse
import csv
import logging
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from noisy_labels import (
    AGENTS,
    agent_selection,
    auto_or,
    cell,
    describe_drop,
    detection,
    fraction_or_auto,
    most_confused,
    read_values,
    summarise,
)
from public_data import load_public, shared_root, write_examples
from result_files import write_result

import autoft
from autoft.data.loading import Example, load_examples
from autoft.tasks.ner import bio_spans

log = logging.getLogger("noisy_ner")
RESULTS = Path(__file__).resolve().parent / "results"
FLIP_METHODS = ("oracle", "none", *AGENTS)
MIXED_METHODS = ("target-alone", "all-sources", "agent", "agent-value")
TRAIN_SECTIONS = "abefg"


# --- noise -----------------------------------------------------------------------------------------
def flip_entity_types(
    tag_lists: list[list[str]], rate: float, seed: int, types: list[str], confusable: dict[str, str] | None = None
) -> tuple[list[list[str]], int, np.ndarray]:
    """Give each entity span, with probability ``rate``, another type: drawn uniformly from ``types``, or
    (asymmetric noise) its type's most confusable one in ``confusable``.

    B-/I- prefixes are kept. Returns (new tag lists, number of spans flipped, mask of noisy sentences).
    One random draw per span (plus one per flip), so the result depends on ``seed`` and the spans only.
    """
    rng = np.random.default_rng(seed)
    out, flipped, noisy = [], 0, np.zeros(len(tag_lists), dtype=bool)
    for i, tags in enumerate(tag_lists):
        new = list(tags)
        for kind, first, last in bio_spans(tags):
            if rng.random() >= rate:
                continue
            others = [t for t in types if t != kind]
            if not others:
                continue
            other = others[rng.integers(len(others))] if confusable is None else confusable[kind]
            for position in range(first, last + 1):
                new[position] = f"{tags[position].partition('-')[0]}-{other}"
            flipped += 1
            noisy[i] = True
        out.append(new)
    return out, flipped, noisy


def confusable_types(examples: list[Example], types: list[str], model: str, max_length: int) -> dict[str, str]:
    """Each entity type's most confused other type, from a probe on the validation entities' word embeddings."""
    from autoft.selection.agent import embed_words
    from autoft.selection.units import entity_spans

    spans = [
        (vector, kind)
        for example, vectors in zip(examples, embed_words(model, examples, max_length=max_length, progress=False))
        for vector, kind, _, _ in entity_spans(example, vectors, types)
    ]
    return most_confused(np.stack([v for v, _ in spans]), np.array([k for _, k in spans]), types)


def entity_types(examples: list[Example]) -> list[str]:
    return sorted({tag.partition("-")[2] for e in examples for tag in e.label if tag != "O"})


def count_spans(tag_lists: list[list[str]]) -> int:
    return sum(len(bio_spans(tags)) for tags in tag_lists)


# --- one run ---------------------------------------------------------------------------------------
def train_config(
    args: argparse.Namespace, *, train: str | list[str], files: dict[str, str], seed: int, selection: dict, output: Path
) -> dict:
    return {
        "task": "token-classification",
        "model": args.model,
        "data": {**files, "train": train},
        "training": {
            "epochs": args.epochs,
            "learning_rate": args.learning_rate,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "seed": seed,
            "early_stopping_patience": args.patience,
            "progress": False,
        },
        "selection": selection,
        "output_dir": str(output),
    }


def fit(config: dict) -> tuple[dict, Path]:
    """Train; (scores, output folder) with test F1 / P / R, wall-clock and the samples trained on."""
    started = time.perf_counter()
    run = autoft.train(config)
    test = run.metrics["test"]
    scores = {
        "f1": test["f1"],
        "precision": test["precision"],
        "recall": test["recall"],
        "validation_f1": run.metrics["validation"]["f1"],  # the split that chose the best epoch
        "wall_seconds": time.perf_counter() - started,
        "trained_samples": sum(e["samples"] for e in run.metrics["epochs"]),
    }
    return scores, Path(config["output_dir"])


def values_file(output: Path) -> Path | None:
    path = output / "data_values.csv"
    if not path.exists():
        log.warning("%s: no data_values.csv; detection / keep rates left out", output)
        return None
    return path


def keep_rates(path: Path) -> dict[str, float]:
    """Share of each source's rows that the agent kept (not flagged) in data_values.csv."""
    kept, total = defaultdict(int), defaultdict(int)
    with path.open(encoding="utf-8") as stream:
        for row in csv.DictReader(stream):
            total[row["source"]] += 1
            kept[row["source"]] += row["flagged"] != "True"
    return {source: kept[source] / total[source] for source in sorted(total)}


def rounded(result: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}


# --- reports ---------------------------------------------------------------------------------------
def flips_markdown(summary: dict[str, dict], header: str) -> str:
    lines = [
        header,
        "",
        ("| method | test F1 | test P / R | AUROC | flagged P / R | noise in lowest 10/20/40% | wall vs none |"),
        "|---|---|---|---|---|---|---|",
    ]
    for method, row in summary.items():
        pr = f"{cell(row, 'precision', 2)} / {cell(row, 'recall', 2)}"
        flagged = (
            f"{cell(row, 'flagged_precision', 2)} / {cell(row, 'flagged_recall', 2)}"
            if "flagged_precision" in row
            else "–"
        )
        low = (
            " / ".join(
                f"{row[k]['mean']:.2f}"
                for k in ("noise_in_lowest_10", "noise_in_lowest_20", "noise_in_lowest_40")
                if k in row
            )
            or "–"
        )
        wall = f"{row['wall_vs_none']:.2f}" if "wall_vs_none" in row else "–"
        lines.append(f"| {method} | {cell(row, 'f1')} | {pr} | {cell(row, 'auroc')} | {flagged} | {low} | {wall} |")
    return "\n".join(lines)


def mixed_markdown(summary: dict[str, dict], header: str, sources: list[str]) -> str:
    lines = [
        header,
        "",
        "| method | test F1 | test P / R | kept per source (" + ", ".join(sources) + ") | wall s |",
        "|---|---|---|---|---|",
    ]
    for method, row in summary.items():
        pr = f"{cell(row, 'precision', 2)} / {cell(row, 'recall', 2)}"
        kept = (
            " / ".join(f"{row[f'keep_{s}']['mean']:.0%}" if f"keep_{s}" in row else "–" for s in sources)
            if any(k.startswith("keep_") for k in row)
            else "–"
        )
        lines.append(f"| {method} | {cell(row, 'f1')} | {pr} | {kept} | {row['wall_seconds']['mean']:.0f} |")
    return "\n".join(lines)


def write_report(report: dict, text: str, output: Path) -> None:
    write_result(output, report, text)


# --- flips -----------------------------------------------------------------------------------------
def run_flips(args: argparse.Namespace) -> None:
    splits = load_public("btc_ner", args.data_root)
    if args.train_limit:
        splits["train"] = splits["train"][: args.train_limit]
    if args.eval_limit:
        splits["validation"], splits["test"] = (splits[k][: args.eval_limit] for k in ("validation", "test"))
    train = splits["train"]
    types = entity_types(train)
    n_spans = count_spans([e.label for e in train])

    per_seed: dict[str, list[dict]] = {m: [] for m in args.methods}
    noise: list[dict] = []
    started = time.perf_counter()
    confusable = (
        confusable_types(splits["validation"], types, args.model, args.max_length)
        if args.noise_kind == "asymmetric"
        else None
    )
    if confusable:
        log.info("asymmetric noise: each type flips to %s", confusable)
    for seed in args.seeds:
        noisy_tags, flipped, noisy = flip_entity_types([e.label for e in train], args.noise, seed, types, confusable)
        drop = args.drop_fraction  # never the injected share: autoft estimates it (auto) unless told a number
        noise.append(
            {
                "seed": seed,
                "spans": n_spans,
                "spans_flipped": flipped,
                "span_share_flipped": flipped / max(n_spans, 1),
                "sentences": len(train),
                "noisy_sentences": int(noisy.sum()),
                "noisy_sentence_share": float(noisy.mean()),
                "drop_fraction": drop,
            }
        )
        log.info(
            "seed %d: %d of %d spans flipped, %d of %d sentences noisy", seed, flipped, n_spans, noisy.sum(), len(train)
        )
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            files = {split: str(write_examples(work / split, splits[split])) for split in ("validation", "test")}
            for method in args.methods:
                tags = [e.label for e in train] if method == "oracle" else noisy_tags
                train_file = write_examples(work / f"{method}-train", [Example(e.text, t) for e, t in zip(train, tags)])
                selection = (
                    agent_selection(method, args, mode=args.mode, relabel_confidence=args.relabel_confidence)
                    if method in AGENTS
                    else {"policy": "none"}
                )
                result, output = fit(
                    train_config(
                        args, train=str(train_file), files=files, seed=seed, selection=selection, output=work / method
                    )
                )
                values = flagged = None
                if method in AGENTS and (path := values_file(output)) is not None:
                    values, flagged = read_values(path, len(train))
                found = detection(values, noisy, flagged)
                found["flagged_precision"], found["flagged_recall"] = found.pop("precision"), found.pop("recall")
                result.update(found)
                log.info("seed %d %s: %s", seed, method, rounded(result))
                per_seed[method].append(result)

    summary = summarise(per_seed)
    flipped_share = np.mean([n["span_share_flipped"] for n in noise])
    noisy_share = np.mean([n["noisy_sentence_share"] for n in noise])
    drop_text = describe_drop(args.drop_fraction)
    header = (
        f"btc_ner, {len(train)} training sentences ({n_spans} entity spans), {args.noise_kind} entity-type flips at "
        f"{args.noise:.0%}: {flipped_share:.1%} of spans flipped, {noisy_share:.1%} of sentences noisy; "
        f"seeds {args.seeds}, packaged MiniLM (full fine-tuning, epochs {args.epochs}, learning rate {args.learning_rate}, early stopping on "
        f"the clean validation set), agents ({args.mode} mode) leave out {drop_text}"
        f"{'' if args.relabel_confidence is None else f', relabel at confidence {args.relabel_confidence:g}'}. Test: section h, seqeval "
        "entity-level."
    )
    report = {
        "dataset": "btc_ner",
        "benchmark": "flips",
        "args": {k: v for k, v in vars(args).items() if k not in ("output", "command")},
        "noise": noise,
        "per_seed": per_seed,
        "summary": summary,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    kind = "" if args.noise_kind == "symmetric" else "_asymmetric"
    output = args.output or RESULTS / f"noisy_btc_ner_flips{kind}_{round(args.noise * 100)}.json"
    write_report(report, flips_markdown(summary, header), output)


# --- mixed -----------------------------------------------------------------------------------------
def split_target(examples: list[Example], seed: int) -> dict[str, list[Example]]:
    """Seeded 50% / 15% / 35% split into target-train, validation and test (each kept in file order)."""
    order = np.random.default_rng(seed).permutation(len(examples))
    n_train, n_val = round(0.5 * len(examples)), round(0.15 * len(examples))
    parts = {"train": order[:n_train], "validation": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
    return {name: [examples[i] for i in sorted(index)] for name, index in parts.items()}


def sample(examples: list[Example], limit: int | None, seed: int) -> list[Example]:
    if not limit or limit >= len(examples):
        return examples
    index = np.random.default_rng(seed).choice(len(examples), size=limit, replace=False)
    return [examples[i] for i in sorted(index)]


def run_mixed(args: argparse.Namespace) -> None:
    folder = shared_root(args.data_root) / "btc_ner"
    sources = args.sources or [s for s in TRAIN_SECTIONS if s != args.target]
    if args.target in sources:
        raise SystemExit(f"--sources: the target section {args.target!r} is added as {args.target}-target already")
    read = {s: load_examples(folder / f"{s}.conll", task="token-classification") for s in [*sources, args.target]}
    target = split_target(read[args.target], args.data_seed)
    target["train"] = sample(target["train"], args.target_limit, args.data_seed)
    if args.eval_limit:
        target["validation"], target["test"] = (target[k][: args.eval_limit] for k in ("validation", "test"))
    parts = {s: sample(read[s], args.per_source_limit, args.data_seed + 1 + i) for i, s in enumerate(sources)}
    parts[f"{args.target}-target"] = target["train"]
    names = list(parts)
    sizes = {name: len(rows) for name, rows in parts.items()}
    log.info("sources %s; validation %d, test %d", sizes, len(target["validation"]), len(target["test"]))

    per_seed: dict[str, list[dict]] = {m: [] for m in args.methods}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "data"
        files = {split: str(write_examples(data / split, target[split])) for split in ("validation", "test")}
        train_files = {name: str(write_examples(data / name, rows)) for name, rows in parts.items()}
        for seed in args.seeds:
            for method in args.methods:
                if method == "target-alone":
                    train, selection = train_files[f"{args.target}-target"], {"policy": "none"}
                elif method == "all-sources":
                    train, selection = list(train_files.values()), {"policy": "none"}
                else:
                    train = list(train_files.values())
                    selection = agent_selection(
                        args.policy, args, mode="sample", bucket_by="source" if method == "agent" else "value"
                    )
                result, output = fit(
                    train_config(
                        args,
                        train=train,
                        files=files,
                        seed=seed,
                        selection=selection,
                        output=work / f"seed{seed}-{method}",
                    )
                )
                if method.startswith("agent") and (path := values_file(output)) is not None:
                    result.update({f"keep_{s}": rate for s, rate in keep_rates(path).items()})
                log.info("seed %d %s: %s", seed, method, rounded(result))
                per_seed[method].append(result)

    summary = summarise(per_seed)
    header = (
        f"btc_ner domain mixing, target section {args.target} (data seed {args.data_seed}: "
        f"{sizes[f'{args.target}-target']} target-train / {len(target['validation'])} validation / "
        f"{len(target['test'])} test sentences), other sources "
        + ", ".join(f"{s} ({sizes[s]})" for s in sources)
        + f"; seeds {args.seeds}, packaged MiniLM (full fine-tuning, epochs {args.epochs}, learning rate {args.learning_rate}, early stopping "
        f"on the target validation set), agents: {args.policy} dropping {describe_drop(args.drop_fraction)}."
    )
    report = {
        "dataset": "btc_ner",
        "benchmark": "mixed",
        "args": {k: v for k, v in vars(args).items() if k not in ("output", "command")},
        "sources": sizes,
        "validation": len(target["validation"]),
        "test": len(target["test"]),
        "per_seed": per_seed,
        "summary": summary,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    output = args.output or RESULTS / f"mixed_btc_ner_{args.target}.json"
    write_report(report, mixed_markdown(summary, header, names), output)


# --- command line ----------------------------------------------------------------------------------
def main() -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--seeds", type=int, nargs="+", default=[0])
    common.add_argument(
        "--rescore",
        choices=("off", "dynamics", "model"),
        default="dynamics",
        help="the agents' online re-scoring (selection.rescore, default dynamics)",
    )
    common.add_argument("--model", default="default")
    common.add_argument("--epochs", type=auto_or(int), default="auto")
    common.add_argument("--learning-rate", type=auto_or(float), default="auto")
    common.add_argument("--batch-size", type=auto_or(int), default="auto")
    common.add_argument("--max-length", type=int, default=128)
    common.add_argument("--patience", type=auto_or(int), default="auto")
    common.add_argument("--data-root", help="the shared data folder (default ../shared/data)")
    common.add_argument("--eval-limit", type=int, help="first N validation and test sentences only (quick runs)")
    common.add_argument("--output", type=Path, help="JSON path (the Markdown goes beside it)")

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    flips = commands.add_parser("flips", parents=[common], help="entity-type flips in the BTC training tags")
    flips.add_argument("--noise", type=float, default=0.3, help="probability that a span's type is flipped")
    flips.add_argument(
        "--noise-kind",
        choices=("symmetric", "asymmetric"),
        default="symmetric",
        help="flip to another type at random, or to the type's most confusable one",
    )
    flips.add_argument(
        "--drop-fraction",
        type=fraction_or_auto,
        default="auto",
        help="share the agents leave out: of sentences, or with --mode mask of entities (default auto: "
        "estimated by autoft)",
    )
    flips.add_argument(
        "--mode",
        choices=("auto", "sample", "weight", "mask"),
        default="auto",
        help="selection.mode of the agents: drop sentences, weight them, or mask suspect entities "
        "(default auto: autoft's default, mask for NER)",
    )
    flips.add_argument(
        "--relabel-confidence",
        type=float,
        default=None,
        help="selection.relabel_confidence of the agents: suspect entities whose suggested type is at "
        "least this likely train on it (default: none, no relabelling)",
    )
    flips.add_argument("--methods", nargs="+", default=list(FLIP_METHODS), choices=FLIP_METHODS)
    flips.add_argument("--train-limit", type=int, help="first N training sentences only (quick runs)")
    mixed = commands.add_parser("mixed", parents=[common], help="target section plus other sections as sources")
    mixed.add_argument("--target", default="f", choices=list(TRAIN_SECTIONS))
    mixed.add_argument(
        "--sources",
        nargs="+",
        choices=list(TRAIN_SECTIONS),
        help="other sections used as sources (default: the train sections but the target)",
    )
    mixed.add_argument("--methods", nargs="+", default=["target-alone", "all-sources", "agent"], choices=MIXED_METHODS)
    mixed.add_argument("--policy", default="exp3", choices=AGENTS)
    mixed.add_argument("--drop-fraction", type=fraction_or_auto, default="auto")
    mixed.add_argument("--per-source-limit", type=int, help="a seeded sample of N sentences of each other source")
    mixed.add_argument("--target-limit", type=int, help="a seeded sample of N target-train sentences (quick runs)")
    mixed.add_argument("--data-seed", type=int, default=0, help="seed of the target split and the source samples")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.command == "flips":
        run_flips(args)
    else:
        run_mixed(args)


if __name__ == "__main__":
    main()
