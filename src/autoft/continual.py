"""Continual learning: ``autoft update`` continues a finished run on new data without forgetting the old.

An update is a new run directory trained from its parent's weights (``Run.load(..., trainable=True)``) on the
new data plus a replay of old training samples (``continual.replay_budget`` of all the data the lineage has
trained on, chosen by ``continual.replay_by``: those the parent model holds most firmly — its margin for the
given label — or a seeded random sample; never one an agent of the lineage flagged), optionally pulled toward
the parent's weights (``continual.method: ewc | l2``, :mod:`autoft.training.regularizers`). New labels widen
the task head; the old label ids keep their meaning. Question answering and generation (answers and responses,
no label set) update the same way, with a seeded random replay (no label margin ranks their samples), no head to
grow and no distillation; their gate reads the primary metric's direction (a loss must not rise).

The update trains with its parent's resolved settings, but of the epoch budget, early-stopping patience and the
agent's drop fraction, those the parent left to ``auto`` (chosen for its data's size and noise) are ``auto``
again, decided for the new data; those its config set (``training.epochs: 1``) stay. Both are logged.

A lineage is the first run (its root) and every update made from it or its descendants:

    root/lineage.jsonl   one line per update (run, parent, data, when, metrics, gate, promoted)
    root/latest          symlink to the newest promoted run (absent: the root itself)
    root/.update.lock    held while an update runs: two updates never write the same lineage
    update/lineage.json  the update's own record, with ``parent`` and ``root``
    update/replay.<ext>  the old samples it replayed (in the training data's format)

After training, the lineage's validation data (and the new validation data, on the labels the parent knows)
is scored by parent and update alike; the promotion gate (``continual.gate``) lets the update become ``latest``
only if it is not worse than its parent on either by more than the tolerance. A candidate that fails is kept
for inspection. Any error (bad input, a half-written parent, a lock held) leaves the parent untouched.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autoft.comparison import resolve_run_dir
from autoft.config import AUTO, ONE_LABEL_TASKS, TEXT_TARGET_TASKS, Config
from autoft.data.loading import Example
from autoft.data.splits import Splits, load_splits, read_file, sorted_labels
from autoft.data.writing import write_examples
from autoft.errors import ConfigError, DataError, RunDirError
from autoft.io import read_jsonl, write_checksums, write_json, write_text_atomic
from autoft.modeling import parameter_efficient
from autoft.modeling.heads import grow_head
from autoft.run import Run, train
from autoft.training.callbacks import RowWeights, TrainerCallback
from autoft.training.inference import predict_probabilities
from autoft.training.regularizers import Distillation, WeightPenalty, fisher_diagonal, trainable_weights

log = logging.getLogger(__name__)

LINEAGE = "lineage.jsonl"
RECORD = "lineage.json"
LATEST = "latest"
LOCK = ".update.lock"


@dataclass
class UpdateResult:
    run: Run
    record: dict[str, Any]

    @property
    def promoted(self) -> bool:
        return bool(self.record["promoted"])


# --- lineage ------------------------------------------------------------------------------------

def root_of(run_dir: str | Path) -> Path:
    """The first run of ``run_dir``'s lineage (the run itself when it is not an update)."""
    path = Path(run_dir).resolve()
    record = path / RECORD
    if record.exists():
        return Path(json.loads(record.read_text(encoding="utf-8"))["root"])
    return path


def latest(run_dir: str | Path) -> Path:
    """The lineage's newest promoted run."""
    root = root_of(run_dir)
    link = root / LATEST
    return link.resolve() if link.is_symlink() else root


def history(run_dir: str | Path) -> list[dict[str, Any]]:
    """The lineage of ``run_dir``: the root, then every update in the order made (``lineage.jsonl``)."""
    root = root_of(run_dir)
    metrics_path = root / "metrics.json"
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.exists() else {}
    first = {"run": str(root), "parent": None, "created": None, "validation": metrics.get("validation"),
             "test": metrics.get("test"), "promoted": True}
    return [first, *read_jsonl(root / LINEAGE)]


