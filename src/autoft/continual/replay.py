"""What an update replays: the data the lineage trained on, and which old samples to draw from it (those the
parent model holds most firmly, those that represent their class in the parent's own representation, or a seeded
random sample; never one an agent of the lineage flagged)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import cast

import numpy as np
import torch

from autoft.config import AUTO, Config
from autoft.data.loading import Example
from autoft.data.splits import Splits, load_splits, read_file
from autoft.errors import DataError
from autoft.lineage import chain_of
from autoft.modeling.heads import output_layer
from autoft.run import Run
from autoft.training.callbacks import RowWeights, TrainerCallback
from autoft.training.inference import layer_inputs, predict_probabilities
from autoft.training.regularizers import Distillation

log = logging.getLogger(__name__)


def _read(path: str | Path, config: Config, what: str) -> list[Example]:
    d = config.data
    if not Path(path).is_file():
        raise DataError(f"{what}: {path}: file not found")
    return read_file(path, d, task=config.task)


def _labels_of(examples: list[Example]) -> set[str]:
    return {cast(str, v) for e in examples for v in (e.label if isinstance(e.label, list) else [e.label])}


def lineage_data(run_dir: str | Path) -> tuple[list[Example], list[Example], list[Path]]:
    """``(train, validation, runs)``: every training and validation example the lineage up to ``run_dir`` learned
    from or held out — each run's own new data, not the samples it replayed nor the lineage validation an update
    without labelled data validated on — without repeats (by file:line)."""
    from autoft.config import load_config

    train: dict[str, Example] = {}
    validation: dict[str, Example] = {}
    chain = chain_of(run_dir)
    for path in chain:
        config = load_config(path / "config.yaml")
        labels = json.loads((path / "labels.json").read_text(encoding="utf-8"))["labels"]
        splits = load_splits(config.data, task=config.task, seed=config.training.seed, known=labels, warn=False)
        own = str(path) + os.sep  # an update's replay (and copied lineage validation) files live in its folder
        train.update((e.origin, e) for e in splits.train if not e.origin.startswith(own))
        validation.update((e.origin, e) for e in splits.validation if not e.origin.startswith(own))
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
    probabilities, _ = predict_probabilities(
        parent.model, parent.adapter, features, batch_size=parent.config.training.eval_batch_size, progress=False
    )
    return np.array([parent.adapter.label_margin(p, f) for p, f in zip(probabilities, features)])


def _representations(parent: Run, old: list[Example]) -> np.ndarray:
    """[N, D] the parent model's own representation of each old sample: what its output layer receives."""
    layer = output_layer(parent.model)
    features = parent.adapter.encode(old)
    return layer_inputs(
        parent.model, layer, parent.adapter, features, batch_size=parent.config.training.eval_batch_size
    )


def _quotas(sizes: np.ndarray, budget: int) -> np.ndarray:
    """``budget`` split over groups in proportion to ``sizes`` (largest remainders; at most a group's size), every
    non-empty group getting one first while the budget lasts."""
    quota = np.zeros(len(sizes), dtype=np.int64)
    order = np.argsort(-sizes, kind="stable")
    for g in order[:budget]:
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


