"""Never worse than plain: ``autoft run`` with every default against its own plain run, setting by setting (issue 26).

Each cell is one ``autoft.autonomous.run(config)`` (what ``autoft run`` calls) whose config holds only ``task``,
``data``, ``output_dir`` and ``training: {seed, progress: false}``: plain fine-tuning and the agent side by side on the
same files, nothing tuned, the noise rate never told. Per cell and run (plain, autonomous): the test and validation
primary metric (``metrics.json`` ``primary_metric``), per-class test F1, wall seconds, learning rate and epochs; for
the agent also its estimated noise rate and drop fraction, its ``back-off`` / ``class-floor`` / ``class-warning``
decisions, the rewards its policy learned from and what it selected each epoch; and which run ``autoft run`` serves
(``comparison.json`` ``better``, chosen on validation). Derived: ``gap`` (autonomous − plain, test),
``classes_lost`` (where plain's test F1 is above 0.2, the agent's run below a quarter of it), ``served`` (the served
run's test score). ``--policy NAME`` runs the same cells with another agent (issue 27: ``exp3`` and ``alignment``,
the learned policies, against ``suspicion``, the default since the learning did not help; ``--output`` to a cache of
their own; ``benchmarks/learned_vs_static.py`` sets them side by side).

Each cell records its agent's policy (cells measured before it did ran exp3, the default then). The tables of a
policy hold its cells and, for any policy, the cells where the agent was idle or did not run: an idle agent is decided
from the noise estimate and the selection settings before any policy acts, and trains as plain fine-tuning.
``--cells STEM`` reads another cache's cells too (the default's tables from ``never_worse_static``'s suspicion cells
and the idle cells of ``never_worse``).

    python benchmarks/never_worse.py                                   # every setting, seeds 0 1 2 (CPU days)
    python benchmarks/never_worse.py --settings clean                  # a group: clean, noisy, gains, plain_auto
    python benchmarks/never_worse.py --settings tweeteval_300_clean banking77_300_clean --seeds 0
    python benchmarks/never_worse.py --settings tweeteval_sym40_noise_seeds_345 --cleanlab
    python benchmarks/never_worse.py --no-run                          # the results from the cached cells
    taskset -c 1 python benchmarks/never_worse.py --threads 1 ...      # one core, next to other work

Settings (training seeds ``--seeds``, default 0 1 2; the noise seed is the training seed unless a setting says):

- ``clean`` (never worse): ``tweeteval_full_clean``, ``banking77_1500_clean``, ``btc_1500_clean``,
  ``semeval_2000_clean``, ``sgd_multilabel_clean``, ``tweeteval_300_clean``, ``banking77_300_clean``,
  ``tweeteval_300_noise10`` and ``banking77_300_noise10`` (10% symmetric). Slices of TweetEval, BANKING77 and BTC
  are drawn as ``benchmarks/defaults.py`` draws them (a seed-0 random N training rows, max(200, N/5) validation
  rows, the full test split: every training seed sees the same rows); SemEval-2010 Task 8 as
  ``benchmarks/relation.py`` (800 validation sentences, a seeded 2,000 of the rest); SGD dialogue acts as
  ``benchmarks/multilabel.py`` (2,000 training and 500 validation turns; ``autoft run`` does not run the agent on
  multi-label data and fine-tunes once, so that cell has no autonomous run and serves plain).
  Targets: autonomous mean ≥ plain mean − 0.005, no seed below its plain − 0.02, no class lost.
- ``noisy`` (no seed below plain): ``tweeteval_sym40_noise_seeds_345``, full TweetEval at 40% symmetric noise,
  noise seeds 3 4 5 with training seeds 0 1 2. ``--cleanlab`` adds cleanlab as a baseline on these cells
  (``benchmarks/noisy_labels.py``'s: 5-fold frozen-feature probe, ``find_label_issues``, prune, then ``autoft.train``
  with every default). Targets: no seed below plain, no class lost, autonomous mean ≥ cleanlab mean.
- ``gains`` (gains hold): ``tweeteval_asym30`` (30% asymmetric, to each class's most confusable one, as
  noisy_labels.py), ``banking77_sym40`` (full BANKING77, 40% symmetric), ``btc_flips30`` (30% entity-type flips
  as ``benchmarks/noisy_ner.py``, on its first 2,000 training sentences as its results at HEAD, full validation and
  test). Target: a mean gain above 0.
- ``plain_auto``: ``plain_auto_sym40``, plain ``autoft.train`` alone (every default, policy none) on full
  TweetEval at 40% symmetric noise. Target: no seed below 0.60.
- ``reference``: ``btc_flips30_clean``, ``btc_flips30``'s sentences with their true tags, the clean score issue 27's
  BTC target is measured against (flipped tags ≥ clean − 2 points). No target of its own.

Cells are cached in ``benchmarks/results/never_worse_cells.jsonl`` keyed by setting, seed and the last commit that
changed src/ (short hash; ``dirty`` records uncommitted changes under src/): a cell of the current commit is reused unless
``--fresh``. ``never_worse.json`` and ``.md`` are written from every cached cell of the current commit for the
selected settings, after each cell. ``--output STEM`` moves all three (``STEM.json``, ``STEM.md``,
``STEM_cells.jsonl``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import yaml
from defaults import slice_files
from noisy_labels import confusable_classes, inject
from noisy_ner import entity_types, flip_entity_types
from public_data import load_public, shared_root, task_of
from result_files import src_commit, store

import autoft
from autoft.autonomous import run as run_side_by_side
from autoft.config import DEFAULT_POLICY
from autoft.data.loading import Example, load_examples
from autoft.data.writing import write_examples
from autoft.io import read_jsonl, work_folder, write_text_atomic

log = logging.getLogger("never_worse")
RESULTS = Path(__file__).resolve().parent / "results"
SLICE_SEED = 0
"""Every slice is drawn with seed 0, so every training seed sees the same rows."""
PROBE_MODEL, PROBE_LENGTH, CLEANLAB_C = "default", 128, 1.0
"""The frozen-feature probes (asymmetric noise's confusable classes, cleanlab), as noisy_labels.py's defaults."""
EVENTS = ("back-off", "class-floor", "class-warning", "idle")
LOST_ABOVE = 0.2
LOST_SHARE = 0.25
"""A class is lost where plain's test F1 is above ``LOST_ABOVE`` and the agent's run keeps less than ``LOST_SHARE`` of
it (the issue's target counts F1 0 only; an F1 of 0.06 against plain's 0.43 is a lost class too)."""


@dataclass(frozen=True)
class Setting:
    data: str  # a load_public name, or "semeval" (relation extraction)
    size: str = "full"  # or a seed-0 random N training rows (as defaults.py, relation.py, multilabel.py draw them)
    first: int | None = None  # then the first N training rows (noisy_ner.py's --train-limit)
    noise: float = 0.0
    noise_kind: str = "symmetric"  # symmetric, asymmetric (classification) or flips (NER entity types)
    noise_seed_offset: int = 0  # noise seed = training seed + this
    group: str = "clean"
    plain_only: bool = False
    cleanlab: bool = False  # --cleanlab runs the baseline on these cells

    @property
    def task(self) -> str:
        return "relation-extraction" if self.data == "semeval" else task_of(self.data)


SETTINGS = {
    "tweeteval_full_clean": Setting("tweeteval_emotion"),
    "banking77_1500_clean": Setting("banking77", "1500"),
    "btc_1500_clean": Setting("btc_ner", "1500"),
    "semeval_2000_clean": Setting("semeval", "2000"),
    "sgd_multilabel_clean": Setting("sgd_acts", "2000"),
    "tweeteval_300_clean": Setting("tweeteval_emotion", "300"),
    "banking77_300_clean": Setting("banking77", "300"),
    "tweeteval_300_noise10": Setting("tweeteval_emotion", "300", noise=0.1),
    "banking77_300_noise10": Setting("banking77", "300", noise=0.1),
    "tweeteval_sym40_noise_seeds_345": Setting(
        "tweeteval_emotion", noise=0.4, noise_seed_offset=3, group="noisy", cleanlab=True
    ),
    "tweeteval_asym30": Setting("tweeteval_emotion", noise=0.3, noise_kind="asymmetric", group="gains"),
    "banking77_sym40": Setting("banking77", noise=0.4, group="gains"),
    "btc_flips30": Setting("btc_ner", first=2000, noise=0.3, noise_kind="flips", group="gains"),
    "plain_auto_sym40": Setting("tweeteval_emotion", noise=0.4, group="plain_auto", plain_only=True),
    "btc_flips30_clean": Setting("btc_ner", first=2000, group="reference"),
}
GROUPS = {
    group: [n for n, s in SETTINGS.items() if s.group == group]
    for group in ("clean", "noisy", "gains", "plain_auto", "reference")
}


# --- data ------------------------------------------------------------------------------------------
def seeded(examples: list[Example], n: int) -> list[Example]:
    """A seed-0 random ``n`` of ``examples``, in file order (relation.py's and multilabel.py's draw)."""
    return [examples[i] for i in sorted(np.random.default_rng(SLICE_SEED).permutation(len(examples))[:n])]


def semeval_splits(n: int, root: str | None) -> dict[str, list[Example]]:
    """relation.py's split: a seeded 800 of TRAIN_FILE.TXT validate, a seeded ``n`` of the rest train."""
    folder = shared_root(root) / "semeval2010_task8"
    pool = load_examples(folder / "TRAIN_FILE.TXT", task="relation-extraction")
    order = np.random.default_rng(SLICE_SEED).permutation(len(pool))
    return {
        "train": [pool[i] for i in sorted(order[800:][:n])],
        "validation": [pool[i] for i in sorted(order[:800])],
        "test": load_examples(folder / "TEST_FILE_FULL.TXT", task="relation-extraction"),
    }


def clean_splits(setting: Setting, folder: Path, root: str | None) -> dict[str, list[Example]]:
    """The setting's train / validation / test examples before any noise."""
    if setting.data == "semeval":
        return semeval_splits(int(setting.size), root)
    if setting.data == "sgd_acts":  # multilabel.py: 2,000 training and 500 validation turns, every test turn
        splits = load_public("sgd_acts", root)
        return {
            "train": seeded(splits["train"], int(setting.size)),
            "validation": seeded(splits["validation"], 500),
            "test": splits["test"],
        }
    files = slice_files(setting.data, setting.size, folder, seed=SLICE_SEED, root=root)  # defaults.py's slice
    splits = {name: load_examples(path, task=setting.task) for name, path in files.items()}
    if setting.first:
        splits["train"] = splits["train"][: setting.first]
    return splits


def add_noise(setting: Setting, splits: dict[str, list[Example]], seed: int) -> tuple[list[Example], dict[str, Any]]:
    """The training examples with noise at the setting's rate and kind, and what was injected."""
    train = splits["train"]
    if setting.noise_kind == "flips":
        tags, flipped, noisy = flip_entity_types([e.label for e in train], setting.noise, seed, entity_types(train))
        return [Example(e.text, t) for e, t in zip(train, tags)], {
            "spans_flipped": flipped,
            "noisy_share": round(float(noisy.mean()), 4),
        }
    confusable = confusable_classes(splits, PROBE_MODEL, PROBE_LENGTH) if setting.noise_kind == "asymmetric" else {}
    labels = inject([e.label for e in train], setting.noise, setting.noise_kind, seed, confusable)
    return [Example(e.text, label) for e, label in zip(train, labels)], {
        "noisy_share": round(float(np.mean([e.label != label for e, label in zip(train, labels)])), 4),
        **({"confusable": confusable} if confusable else {}),
    }


def cell_files(
    setting: Setting, seed: int, folder: Path, *, root: str | None, train_limit: int | None
) -> tuple[dict[str, str], dict[str, Any]]:
    """Write the cell's data files; returns them and a record of sizes and injected noise."""
    splits = clean_splits(setting, folder / "clean", root)
    if train_limit:  # quick checks only
        splits["train"], splits["validation"] = splits["train"][:train_limit], splits["validation"][:train_limit]
    record: dict[str, Any] = {"noise_seed": None}
    if setting.noise:
        record["noise_seed"] = seed + setting.noise_seed_offset
        splits["train"], record["injected"] = add_noise(setting, splits, record["noise_seed"])
    if setting.task in ("classification", "relation-extraction"):
        # A small slice of many classes misses some (BANKING77 300: 77 classes): autoft refuses a validation or test
        # label that never occurs in training, so those rows leave both (counted here).
        known = {e.label for e in splits["train"]}
        for name in ("validation", "test"):
            kept = [e for e in splits[name] if e.label in known]
            if len(kept) < len(splits[name]):
                record.setdefault("unseen_label_rows_removed", {})[name] = len(splits[name]) - len(kept)
            splits[name] = kept
    record["sizes"] = {name: len(examples) for name, examples in splits.items()}
    return {name: str(write_examples(folder / name, examples)) for name, examples in splits.items()}, record


# --- runs ------------------------------------------------------------------------------------------
def class_f1(report: dict[str, Any] | None) -> dict[str, float]:
    """Per-class F1 of a report: classification_report's classes (``f1-score``), relation types (``f1``)."""
    return {
        name: round(float(row.get("f1-score", row.get("f1"))), 4)
        for name, row in (report or {}).items()
        if isinstance(row, dict) and not name.endswith(" avg") and ("f1-score" in row or "f1" in row)
    }


def read_run(folder: Path) -> dict[str, Any]:
    """A run directory's scores: primary metric on test and validation, per-class F1, wall, rate, epochs."""
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    primary = metrics["primary_metric"]
    return {
        "metric": primary,
        "test": metrics["test"][primary],
        "validation": metrics["validation"][primary],
        "per_class": class_f1(metrics["test"].get("report")),
        "wall_seconds": metrics["wall_seconds"],
        "learning_rate": metrics["training"]["learning_rate"],
        "epochs": metrics["training"]["epochs"],
        "epochs_run": len(metrics["epochs"]),
        "best_epoch": metrics["best_epoch"],
        "sizes": metrics["sizes"],
        "noise": metrics.get("noise"),
    }


def read_agent(folder: Path) -> dict[str, Any]:
    """``read_run`` and the agent's noise estimate, drop fraction, its back-off / class-floor / class-warning
    decisions (none where the library does not log them) and the evidence of each back-off (``metrics.json``)."""
    run = read_run(folder)
    noise = run.pop("noise") or {}
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    decisions = read_jsonl(folder / "decisions.jsonl")
    return {
        **run,
        "estimated_noise": noise.get("rate"),
        "drop_fraction": noise.get("drop_fraction"),
        "events": [r for r in decisions if r.get("event") in EVENTS],
        "back_off": metrics.get("back_off", []),
        "rewards": sum(r.get("event") == "reward" and "policy_update" in r for r in decisions),
        "sample_rewards": next(  # a policy rewarded per sample (alignment): how many rows' rewards it learned from
            (
                r["policy_update"].get("rewards")
                for r in reversed(decisions)
                if r.get("event") == "reward" and isinstance(r.get("policy_update"), dict)
            ),
            None,
        ),
        "selections": [  # what the policy chose each epoch: rows kept and repaired, the bucket emphasised
            {k: r.get(k) for k in ("epoch", "kept", "relabelled", "unlabelled", "emphasised_bucket")}
            for r in decisions
            if r.get("event") == "select"
        ],
    }


def agent_selection(args: argparse.Namespace) -> dict[str, Any]:
    """The ``selection:`` section of the cell's agent: ``--policy`` and ``--selection`` (empty: every default)."""
    section: dict[str, Any] = {}
    for item in args.selection or []:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise SystemExit(f"--selection {item!r}: expected KEY=VALUE")
        section[key] = yaml.safe_load(value)
    return {"policy": args.policy, **section} if args.policy else section


def fine_tune(
    setting: Setting, files: dict[str, str], seed: int, work: Path, selection: dict[str, Any], plain_from: Path | None
) -> dict[str, Any]:
    """``autoft run`` (or, plain only, ``autoft.train``) with every default but ``selection``. ``plain_from``: a
    folder that keeps the cell's finished plain run, resumed from there when it holds one (so the cell's other
    agents do not train plain again), saved there when not."""
    output = work / "run"
    config: dict[str, Any] = {
        "task": setting.task,
        "data": files,
        "output_dir": str(output),
        "training": {"seed": seed, "progress": False},
        **({"selection": selection} if selection else {}),
    }
    started = time.perf_counter()
    if setting.plain_only:
        autoft.train(config)
        plain, agent, better = read_run(output), None, None
    else:
        reused = plain_from is not None and (plain_from / "checksums.json").is_file()
        if reused:  # autoft run's resume keeps a finished plain run it finds in its work folder
            shutil.copytree(cast(Path, plain_from), work_folder(output) / "plain")
            log.info("plain run reused from %s", plain_from)
        run_side_by_side(config, resume=reused)
        if plain_from is not None and not reused:
            shutil.copytree(output / "plain", plain_from.with_name(plain_from.name + ".tmp"), dirs_exist_ok=True)
            os.replace(plain_from.with_name(plain_from.name + ".tmp"), plain_from)
        plain = read_run(output / "plain")
        agent = read_agent(output / "autonomous") if (output / "autonomous" / "metrics.json").exists() else None
        better = json.loads((output / "comparison.json").read_text(encoding="utf-8"))["better"]
    plain.pop("noise")
    return {
        "plain": plain,
        "autonomous": agent,
        "better": better,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def cleanlab_run(files: dict[str, str], seed: int, work: Path) -> dict[str, Any]:
    """noisy_labels.py's cleanlab: out-of-fold probabilities of a frozen-feature probe, ``find_label_issues``, the
    issues pruned; then ``autoft.train`` with every default on the rest."""
    try:
        from cleanlab.filter import find_label_issues
    except ImportError:
        raise SystemExit("--cleanlab needs cleanlab: pip install 'autoft[bench]'") from None
    from autoft.selection.embeddings import embed_examples
    from autoft.selection.state import probe_probabilities

    started = time.perf_counter()
    train, val = (load_examples(files[k], task="classification") for k in ("train", "validation"))
    names = sorted({e.label for e in train + val})
    y, yv = (np.array([names.index(e.label) for e in examples]) for examples in (train, val))
    both = embed_examples(PROBE_MODEL, train + val, max_length=PROBE_LENGTH, progress=False)
    oof, _ = probe_probabilities(
        both[: len(train)], y, both[len(train) :], yv, n_classes=len(names), seed=seed, c=CLEANLAB_C
    )
    flagged = find_label_issues(y, oof)
    kept = write_examples(work / "cleanlab-train", [e for e, bad in zip(train, flagged) if not bad])
    autoft.train(
        {
            "task": "classification",
            "data": {**files, "train": str(kept)},
            "output_dir": str(work / "cleanlab"),
            "training": {"seed": seed, "progress": False},
        }
    )
    run = read_run(work / "cleanlab")
    run.pop("noise")
    return {**run, "pruned": int(flagged.sum()), "wall_seconds": round(time.perf_counter() - started, 1)}


def derive(cell: dict[str, Any]) -> None:
    """``gap``, ``classes_lost`` and ``served`` of a cell."""
    plain, agent, better = cell["plain"], cell["autonomous"], cell["better"]
    cell["gap"] = None if agent is None else round(agent["test"] - plain["test"], 4)
    cell["classes_lost"] = (
        []
        if agent is None
        else sorted(
            name
            for name, f1 in plain["per_class"].items()
            if f1 > LOST_ABOVE and agent["per_class"].get(name, 0.0) < LOST_SHARE * f1
        )
    )
    served = "autonomous" if better and better["run"] == "autonomous" and agent else "plain"
    cell["served_run"], cell["served"] = served, (agent if served == "autonomous" else plain)["test"]


def run_cell(
    name: str, seed: int, args: argparse.Namespace, *, key: str, commit: str, dirty: bool, cached: dict[str, Any] | None
) -> dict[str, Any]:
    """One cell (or, for a cached one, only its missing cleanlab baseline)."""
    setting, selection = SETTINGS[name], agent_selection(args)
    plain_from = None
    if args.plain_runs:
        limit = f"_limit{args.train_limit}" if args.train_limit else ""
        plain_commit = args.plain_commit or f"{commit}{'_dirty' if dirty else ''}"
        plain_from = args.plain_runs / f"{name}_seed{seed}_{plain_commit}{limit}"
        plain_from.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files, data = cell_files(setting, seed, work / "data", root=args.data_root, train_limit=args.train_limit)
        cell = cached or {
            "key": key,
            "setting": name,
            "seed": seed,
            "commit": commit,
            "dirty": dirty,
            "threads": args.threads,
            "train_limit": args.train_limit,
            "data": data,
            "policy": args.policy or DEFAULT_POLICY,
            **({"selection": selection} if args.selection else {}),
            **fine_tune(setting, files, seed, work, selection, plain_from),
        }
        if args.cleanlab and setting.cleanlab and "cleanlab" not in cell:
            cell["cleanlab"] = cleanlab_run(files, seed, work)
    derive(cell)
    return cell


def cell_line(cell: dict[str, Any]) -> str:
    plain, agent = cell["plain"], cell["autonomous"]
    text = f"{cell['setting']} seed {cell['seed']}: plain {plain['test']:.4f} (val {plain['validation']:.4f})"
    if agent:
        events = {e: sum(r["event"] == e for r in agent["events"]) for e in EVENTS}
        text += (
            f", autonomous {agent['test']:.4f} (val {agent['validation']:.4f}), gap {cell['gap']:+.4f}, "
            f"served {cell['served_run']}, noise est {_num(agent['estimated_noise'])} drop "
            f"{_num(agent['drop_fraction'])}, lost {cell['classes_lost'] or 'none'}, "
            + ", ".join(f"{e} {n}" for e, n in events.items())
        )
    if "cleanlab" in cell:
        text += f", cleanlab {cell['cleanlab']['test']:.4f} ({cell['cleanlab']['pruned']} pruned)"
    return text + f", wall {cell['wall_seconds']:.0f} s"


# --- the cache -------------------------------------------------------------------------------------
def cells_of(stem: Path) -> Path:
    """The cell cache of the results ``stem``."""
    stem = stem.with_suffix("") if stem.suffix in (".json", ".md") else stem
    return stem.with_name(f"{stem.name}_cells.jsonl")


def cell_key(
    name: str, seed: int, commit: str, train_limit: int | None, policy: str | None = None, selection: list[str] = ()
) -> str:
    return (
        f"{name}|seed={seed}|{commit}"
        + (f"|train_limit={train_limit}" if train_limit else "")
        + (f"|policy={policy}" if policy else "")
        + "".join(f"|{item}" for item in sorted(selection))
    )


# --- summary ---------------------------------------------------------------------------------------
def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _spread(values: list[float]) -> str:
    return "–" if not values else f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def check(name: str, met: bool | None, miss: float | None = None, where: str = "") -> dict[str, Any]:
    """A target: met (True / False; None: not checked) and, when missed, by how much in metric units."""
    met = None if met is None else bool(met)
    return {
        "target": name,
        "met": met,
        "miss": round(float(miss), 4) if met is False and miss is not None else None,
        "where": where,
    }


def targets(setting: Setting, cells: list[dict[str, Any]], *, served: bool = False) -> list[dict[str, Any]]:
    """The setting's targets, each met or missed by how much (metric units): of the agent's run, or (``served``)
    of the model ``autoft run`` delivers (``serve`` and ``export`` default to it: the better run on validation)."""
    plain = {c["seed"]: c["plain"]["test"] for c in cells}
    if setting.plain_only:
        worst = min(plain, key=plain.get)
        return [check("every seed ≥ 0.60", plain[worst] >= 0.60, 0.60 - plain[worst], f"seed {worst}")]
    result = {c["seed"]: (c["served"] if served else c["autonomous"]["test"]) for c in cells if c["gap"] is not None}
    gaps = {seed: round(result[seed] - plain[seed], 4) for seed in result}
    if not gaps:
        return [check("one run (no agent for this task): served = plain", True)]
    agent_mean, plain_mean = np.mean(list(result.values())), np.mean(list(plain.values()))
    worst = min(gaps, key=gaps.get)
    lost = [
        f"seed {c['seed']}: {', '.join(c['classes_lost'])}"
        for c in cells
        if c["classes_lost"] and not (served and c["served_run"] == "plain")
    ]
    no_loss = check("no class lost", not lost, where="; ".join(lost))
    if setting.group == "clean":
        return [
            check("mean ≥ plain mean − 0.005", agent_mean >= plain_mean - 0.005, plain_mean - 0.005 - agent_mean),
            check("every seed ≥ plain − 0.02", gaps[worst] >= -0.02, -0.02 - gaps[worst], f"seed {worst}"),
            no_loss,
        ]
    if setting.group == "noisy":
        found = [check("every seed ≥ plain", gaps[worst] >= 0, -gaps[worst], f"seed {worst}"), no_loss]
        cleanlab = [c["cleanlab"]["test"] for c in cells if "cleanlab" in c]  # (found: the targets so far)
        if len(cleanlab) == len(cells):
            found.append(
                check("mean ≥ cleanlab mean", agent_mean >= np.mean(cleanlab), float(np.mean(cleanlab) - agent_mean))
            )
        else:
            found.append(check("mean ≥ cleanlab mean", None, where="cleanlab not run on every seed: --cleanlab"))
        return found
    return [check("mean gain > 0", agent_mean > plain_mean, plain_mean - agent_mean)]


def summarise(name: str, cells: list[dict[str, Any]]) -> dict[str, Any]:
    setting = SETTINGS[name]
    agents = [c["autonomous"] for c in cells if c["autonomous"]]
    gaps = [(c["gap"], c["seed"]) for c in cells if c["gap"] is not None]
    return {
        "seeds": [c["seed"] for c in cells],
        "metric": cells[0]["plain"]["metric"],
        "plain": [c["plain"]["test"] for c in cells],
        "autonomous": [a["test"] for a in agents],
        "served": [c["served"] for c in cells],
        "cleanlab": [c["cleanlab"]["test"] for c in cells if "cleanlab" in c],
        "worst_gap": dict(zip(("gap", "seed"), min(gaps))) if gaps else None,
        "classes_lost": {str(c["seed"]): c["classes_lost"] for c in cells if c["classes_lost"]},
        "events": {e: sum(r["event"] == e for a in agents for r in a["events"]) for e in EVENTS},
        "targets": targets(setting, cells),
        "targets_served": targets(setting, cells, served=True),
    }


def _describe(target: dict[str, Any]) -> str:
    miss = "" if target["miss"] is None else f" missed by {target['miss']:.3f}"
    return target["target"] + miss + (f" ({target['where']})" if target["where"] else "")


def targets_text(found: list[dict[str, Any]]) -> str:
    """'yes', or 'no: ' and each target missed with the size of the miss; then any target not checked."""
    missed, unchecked = ([t for t in found if t["met"] is state] for state in (False, None))
    text = "no: " + "; ".join(map(_describe, missed)) if missed else "yes"
    return text + "".join(f"; not checked: {_describe(t)}" for t in unchecked)


SETTING_HEADER = (
    "| setting | seeds | plain | autonomous | served | worst gap (seed) | cleanlab | classes lost (seed) "
    "| back-offs | targets met: agent's run | targets met: served |\n"
    "|---|---|---:|---:|---:|---:|---:|---|---:|---|---|"
)
CELL_HEADER = (
    "| setting | seed (noise seed) | plain test / val | autonomous test / val | gap | served "
    "| est. noise / drop | rate, epochs run: plain; autonomous | events | wall s |\n"
    "|---|---|---|---|---:|---|---|---|---|---:|"
)


def setting_row(name: str, s: dict[str, Any]) -> str:
    """A setting's row from its summary ``s``."""
    worst = "–" if s["worst_gap"] is None else f"{s['worst_gap']['gap']:+.3f} ({s['worst_gap']['seed']})"
    lost = "; ".join(f"{', '.join(names)} ({seed})" for seed, names in s["classes_lost"].items()) or "none"
    one_run = SETTINGS[name].task == "multi-label-classification"
    agent = _spread(s["autonomous"]) if s["autonomous"] else "– (one run)" if one_run else "–"
    return (
        f"| {name} | {' '.join(map(str, s['seeds']))} | {_spread(s['plain'])} | {agent} | "
        f"{np.mean(s['served']):.3f} | {worst} | {_spread(s['cleanlab'])} | {lost} | {s['events']['back-off']} | "
        f"{targets_text(s['targets'])} | {targets_text(s.get('targets_served') or s['targets'])} |"
    )


def cell_row(name: str, cell: dict[str, Any]) -> str:
    p, a = cell["plain"], cell["autonomous"]
    noise_seed = cell["data"]["noise_seed"]
    seed = f"{cell['seed']}" + ("" if noise_seed is None else f" ({noise_seed})")
    rates = f"{p['learning_rate']:.2g}, {p['epochs_run']}"
    agent = gap = estimate = "–"
    events = ""
    if a:
        agent, gap = f"{a['test']:.3f} / {a['validation']:.3f}", f"{cell['gap']:+.3f}"
        estimate = f"{_num(a['estimated_noise'])} / {_num(a['drop_fraction'])}"
        rates += f"; {a['learning_rate']:.2g}, {a['epochs_run']}"
        counts = {e: sum(r["event"] == e for r in a["events"]) for e in EVENTS}
        events = ", ".join(f"{e} {n}" for e, n in counts.items() if n)
    return (
        f"| {name} | {seed} | {p['test']:.3f} / {p['validation']:.3f} | {agent} | {gap} | {cell['served_run']} | "
        f"{estimate} | {rates} | {events or '–'} | {cell['wall_seconds']:.0f} |"
    )


def measured_at(used: dict[str, str]) -> str:
    """``commit X``, or with cells of several commits which settings each measured."""
    commits = list(dict.fromkeys(used.values()))
    if len(commits) <= 1:
        return f"commit {commits[0] if commits else '–'}"
    return "commits " + "; ".join(f"{c} ({', '.join(n for n, m in used.items() if m == c)})" for c in commits)


def markdown(results: dict[str, Any], used: dict[str, str], policy: str) -> str:
    every = [cell for entry in results.values() for cell in entry["cells"]]
    caveat = (
        " (some cells ran with uncommitted changes under src/: see each cell's `dirty`)"
        if any(cell["dirty"] for cell in every)
        else ""
    )
    agent = "every default" if policy == DEFAULT_POLICY else f"every default but `selection.policy: {policy}`"
    borrowed = sorted({c["cleanlab"]["from_commit"] for c in every if "from_commit" in c.get("cleanlab", {})})
    intro = (
        f"Never worse than plain (issue 26): `autoft run` with {agent} (the agent's policy: {policy}; a cell where "
        f"the agent was idle or did not run holds for any policy), {measured_at(used)}{caveat}. "
        + (f"Cleanlab from the cells of the same setting and seed at {', '.join(borrowed)}. " if borrowed else "")
        + "Test "
        "primary metric (macro-F1; entity F1 for BTC; the official macro-F1 for SemEval; micro-F1 for SGD acts), "
        "mean ± std over seeds; gaps are autonomous − plain, in metric units. *Served* is the model `autoft run` "
        "delivers (`serve` and `export` default to it): the better of the two runs on the same validation rows, "
        "plain on a tie; its targets count a class lost only where the agent's run was served."
    )
    settings = [setting_row(name, entry["summary"]) for name, entry in results.items()]
    cells = [cell_row(name, cell) for name, entry in results.items() for cell in entry["cells"]]
    return "\n".join([intro, "", SETTING_HEADER, *settings, "", CELL_HEADER, *cells])


LEGACY_POLICY = "exp3"
"""The policy of a cell that records none: it was measured before cells recorded theirs, when exp3 was the default."""


def policy_free(cell: dict[str, Any]) -> bool:
    """The agent was idle (decided from the noise estimate and the settings before any policy acts) or did not run:
    the cell holds for every policy."""
    agent = cell["autonomous"]
    return agent is None or any(event["event"] == "idle" for event in agent["events"])


def with_cleanlab(cell: dict[str, Any], cells: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``cell``, with the cleanlab baseline of another cell of its setting and seed where it ran none: the baseline
    is the same whatever the agent (``cleanlab["from_commit"]`` names that cell's commit)."""
    if "cleanlab" in cell:
        return cell
    for other in cells.values():
        if (other["setting"], other["seed"], other.get("train_limit")) == (
            cell["setting"],
            cell["seed"],
            cell.get("train_limit"),
        ) and "cleanlab" in other:
            return {**cell, "cleanlab": {**other["cleanlab"], "from_commit": other["commit"]}}
    return cell


def write_results(
    stem: Path,
    cells: dict[str, dict[str, Any]],
    names: list[str],
    *,
    commits: list[str],
    train_limit: int | None,
    policy: str | None = None,
    selection: dict[str, Any] | None = None,
) -> str:
    """``STEM.json`` and ``STEM.md`` from the cached cells for ``names``, each setting's from the first of ``commits``
    that has cells of it (``SETTING=COMMIT`` in ``commits``: from that one alone); returns the Markdown."""
    results, used = {}, {}
    pinned = dict(c.split("=", 1) for c in commits if "=" in c)  # SETTING=COMMIT: that setting's cells alone
    commits = [c for c in commits if "=" not in c]
    policy = policy or DEFAULT_POLICY
    for name in names:
        for commit in [pinned[name]] if name in pinned else commits:
            by_seed: dict[int, dict[str, Any]] = {}
            for part in commit.split("+"):  # A+B: one setting's seeds from two commits, A's first
                for c in cells.values():
                    if (
                        c["setting"] == name
                        and c["commit"] == part
                        and c.get("train_limit") == train_limit
                        and c.get("selection") == selection
                        and ((c.get("policy") or LEGACY_POLICY) == policy or policy_free(c))
                    ):
                        by_seed.setdefault(c["seed"], c)
            mine = [with_cleanlab(by_seed[seed], cells) for seed in sorted(by_seed)]
            if mine:
                for cell in mine:  # (derived again: a cached cell keeps what the definitions said when it ran)
                    derive(cell)
                results[name] = {"setting": asdict(SETTINGS[name]), "summary": summarise(name, mine), "cells": mine}
                used[name] = commit
                break
    text = markdown(results, used, policy)
    report = {
        "policy": policy,
        "commit": " / ".join(dict.fromkeys(used.values())) or (commits or list(pinned.values()))[0],
        "commits": used,
        "settings": results,
    }
    write_text_atomic(stem.with_name(f"{stem.name}.json"), json.dumps(report, indent=2) + "\n")
    write_text_atomic(stem.with_name(f"{stem.name}.md"), text + "\n")
    return text


# --- command line ----------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--settings",
        nargs="+",
        choices=[*SETTINGS, *GROUPS],
        default=list(SETTINGS),
        metavar="NAME",
        help="settings (listed above) or groups (clean, noisy, gains, plain_auto, reference); default: all",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    parser.add_argument("--cleanlab", action="store_true", help="cleanlab as a baseline on the noisy setting's cells")
    parser.add_argument("--fresh", action="store_true", help="re-run cells cached for this commit")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--data-root", help="shared data folder (default: ../shared/data beside the checkout)")
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS / "never_worse",
        help="stem of STEM.json, STEM.md and the cell cache STEM_cells.jsonl",
    )
    parser.add_argument(
        "--commit",
        nargs="+",
        help="with --no-run: the cells of these commits, each setting's from the "
        "first listed that has cells of it (default: the last commit that changed src/); A+B pools the seeds "
        "of two commits whose changes to src/ leave the setting's path alone (A's cell where both have a seed); "
        "SETTING=COMMIT takes that setting's cells from COMMIT (or A+B) alone",
    )
    parser.add_argument(
        "--no-run",
        action="store_true",
        help="write the results from the cells already cached for this commit; run none",
    )
    parser.add_argument(
        "--policy",
        help="the agent's policy instead of the default (cells keyed by it; e.g. suspicion, the default minus "
        "learning, with --output never_worse_static)",
    )
    parser.add_argument(
        "--selection",
        nargs="+",
        metavar="KEY=VALUE",
        help="the agent's selection settings instead of the defaults (e.g. update_every=20; cells keyed by them, so "
        "give another --output)",
    )
    parser.add_argument(
        "--plain-runs",
        type=Path,
        help="keep each cell's plain run in this folder and reuse it: another policy or --selection on the same cell "
        "trains only its agent (the reward split must be the default's)",
    )
    parser.add_argument(
        "--plain-commit",
        help="with --plain-runs: reuse the plain runs kept at this commit (one whose plain fine-tuning is this one's)",
    )
    parser.add_argument(
        "--cells",
        type=Path,
        nargs="+",
        metavar="STEM",
        help="with --no-run: read these results' cell caches as well as --output's (STEM_cells.jsonl)",
    )
    parser.add_argument("--train-limit", type=int, help=argparse.SUPPRESS)  # quick checks: N training / validation rows
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)

    names = list(dict.fromkeys(n for s in args.settings for n in GROUPS.get(s, [s])))
    stem = args.output.with_suffix("") if args.output.suffix in (".json", ".md") else args.output
    cache = cells_of(stem)
    commit, dirty = src_commit()
    if args.commit and not args.no_run:
        parser.error("--commit writes the tables of cells measured at another commit: give it with --no-run")
    if args.cells and not args.no_run:
        parser.error("--cells writes tables from other caches' cells: give it with --no-run")
    commits = args.commit or [commit]
    cells = {record["key"]: record for stem_ in [stem, *(args.cells or [])] for record in read_jsonl(cells_of(stem_))}
    variant = {"policy": args.policy, "selection": agent_selection(args) if args.selection else None}
    for name in names:
        for seed in args.seeds:
            key = cell_key(name, seed, commit, args.train_limit, args.policy, args.selection or ())
            cached = None if args.fresh else cells.get(key)
            if args.no_run:
                continue
            if cached and ("cleanlab" in cached or not (args.cleanlab and SETTINGS[name].cleanlab)):
                log.info("cached: %s", cell_line(cached))
                continue
            cell = run_cell(name, seed, args, key=key, commit=commit, dirty=dirty, cached=cached)
            log.info("%s", cell_line(cell))
            cells = store(cache, cell)
            write_results(stem, cells, names, commits=commits, train_limit=args.train_limit, **variant)
    print(write_results(stem, cells, names, commits=commits, train_limit=args.train_limit, **variant))


if __name__ == "__main__":
    main()
