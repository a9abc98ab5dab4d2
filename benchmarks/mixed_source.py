"""Mixed-source benchmark (issue 27): a pool of three sources where no one knows the best mixture in advance.

    python benchmarks/mixed_source.py --seeds 0 1 2
    python benchmarks/mixed_source.py --model TINY_MODEL_DIR --sizes 60 80 80 --seeds 0   # a smoke test

The training pool, every row with one of TweetEval emotion's four labels, in three files (autoft's *source* is
the file; nothing else tells a method which source is which):

- ``tweets``: TweetEval emotion training rows with their own labels;
- ``noisy_tweets``: the next TweetEval training rows, ``--heavy-noise`` of their labels replaced by another at
  random (seeded; the rate is never given to a method);
- ``off_domain``: BANKING77 customer-service queries, each given a seeded random emotion label.

Validation and test are TweetEval's (clean). Methods (``--methods``), each the same fine-tuning with the settings the
``proportional`` run resolved for the seed (rate, epochs, batch size, patience), so they differ only in the data mix:

- ``proportional``: plain fine-tuning on the union, every row weight 1;
- ``uniform``: plain fine-tuning, each source's rows weighted so that every source weighs the same in the loss;
- ``grid``: plain fine-tuning with every fixed mixture of ``--grid`` loss weights for the two other sources (``tweets``
  at 1): the one best on validation is *best fixed (chosen on validation)*; the one best on test, reported beside
  it, is the hindsight bound no method can know;
- ``static``: autoft's default agent, ``suspicion``: the agent minus learning (the noise estimate's ranking, drop
  fraction, loss correction and settings); ``static-per-source``: the same with ``selection.balance: per-source``
  (every file estimated as an annotator of its own, each leaving out its own estimated share);
- ``learned``: exp3, autoft's learned bandit (the default agent until issue 27 made ``suspicion`` the default);
  ``learned-source``: the same with ``selection.bucket_by: source`` (the bandit's arms are the sources);
  ``learned-per-source``: with ``selection.balance: per-source`` (``static-per-source``'s learned counterpart);
  ``alignment``: the policy rewarded per trained row after every step by how its gradient aligns with validation's.
  Agents and ``static`` train as ``autoft train`` runs them: without the back-off guard ``autoft run`` adds, so they
  differ from each other only in the policy.

Writes ``benchmarks/results/mixed_source.json`` and ``.md`` (test macro-F1 mean ± std over seeds, the share of each
source each method kept, wall-clock); every run is kept in the JSON. Each finished run is cached in
``mixed_source_runs.jsonl`` (keyed by seed, method, pool, model and the last commit that changed src/), so an
interrupted benchmark resumes, and processes given different ``--methods`` share a seed (one per core; the first
trains ``proportional``, the others wait for it); ``--no-run`` writes the results from the cache.

    taskset -c 0 python benchmarks/mixed_source.py --seeds 0 --methods grid &
    taskset -c 1 python benchmarks/mixed_source.py --seeds 0 --methods uniform static learned learned-source alignment
    python benchmarks/mixed_source.py --seeds 0 --no-run        # every method's cached runs

A method added after the others ran takes the settings of the ``proportional`` runs already cached (plain
fine-tuning, which a change to the agents leaves alone), and the table reads each method's runs at its own commit:

    python benchmarks/mixed_source.py --seeds 0 1 2 --methods static-per-source --commit proportional=OLD
    python benchmarks/mixed_source.py --seeds 0 1 2 --no-run --commit OLD static-per-source=NEW
"""

from __future__ import annotations

import argparse
import itertools
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from noisy_labels import SHARED, read_values
from public_data import load_public
from result_files import locked, src_commit, store, write_result

import autoft
from autoft.data.loading import Example
from autoft.data.writing import write_examples
from autoft.io import read_jsonl
from autoft.training.callbacks import RowWeights