@contextlib.contextmanager
def lineage_lock(root: Path) -> Iterator[None]:
    """Hold ``root/.update.lock`` exclusively, or fail at once with a one-line ``RunDirError``."""
    from filelock import FileLock, Timeout

    lock = FileLock(root / LOCK, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunDirError(f"{root}: another autoft update of this lineage is running (lock {root / LOCK})") from None
    try:
        yield
    finally:
        lock.release()


def _point_latest(root: Path, run: Path) -> None:
    """Make ``root/latest`` point at ``run`` (a relative symlink, replaced atomically)."""
    temp = root / f".{LATEST}.tmp-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    os.symlink(os.path.relpath(run, root), temp)
    os.replace(temp, root / LATEST)


# --- inputs -------------------------------------------------------------------------------------

def _read(path: str | Path, config: Config, what: str) -> list[Example]:
    d = config.data
    if not Path(path).is_file():
        raise DataError(f"{what}: {path}: file not found")
    return read_file(path, d, task=config.task)


def _labels_of(examples: list[Example]) -> set[str]:
    return {v for e in examples for v in (e.label if isinstance(e.label, list) else [e.label])}


def chain_of(run_dir: str | Path) -> list[Path]:
    """The runs from the lineage's root to ``run_dir``, following each update's ``parent``."""
    chain, path = [], Path(run_dir).resolve()
    while True:
        chain.append(path)
        record = path / RECORD
        if not record.exists():
            return chain[::-1]
        path = Path(json.loads(record.read_text(encoding="utf-8"))["parent"])


def lineage_data(run_dir: str | Path) -> tuple[list[Example], list[Example], list[Path]]:
    """``(train, validation, runs)``: every training and validation example the lineage up to ``run_dir`` learned
    from or held out — each run's own new data, not the samples it replayed — without repeats (by file:line)."""
    from autoft.config import load_config

    train: dict[str, Example] = {}
    validation: dict[str, Example] = {}
    chain = chain_of(run_dir)
    for path in chain:
        config = load_config(path / "config.yaml")
        labels = json.loads((path / "labels.json").read_text(encoding="utf-8"))["labels"]
        splits = load_splits(config.data, task=config.task, seed=config.training.seed, known=labels, warn=False)
        own = str(path) + os.sep  # an update's replay file lives in its run directory
        train.update((e.origin, e) for e in splits.train if not e.origin.startswith(own))
        validation.update((e.origin, e) for e in splits.validation)
    return list(train.values()), list(validation.values()), chain


def _flagged_origins(runs: list[Path]) -> set[str]:
    """The file:line of every sample an agent of these runs left out (their ``data_values.csv``)."""
    import csv

    flagged: set[str] = set()
    for path in runs:
        values = path / "data_values.csv"
        if values.exists():
            with values.open(newline="", encoding="utf-8") as stream:
                flagged.update(row["origin"] for row in csv.DictReader(stream) if row["flagged"] == "True")
    return flagged


def _margins(parent: Run, old: list[Example]) -> np.ndarray:
    """[N] the parent model's margin for each old sample's given label: how firmly the model it would forget
    holds it."""
    features = parent.adapter.encode(old)
    probabilities, _ = predict_probabilities(parent.model, parent.adapter, features,
                                             batch_size=parent.config.training.eval_batch_size, progress=False)
    return np.array([parent.adapter.label_margin(p, f) for p, f in zip(probabilities, features)])


def _quotas(sizes: np.ndarray, budget: int) -> np.ndarray:
    """``budget`` split over groups in proportion to ``sizes`` (largest remainders; at most a group's size), every
    non-empty group getting one first while the budget lasts."""
    quota = np.zeros(len(sizes), dtype=np.int64)
    order = np.argsort(-sizes, kind="stable")
    for g in order[: budget]:
        if sizes[g] > 0:
            quota[g] = 1
    left = budget - int(quota.sum())
    if left > 0:
        share = left * np.maximum(sizes - quota, 0) / max(int(np.maximum(sizes - quota, 0).sum()), 1)
        extra = np.floor(share).astype(np.int64)
        remainder = share - extra
        quota += extra
        for g in np.argsort(-remainder, kind="stable")[: left - int(extra.sum())]:
            quota[g] += 1
    return np.minimum(quota, sizes)


def choose_replay(value: np.ndarray, flagged: np.ndarray, budget: int, by: str, seed: int,
                  groups: np.ndarray | None = None) -> np.ndarray:
    """Sorted indices of at most ``budget`` old samples to replay, never a flagged one: the highest-valued
    (``value``) or a seeded random draw (``random``). With ``groups`` (e.g. each sample's class), the budget is
    shared between the groups in proportion to their unflagged samples, each getting at least one, so no old
    class is left without a sample."""
    candidates = np.flatnonzero(~np.asarray(flagged, dtype=bool))
    budget = min(budget, len(candidates))
    if budget <= 0:
        return np.array([], dtype=np.int64)
    rng = np.random.default_rng(seed)

    def pick(pool: np.ndarray, k: int) -> np.ndarray:
        if by == "random":
            return rng.choice(pool, k, replace=False)
        return pool[np.argsort(-np.asarray(value)[pool], kind="stable")[:k]]

    if groups is None:
        return np.sort(pick(candidates, budget))
    names, of = np.unique(np.asarray(groups)[candidates], return_inverse=True)
    quota = _quotas(np.bincount(of, minlength=len(names)), budget)
    return np.sort(np.concatenate([pick(candidates[of == g], int(quota[g])) for g in range(len(names))]))


# --- the update ---------------------------------------------------------------------------------

def _replay_weights(replay_file: str, weight: float) -> Callable[[Splits], TrainerCallback]:
    """A callback factory for ``train``: the rows read from ``replay_file`` weigh ``weight`` in the loss."""
    def make(splits: Splits) -> TrainerCallback:
        rows = [i for i, e in enumerate(splits.train) if e.origin.rpartition(":")[0] == replay_file]
        return RowWeights(rows, weight)
    return make


class _AdapterStack(TrainerCallback):
    """Writes the parent's adapters (``lora-per-task``) beside the update's own in its model folder."""

    def __init__(self, parent_model: Path, parent_labels: list[str]) -> None:
        self.parent_model, self.parent_labels = parent_model, parent_labels

    SAVED = ()

    def write_artifacts(self, folder: Path, train: list[Example], labels: list[str]) -> None:
        parameter_efficient.write_stack(self.parent_model, folder / "model", self.parent_labels)


DECIDED_AFRESH = {"training.epochs": "epochs", "training.early_stopping_patience": "early_stopping_patience",
                  "selection.drop_fraction": "drop_fraction"}
"""The settings an update decides again for its own data when the parent left them to ``auto`` (its config holds
what ``auto`` chose for the parent's data: an epoch budget for its size, a drop fraction for its noise), with
the name the parent's record of its choices gives each."""


def _auto_in(parent: Run) -> set[str] | None:
    """The names of ``DECIDED_AFRESH`` the parent left to ``auto``: its training plan's choices (``metrics.json``
    ``auto``) and its agent's drop fraction (the noise estimate in ``decisions.jsonl``, whose ``how`` says
    ``set to`` for a number from the config). None: a run written before ``metrics.json`` kept its choices."""
    if "auto" not in parent.metrics:
        return None
    chosen = set(parent.metrics["auto"] or {})
    decisions = parent.path / "decisions.jsonl"
    records = read_jsonl(decisions) if decisions.exists() else []
    estimate = next((r for r in records if r.get("event") == "noise-estimate"), None)
    if estimate is not None and not str(estimate.get("how", "")).startswith("set to"):
        chosen.add("drop_fraction")
    return chosen


def _child_config(parent: Run, train_files: list[str], validation: str | None, output: Path,
                  overrides: list[str] | None) -> Config:
    """The parent's resolved config for the new data: its rate and batch size stay; of the epoch budget,
    patience and the agent's drop fraction, what ``auto`` chose for the parent's data is decided afresh for
    the new data, and what the parent's config set stays (``DECIDED_AFRESH``, logged); ``overrides`` last."""
    from autoft.config import apply_overrides, parse_config

    raw = parent.config.model_dump(mode="json")
    raw["data"].update(train=train_files, validation=validation, unlabeled=None)
    auto = _auto_in(parent)
    afresh, kept = [], []
    for key, name in DECIDED_AFRESH.items():
        section, field = key.split(".")
        value = raw[section][field]
        if value == AUTO:
            continue
        if auto is None or name in auto:
            raw[section][field] = AUTO
            afresh.append(f"{key} (the parent's {value})")
        else:
            kept.append(f"{key}: {value}")
    if afresh:
        why = ("auto chose them for the parent's data" if auto is not None else
               "the parent's metrics.json does not record which settings auto chose")
        log.info("update: auto again for the new data (%s): %s", why, ", ".join(afresh))
    if kept:
        log.info("update: kept as the parent's config set them: %s (--set KEY=auto decides one afresh)",
                 ", ".join(kept))
    raw["output_dir"] = str(output)
    return parse_config(apply_overrides(raw, overrides or []), source="update")


def update(parent_dir: str | Path, data: str | Path | list[str | Path], *, validation: str | Path | None = None,
           output: str | Path | None = None, overrides: list[str] | None = None, overwrite: bool = False,
           resume: bool = False) -> UpdateResult:
    """Continue the run in ``parent_dir`` on the new labelled ``data`` (one file or several); see the module
    docstring. ``output`` defaults to ``<root>-update-<n>`` beside the lineage's root. ``resume``: continue an
    interrupted update (give the same ``output``) from its last checkpoint."""
    parent_path, chosen = resolve_run_dir(parent_dir)  # an `autoft run` output: its better run on validation
    if chosen is not None:
        log.info("update: the parent is %s of %s", chosen, parent_dir)
    for name in ("config.yaml", "labels.json", "model", "metrics.json"):
        if not (parent_path / name).exists():
            raise RunDirError(f"{parent_path}: not a finished autoft run directory (missing {name})")
    root = root_of(parent_path)
    files = [str(f) for f in (data if isinstance(data, list) else [data])]
    with lineage_lock(root):
        made = len(history(root)) - 1
        output = Path(output) if output is not None else root.parent / f"{root.name}-update-{made + 1}"
        if output.resolve() in (parent_path.resolve(), root):
            raise RunDirError(f"{output}: an update cannot overwrite its parent or its lineage's root")
        parent = Run.load(parent_path)  # scores the old samples and, after training, is compared with the update
        texts = parent.task in TEXT_TARGET_TASKS  # answers and responses: no label set to grow or distil
        config = _child_config(parent, files, None if validation is None else str(validation), output, overrides)
        continual = config.continual
        new = [e for f in files for e in _read(f, parent.config, "data")]
        if validation is not None:
            _read(validation, parent.config, "validation")
        unseen = set() if texts else _labels_of(new) - set(parent.labels)
        added = sorted_labels(unseen) if unseen else []
        labels = parent.labels + added
        stacked = continual.method == "lora-per-task"
        if stacked and not (parent.is_peft and parent.config.training.peft.method == "lora"):
            raise ConfigError(f"continual.method: lora-per-task needs a parent trained with training.peft lora; "
                              f"{parent_path} is {'an ' + parent.config.training.peft.method if parent.is_peft else 'a fully fine-tuned'} run")
        if added and parent.is_peft and not stacked:
            raise ConfigError(f"new labels {added}: growing the head of a training.peft run needs continual.method: "
                              "lora-per-task (or update a fully fine-tuned run, or retrain with every label)")

        # Replay: of everything the lineage trained on, the old samples the parent holds most firmly.
        old_train, old_validation, chain = lineage_data(parent_path)
        budget = round(continual.replay_budget * len(old_train))
        chosen, how = np.array([], dtype=np.int64), "no replay (continual.replay_budget 0)"
        if budget:
            flagged_origins = _flagged_origins(chain)
            flagged = np.array([e.origin in flagged_origins for e in old_train])
            by = continual.replay_by
            if by == "value" and texts:
                log.info("replay: %s has no label margin to rank old samples by; a seeded random sample instead",
                         parent.task)
                by = "random"
            value = _margins(parent, old_train) if by == "value" else np.zeros(len(old_train))
            by_class = parent.config.task in ONE_LABEL_TASKS
            groups = np.array([e.label for e in old_train]) if by_class else None
            chosen = choose_replay(value, flagged, budget, by, parent.config.training.seed, groups)
            how = ("a seeded random sample" if by == "random" else
                   "the highest margins of the parent model for the given label") + \
                (" in each class, in proportion to its size" if by_class else "") + \
                f", none of the {int(flagged.sum())} an agent of the lineage flagged"
        replayed = [old_train[i] for i in chosen]
        weight = None if not replayed else (len(old_train) / len(replayed) if continual.replay_weight == AUTO
                                            else continual.replay_weight)
        log.info("replay: %d of the lineage's %d old training samples (%s)", len(replayed), len(old_train), how)

        if stacked:  # the parent's adapters fold into the base, frozen; train() puts a new adapter on top
            model = parameter_efficient.merge(Run.load(parent_path).model)
        else:
            model = Run.load(parent_path, trainable=True).model  # the weights the update trains from
        if added:
            grow_head(model, labels, seed=config.training.seed)
            log.info("new labels %s: the head grows from %d to %d outputs", added, len(parent.labels), len(labels))
        callbacks = []
        if continual.method in ("ewc", "l2"):
            fisher = None
            if continual.method == "ewc":
                anchor = replayed or old_train
                fisher = fisher_diagonal(model, parent.adapter, parent.adapter.encode(anchor),
                                         seed=config.training.seed)
            callbacks.append(WeightPenalty(trainable_weights(model), continual.penalty, fisher))
        # Distillation protects the old labels' scores when new labels compete with them; with the label set
        # unchanged the replay covers the old labels, and it would only slow learning the new data.
        distill = (1.0 if added else 0.0) if continual.distill == AUTO else continual.distill
        if distill > 0:
            callbacks.append(Distillation(parent.model, distill))
        if stacked:
            callbacks.append(_AdapterStack(parent_path / "model", parent.labels))

        with tempfile.TemporaryDirectory(dir=output.parent if output.parent.exists() else None) as staging:
            train_files = list(files)
            replay_file = None
            if replayed:
                d = parent.config.data
                replay_file = write_examples(Path(staging) / "replay", replayed, text_column=d.text_column,
                                             label_column=d.label_column, task=parent.task)
                train_files.append(str(replay_file))
                callbacks.append(_replay_weights(str(replay_file), weight))
                log.info("replayed samples weigh %.3g each in the loss (continual.replay_weight %s)", weight,
                         continual.replay_weight)
                config = config.model_copy(update={"data": config.data.model_copy(update={"train": train_files})})
            output.parent.mkdir(parents=True, exist_ok=True)
            run = train(config, overwrite=overwrite, callbacks=callbacks, model=model, labels=labels, resume=resume)
            if replay_file is not None:  # the replayed samples stay with the run, and its config names them
                kept = output / replay_file.name
                shutil.copyfile(replay_file, kept)
                config = run.config.model_copy(update={"data": run.config.data.model_copy(update={
                    "train": [*files, str(kept.resolve())]})})
                write_text_atomic(output / "config.yaml", config.to_yaml())
                write_checksums(output)  # sealed again, with the replay file and the config that names it
                run.config = config

        record = _compare(parent, run, old_validation, config, continual.gate)
        record.update({
            "run": str(output.resolve()), "parent": str(parent_path.resolve()), "root": str(root),
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "data": {"train": [str(Path(f).resolve()) for f in files],
                     "validation": str(Path(validation).resolve()) if validation else None},
            "method": continual.method, "new_labels": added,
            "replay": {"samples": len(replayed), "of": len(old_train), "budget": continual.replay_budget,
                       "by": continual.replay_by, "how": how,
                       "weight": weight},
            "distill": distill,
            "validation": run.metrics.get("validation"), "test": run.metrics.get("test"),
        })
        write_json(output / RECORD, record)
        with (root / LINEAGE).open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")
        if record["promoted"]:
            _point_latest(root, output.resolve())
            log.info("promoted: %s is the lineage's latest", output)
        else:
            log.warning("not promoted (%s): %s stays the lineage's latest; the candidate is kept in %s",
                        record["gate"]["why"], latest(root), output)
    return UpdateResult(run, record)


def _score(run: Run, examples: list[Example]) -> float | None:
    """``run``'s primary metric on the ``examples`` whose labels it knows (every one, for answers and responses)."""
    known = set(run.labels)
    kept = examples if run.task in TEXT_TARGET_TASKS else [e for e in examples if _labels_of([e]) <= known]
    return float(run.evaluate(kept)[run.adapter.primary_metric]) if kept else None


def _compare(parent: Run, child: Run, old_validation: list[Example], config: Config, tolerance: float | None
             ) -> dict[str, Any]:
    """Parent and update scored on the lineage's validation data and on the update's (rows whose labels the
    parent knows), and the promotion gate's verdict."""
    new_validation = load_splits(config.data, task=config.task, seed=config.training.seed,
                                 known=child.labels, warn=False).validation
    sets = {"old_validation": old_validation, "new_validation": new_validation}
    scores: dict[str, Any] = {}
    failed = []
    for name, examples in sets.items():
        before, after = _score(parent, examples), _score(child, examples)
        scores[name] = {"parent": before, "update": after,
                        "change": None if before is None or after is None else round(after - before, 6),
                        "rows": len(examples)}
        if tolerance is None or before is None or after is None:
            continue
        if child.adapter.greater_is_better and after < before - tolerance:
            failed.append(f"{name} {child.adapter.primary_metric} {after:.4f} < parent {before:.4f} - {tolerance:g}")
        elif not child.adapter.greater_is_better and after > before + tolerance:  # a loss
            failed.append(f"{name} {child.adapter.primary_metric} {after:.4f} > parent {before:.4f} + {tolerance:g}")
    promoted = not failed
    why = "; ".join(failed) if failed else ("no gate" if tolerance is None else f"within {tolerance:g} of the parent")
    return {"metric": child.adapter.primary_metric, "scores": scores,
            "gate": {"tolerance": tolerance, "why": why}, "promoted": promoted}


def lineage_table(run_dir: str | Path) -> str:
    """The lineage as text: one line per run, oldest first, the latest marked."""
    runs = history(run_dir)
    newest = str(latest(run_dir))
    lines = []
    for i, entry in enumerate(runs):
        metric = (entry.get("metric") or "")
        scores = entry.get("scores", {}).get("old_validation", {})
        change = scores.get("change")
        lines.append("  ".join([
            "*" if entry["run"] == newest else " ",
            f"{i}", entry["run"], entry.get("created") or "(root)",
            f"new data: {', '.join(Path(f).name for f in entry['data']['train'])}" if entry.get("data") else "",
            f"replay {entry['replay']['samples']}" if entry.get("replay") else "",
            f"old validation {metric} {change:+.4f}" if change is not None else "",
            "" if entry.get("promoted", True) else "NOT PROMOTED: " + entry["gate"]["why"],
        ]).rstrip())
    return "\n".join(lines)


__all__ = ["UpdateResult", "choose_replay", "history", "latest", "lineage_lock", "lineage_table", "root_of", "update"]