def herding(features: np.ndarray, k: int) -> np.ndarray:
    """Indices of ``k`` rows of ``features`` [N, D] chosen greedily so that the mean of those chosen so far stays
    closest to the mean of all (iCaRL's herding, Rebuffi et al. CVPR 2017), on L2-normalised rows: exemplars that
    represent their class, not its easiest samples."""
    x = np.asarray(features, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    target, total = x.mean(axis=0), np.zeros(x.shape[1])
    chosen: list[int] = []
    free = np.ones(len(x), dtype=bool)
    for t in range(1, min(k, len(x)) + 1):
        distance = np.linalg.norm(target - (total + x) / t, axis=1)
        distance[~free] = np.inf
        best = int(np.argmin(distance))
        chosen.append(best)
        free[best], total = False, total + x[best]
    return np.array(chosen, dtype=np.int64)


def choose_replay(
    value: np.ndarray, flagged: np.ndarray, budget: int, by: str, seed: int, groups: np.ndarray | None = None
) -> np.ndarray:
    """Sorted indices of at most ``budget`` old samples to replay, never a flagged one: the highest-valued
    (``value`` [N]), a seeded random draw (``random``) or, with ``value`` the parent's representation of each
    sample [N, D], those that represent their group (``herding``). With ``groups`` (e.g. each sample's class), the
    budget is shared between the groups in proportion to their unflagged samples, each getting at least one, so no
    old class is left without a sample."""
    candidates = np.flatnonzero(~np.asarray(flagged, dtype=bool))
    budget = min(budget, len(candidates))
    if budget <= 0:
        return np.array([], dtype=np.int64)
    rng = np.random.default_rng(seed)

    def pick(pool: np.ndarray, k: int) -> np.ndarray:
        if by == "random":
            return rng.choice(pool, k, replace=False)
        if by == "herding":
            return pool[herding(np.asarray(value)[pool], k)]
        return pool[np.argsort(-np.asarray(value)[pool], kind="stable")[:k]]

    if groups is None:
        return np.sort(pick(candidates, budget))
    names, of = np.unique(np.asarray(groups)[candidates], return_inverse=True)
    quota = _quotas(np.bincount(of, minlength=len(names)), budget)
    return np.sort(np.concatenate([pick(candidates[of == g], int(quota[g])) for g in range(len(names))]))


AUTO_BUDGET_FLOOR = 0.1
"""``continual.replay_budget: auto`` replays at least this share of the old training samples."""


def replay_count(budget: float | str, old: int, new: int) -> int:
    """How many of the ``old`` training samples an update replays: ``budget`` of them, or with ``auto`` as many as
    the update's ``new`` samples (an even mix of old and new, whatever the lineage's size: an update costs about
    twice its new data), at least ``AUTO_BUDGET_FLOOR`` of the old ones and at most all of them."""
    if budget == AUTO:
        return min(old, max(new, round(AUTO_BUDGET_FLOOR * old)))
    return round(cast(float, budget) * old)


def replay_weight(setting: float | str, old: int, replayed: int) -> float:
    """The loss weight of each of ``replayed`` samples drawn from ``old``: ``continual.replay_weight`` when a
    number; ``full``: all the old samples each stands for (``old / replayed``, the old data weighing what it would
    in joint training); ``auto``: their square root. Weighted by all of them, a few replayed rows (a budget of a
    tenth) outweigh the new data, and each update learns its new classes less well than the one before; weighing
    one, the old classes are forgotten (docs/benchmarks/continual.md, "The replay weight")."""
    if setting == AUTO:
        return float(np.sqrt(old / replayed))
    if setting == "full":
        return old / replayed
    return float(setting)


def _replayed_rows(splits: Splits, replay_file: str) -> list[int]:
    """The training rows read from ``replay_file``."""
    return [i for i, e in enumerate(splits.train) if e.origin.rpartition(":")[0] == replay_file]


def _replay_weights(replay_file: str, weight: float) -> Callable[[Splits], TrainerCallback]:
    """A callback factory for ``train``: the rows read from ``replay_file`` weigh ``weight`` in the loss."""
    return lambda splits: RowWeights(_replayed_rows(splits, replay_file), weight)


def _replayed_distillation(
    teacher: torch.nn.Module, strength: float, replay_file: str
) -> Callable[[Splits], TrainerCallback]:
    """A callback factory for ``train``: distillation from ``teacher`` on the rows read from ``replay_file`` alone
    (``continual.distill_on: replayed``)."""

    def make(splits: Splits) -> TrainerCallback:
        rows = _replayed_rows(splits, replay_file)
        log.info("distillation on the %d replayed samples alone (continual.distill_on replayed)", len(rows))
        return Distillation(teacher, strength, rows=rows)

    return make