log = logging.getLogger("mixed_source")
RESULTS = Path(__file__).resolve().parent / "results"
SOURCES = ("tweets", "noisy_tweets", "off_domain")
METHODS = (
    "proportional",
    "uniform",
    "grid",
    "static",
    "static-per-source",
    "learned",
    "learned-source",
    "learned-per-source",
    "alignment",
)
SELECTION = {
    "static": {"policy": "suspicion"},
    "static-per-source": {"policy": "suspicion", "balance": "per-source"},
    "learned": {"policy": "exp3"},
    "learned-source": {"policy": "exp3", "bucket_by": "source"},
    "learned-per-source": {"policy": "exp3", "balance": "per-source"},
    "alignment": {"policy": "alignment"},
}

LABELS = {
    "static": "static (suspicion: the default agent)",
    "static-per-source": "static, each source its own noise estimate (balance: per-source)",
    "learned": "learned (exp3)",
    "learned-source": "learned-source (exp3, the sources as arms)",
    "learned-per-source": "learned, each source its own noise estimate (exp3, balance: per-source)",
}
"""How the table names a method."""


def pool(sizes: list[int], heavy_noise: float, seed: int, root: str | None) -> dict[str, Any]:
    """The three sources' rows (seeded), TweetEval's validation and test."""
    tweets = load_public("tweeteval_emotion", root)
    labels = sorted({e.label for e in tweets["train"]})
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(tweets["train"]))
    first = [tweets["train"][i] for i in order[: sizes[0]]]
    second = [tweets["train"][i] for i in order[sizes[0] : sizes[0] + sizes[1]]]
    flip = rng.random(len(second)) < heavy_noise
    noisy = [Example(e.text, rng.choice([x for x in labels if x != e.label])) if f else e for e, f in zip(second, flip)]
    queries = load_public("banking77", root)["train"]
    off = [
        Example(queries[i].text, labels[rng.integers(len(labels))]) for i in rng.permutation(len(queries))[: sizes[2]]
    ]
    return {
        "sources": dict(zip(SOURCES, (first, noisy, off))),
        "validation": tweets["validation"],
        "test": tweets["test"],
    }


def rows_of(sources: dict[str, list[Example]]) -> dict[str, np.ndarray]:
    """Each source's training rows in the loop (the files in ``SOURCES`` order, one after another)."""
    out, start = {}, 0
    for name in SOURCES:
        out[name] = np.arange(start, start + len(sources[name]))
        start += len(sources[name])
    return out


def train_once(
    name: str,
    files: dict[str, Any],
    work: Path,
    args: argparse.Namespace,
    seed: int,
    settings: dict[str, Any],
    *,
    weights: dict[str, float] | None = None,
    selection: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One run: plain with per-source loss ``weights``, or with an agent (``selection``)."""
    started = time.perf_counter()
    config = {
        "task": "classification",
        "model": args.model,
        "output_dir": str(work / name),
        "data": {"train": files["train"], "validation": files["validation"], "test": files["test"]},
        "training": {"seed": seed, "progress": False, "max_length": args.max_length, **settings},
        "selection": {"policy": "none"} if selection is None else selection,
    }
    callbacks = [RowWeights(files["rows"][s], w) for s, w in (weights or {}).items() if w != 1.0]
    run = autoft.train(config, callbacks=callbacks)
    kept = {s: None for s in SOURCES}
    values = work / name / "data_values.csv"
    if values.is_file():  # the agent's last word: the share of each source it kept
        _, flagged = read_values(values, sum(len(rows) for rows in files["rows"].values()))
        kept = {s: round(1 - float(flagged[rows].mean()), 4) for s, rows in files["rows"].items()}
    elif weights is not None:
        kept = {s: float(weights.get(s, 1.0) > 0) for s in SOURCES}
    return {
        "method": name,
        "weights": weights,
        "test": run.metrics["test"]["macro_f1"],
        "validation": run.metrics["validation"]["macro_f1"],
        "kept": kept,
        "settings": {k: run.metrics["training"][k] for k in SHARED},
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def plan(args: argparse.Namespace, sizes: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Every run of a seed but ``proportional``, by method name: its per-source loss weights or its agent."""
    runs: dict[str, dict[str, Any]] = {}
    if "uniform" in args.methods:
        total = sum(sizes.values())
        runs["uniform"] = {"weights": {s: total / (len(SOURCES) * n) for s, n in sizes.items()}}
    if "grid" in args.methods:
        for a, b in itertools.product(args.grid, repeat=2):
            if (a, b) != (1.0, 1.0):  # (that one is proportional)
                runs[f"grid-{a:g}-{b:g}"] = {"weights": {"tweets": 1.0, "noisy_tweets": a, "off_domain": b}}
    for method, selection in SELECTION.items():
        if method in args.methods:
            runs[method] = {"selection": selection}
    return runs


def run_key(args: argparse.Namespace, seed: int, method: str, commit: str) -> str:
    """A cached run's key: the seed, the method, what draws the pool and trains, and the commit of src/."""
    fixed = ",".join(f"{k}={args.__dict__[k]}" for k in ("epochs", "learning_rate", "batch_size"))
    return (
        f"seed={seed}|{method}|sizes={','.join(map(str, args.sizes))}|heavy_noise={args.heavy_noise:g}|"
        f"model={args.model}|max_length={args.max_length}|{fixed}|{commit}"
    )


def one_seed(args: argparse.Namespace, seed: int, cache: Path, commit: str, commits: dict[str, str]) -> None:
    """The seed's runs that ``cache`` lacks at ``commit``, each stored there as it finishes. ``proportional`` goes
    first (every other run trains with the settings it resolved) under a lock, so processes running other
    ``--methods`` of the same seed wait for it rather than train it again; ``commits`` may name the commit of the
    ``proportional`` run to take the settings from (plain fine-tuning, which a change to the agents leaves as it
    was)."""
    data = pool(args.sizes, args.heavy_noise, seed, args.data_root)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        files = {
            "train": [str(write_examples(work / name, rows)) for name, rows in data["sources"].items()],
            "validation": str(write_examples(work / "validation", data["validation"])),
            "test": str(write_examples(work / "test", data["test"])),
            "rows": rows_of(data["sources"]),
        }

        def cached(method: str) -> dict[str, Any] | None:
            return {r["key"]: r for r in read_jsonl(cache)}.get(
                run_key(args, seed, method, commits.get(method, commit))
            )

        def finish(run: dict[str, Any]) -> dict[str, Any]:
            run |= {"seed": seed, "key": run_key(args, seed, run["method"], commit), "commit": commit}
            store(cache, run)
            log.info(
                "seed %d %s: test macro-F1 %.4f (validation %.4f), kept %s, %.0f s",
                seed,
                run["method"],
                run["test"],
                run["validation"],
                run["kept"],
                run["wall_seconds"],
            )
            return run

        fixed = {k: args.__dict__[k] for k in ("epochs", "learning_rate", "batch_size") if args.__dict__[k] != "auto"}
        with locked(Path(tempfile.gettempdir()) / f"autoft_{cache.stem}_seed{seed}.lock"):
            first = cached("proportional") or finish(
                train_once("proportional", files, work, args, seed, fixed, weights=dict.fromkeys(SOURCES, 1.0))
            )
        settings = {**fixed, **first["settings"]}
        for method, how in plan(args, {s: len(r) for s, r in files["rows"].items()}).items():
            if cached(method) is None:
                finish(train_once(method, files, work, args, seed, settings, **how))


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per method, test macro-F1 mean ± std over seeds; ``grid`` as the mixture best on validation and (hindsight)
    the one best on test, per seed."""
    by: dict[str, list[dict[str, Any]]] = {}
    for seed in sorted({r["seed"] for r in runs}):
        mine = [r for r in runs if r["seed"] == seed]
        grid = [r for r in mine if r["method"].startswith("grid-") or r["method"] == "proportional"]
        for r in mine:
            if not r["method"].startswith("grid-"):
                by.setdefault(r["method"], []).append(r)
        if len(grid) > 1:
            by.setdefault("best fixed (chosen on validation)", []).append(max(grid, key=lambda r: r["validation"]))
            by.setdefault("best fixed in hindsight (on test)", []).append(max(grid, key=lambda r: r["test"]))
    return {
        name: {
            "test_mean": float(np.mean([r["test"] for r in rs])),
            "test_std": float(np.std([r["test"] for r in rs])),
            "seeds": len(rs),
            "chosen": [r["method"] for r in rs],
            "kept": {s: [r["kept"][s] for r in rs] for s in SOURCES},
            "wall_seconds": float(np.mean([r["wall_seconds"] for r in rs])),
        }
        for name, rs in by.items()
    }


def markdown(summary: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    head = (
        f"Mixed-source pool (issue 27): TweetEval emotion {args.sizes[0]} rows, {args.sizes[1]} more with "
        f"{args.heavy_noise:.0%} of their labels replaced, {args.sizes[2]} BANKING77 queries with random emotion "
        f"labels; TweetEval's validation and test. Test macro-F1, mean ± std over seeds; kept: the share of each "
        f"source the method trained on (agents: rows not left out at the end; grid: weight above 0).\n\n"
        "| method | test macro-F1 | seeds | kept: tweets / noisy / off-domain | mixture | wall s |\n"
        "|---|---:|---:|---|---|---:|"
    )
    lines = [head]
    for name, row in summary.items():
        kept = " / ".join(
            "–" if any(v is None for v in row["kept"][s]) else f"{np.mean(row['kept'][s]):.2f}" for s in SOURCES
        )
        mixture = ", ".join(dict.fromkeys(row["chosen"])) if name.startswith("best") else ""
        lines.append(
            f"| {LABELS.get(name, name)} | {row['test_mean']:.3f} ± {row['test_std']:.3f} | {row['seeds']} | {kept} | "
            f"{mixture} | {row['wall_seconds']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sizes", type=int, nargs=3, default=[1000, 1500, 1000], metavar=("TWEETS", "NOISY", "OFF"))
    parser.add_argument("--heavy-noise", type=float, default=0.5, help="share of noisy_tweets' labels replaced")
    parser.add_argument("--grid", type=float, nargs="+", default=[0.0, 0.5, 1.0], help="the fixed mixtures' weights")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--model", default="default")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--epochs", default="auto")
    parser.add_argument("--learning-rate", default="auto")
    parser.add_argument("--batch-size", default="auto")
    parser.add_argument("--data-root", help="shared data folder (default: ../shared/data beside the checkout)")
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS / "mixed_source",
        help="stem of STEM.json, STEM.md and the run cache STEM_runs.jsonl (runs found there are not run again)",
    )
    parser.add_argument("--no-run", action="store_true", help="write the results from the cached runs; run none")
    parser.add_argument(
        "--commit",
        nargs="+",
        default=[],
        metavar="[METHOD=]COMMIT",
        help="the cached runs of this commit (default: the last that changed src/); METHOD=COMMIT for one method's",
    )
    args = parser.parse_args()
    for key in ("epochs", "batch_size"):
        value = getattr(args, key)
        setattr(args, key, value if value == "auto" else int(value))
    if args.learning_rate != "auto":
        args.learning_rate = float(args.learning_rate)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    stem = args.output.with_suffix("")
    cache = stem.with_name(f"{stem.name}_runs.jsonl")
    head, dirty = src_commit()
    commits = dict(c.split("=", 1) if "=" in c else ("", c) for c in args.commit)
    commit = commits.pop("", head + ("_dirty" if dirty else ""))
    if not args.no_run:
        for seed in args.seeds:
            one_seed(args, seed, cache, commit, commits)
    by_key = {r["key"]: r for r in read_jsonl(cache)}
    wanted = ["proportional", *plan(args, dict.fromkeys(SOURCES, 1))]  # (the names only: sizes set no name)
    runs = [
        by_key[key]
        for seed in args.seeds
        for method in wanted
        if (key := run_key(args, seed, method, commits.get(method, commit))) in by_key
    ]
    summary = summarise(runs)
    text = markdown(summary, args)
    write_result(
        args.output.with_suffix(".json"),
        {
            "arguments": {k: v for k, v in vars(args).items() if k != "output"} | {"output": str(args.output)},
            "commit": commit,
            "commits": commits,
            "summary": summary,
            "runs": runs,
        },
        text,
    )


if __name__ == "__main__":
    main()
