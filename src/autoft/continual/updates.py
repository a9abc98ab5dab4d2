"""``autoft update``: a new run directory trained from its parent's weights on new data plus a replay of old samples
(see :mod:`autoft.continual`)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from autoft.comparison import resolve_run_dir
from autoft.config import AUTO, ONE_LABEL_TASKS, TEXT_TARGET_TASKS, Config
from autoft.continual.aligning import HeadAligning
from autoft.continual.gate import _compare, new_validation
from autoft.continual.replay import (
    _flagged_origins,
    _labels_of,
    _margins,
    _read,
    _replay_weights,
    _replayed_distillation,
    _representations,
    choose_replay,
    lineage_data,
    replay_count,
    replay_weight,
)
from autoft.continual.staging import keep_staged, read_pool, stage, with_files
from autoft.data.loading import Example
from autoft.data.splits import sorted_labels
from autoft.errors import ConfigError, RunDirError
from autoft.io import read_jsonl, write_json
from autoft.lineage import LINEAGE, RECORD, history, latest, lineage_lock, point_latest, root_of
from autoft.modeling import parameter_efficient
from autoft.modeling.heads import grow_head
from autoft.run import Run, train
from autoft.training.callbacks import TrainerCallback
from autoft.training.regularizers import Distillation, WeightPenalty, fisher_diagonal, trainable_weights

if TYPE_CHECKING:
    from collections.abc import Callable

    from autoft.config import PeftConfig
    from autoft.data.splits import Splits

log = logging.getLogger(__name__)


@dataclass
class UpdateResult:
    run: Run
    record: dict[str, Any]

    @property
    def promoted(self) -> bool:
        return bool(self.record["promoted"])


class _AdapterStack(TrainerCallback):
    """Writes the parent's adapters (``lora-per-task``) beside the update's own in its model folder."""

    def __init__(self, parent_model: Path, parent_labels: list[str]) -> None:
        self.parent_model, self.parent_labels = parent_model, parent_labels

    SAVED = ()

    def write_artifacts(self, folder: Path, train: list[Example], labels: list[str]) -> None:
        parameter_efficient.write_stack(self.parent_model, folder / "model", self.parent_labels)


DECIDED_AFRESH = {
    "training.epochs": "epochs",
    "training.early_stopping_patience": "early_stopping_patience",
    "selection.drop_fraction": "drop_fraction",
}
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


def _child_config(
    parent: Run, train_files: list[str], validation: str | None, output: Path, overrides: list[str] | None
) -> Config:
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
        why = (
            "auto chose them for the parent's data"
            if auto is not None
            else "the parent's metrics.json does not record which settings auto chose"
        )
        log.info("update: auto again for the new data (%s): %s", why, ", ".join(afresh))
    if kept:
        log.info(
            "update: kept as the parent's config set them: %s (--set KEY=auto decides one afresh)", ", ".join(kept)
        )
    raw["output_dir"] = str(output)
    return parse_config(apply_overrides(raw, overrides or []), source="update")


def _replay_rows(
    parent: Run, parent_path: Path, continual: Any, texts: bool, new: int
) -> tuple[list[Example], list[Example], np.ndarray, str]:
    """The lineage's old training and validation examples, the rows of the old training ones to replay (beside
    ``new`` new samples), and how they were chosen (for the log and the lineage record)."""
    old_train, old_validation, chain = lineage_data(parent_path)
    budget = replay_count(continual.replay_budget, len(old_train), new)
    chosen, how = np.array([], dtype=np.int64), "no replay (continual.replay_budget 0)"
    if budget:
        flagged_origins = _flagged_origins(chain)
        flagged = np.array([e.origin in flagged_origins for e in old_train])
        by = continual.replay_by
        if by != "random" and texts:
            log.info(
                "replay: %s has no label margin or output layer over labels to choose old samples by; a seeded "
                "random sample instead",
                parent.task,
            )
            by = "random"
        if by == "value":
            value = _margins(parent, old_train)
        elif by == "herding":
            value = _representations(parent, old_train)
        else:
            value = np.zeros(len(old_train))
        by_class = parent.config.task in ONE_LABEL_TASKS
        groups = np.array([e.label for e in old_train]) if by_class else None
        chosen = choose_replay(value, flagged, budget, by, parent.config.training.seed, groups)
        how = (
            {
                "random": "a seeded random sample",
                "herding": "those whose mean best matches their group's in the parent's own representation (herding)",
            }.get(by, "the highest margins of the parent model for the given label")
            + (" in each class, in proportion to its size" if by_class else "")
            + f", none of the {int(flagged.sum())} an agent of the lineage flagged"
        )
    return old_train, old_validation, chosen, how


def _replayed_callbacks(
    parent: Run, continual: Any, replay_file: str, replay: dict[str, Any], distill: float
) -> list[Callable[[Splits], TrainerCallback]]:
    """The callbacks of the rows read from ``replay_file``: their loss weight and, with ``distill_on: replayed``,
    distillation on them alone."""
    callbacks = [_replay_weights(replay_file, cast(float, replay["weight"]))]  # (the rows are known once split)
    if distill > 0 and continual.distill_on == "replayed":
        callbacks.append(_replayed_distillation(parent.model, distill, replay_file))
    log.info(
        "replayed samples weigh %.3g each in the loss (continual.replay_weight %s)",
        replay["weight"],
        continual.replay_weight,
    )
    return callbacks


DISTILL_FULL_ROWS = 8
"""``continual.distill: auto`` distils at full strength where the new labels bring at most this many training rows
each; with more, at (this / their rows per label)², down to ``DISTILL_FLOOR`` (reached at 16 rows each)."""
DISTILL_FLOOR = 0.25
"""The lightest ``auto`` distillation, the lightest measured: no lighter weight was measured with more than 16 rows
a new label, and at 16 no distillation at all ended behind a quarter."""


def _distill_weight(continual: Any, added: list[str], replayed: list[Example], new: list[Example]) -> float:
    """The update's distillation weight: ``continual.distill``, or with ``auto`` none where the label set stays (the
    replay covers the old labels, and distillation would only slow learning the new data) and, where the update
    brings new labels, 1 while they have at most ``DISTILL_FULL_ROWS`` rows each, less (down to ``DISTILL_FLOOR``)
    as they have more: once there are enough rows to learn them, the pull toward the parent's predictions on every
    new row holds the new labels back more than it protects the old ones (docs/benchmarks/continual.md,
    "Distillation by rows per new label"); 0 where it would distil on the replayed samples alone and none are
    replayed."""
    distill = continual.distill
    if distill == AUTO and not added:
        distill = 0.0  # (answers and responses have no labels to count)
    elif distill == AUTO:
        fresh = set(added)
        rows = sum(1 for e in new if _labels_of([e]) & fresh)  # (at least one: the added labels come from them)
        distill = min(1.0, max(DISTILL_FLOOR, (DISTILL_FULL_ROWS * len(added) / rows) ** 2))
    if distill > 0 and continual.distill_on == "replayed" and not replayed:
        log.warning("continual.distill_on: replayed, but the update replays no old samples: no distillation")
        return 0.0
    return float(distill)


def _protections(
    parent: Run,
    parent_path: Path,
    model: Any,
    continual: Any,
    anchor: list[Example],
    distill: float,
    stacked: bool,
    seed: int,
) -> list[TrainerCallback | Callable[[Splits], TrainerCallback]]:
    """The callbacks that keep the old knowledge: a pull toward the parent's weights, distillation from the parent
    (at ``distill``; on the replayed rows alone, ``_replayed_callbacks``, once they are staged), the parent's
    adapters written beside the update's."""
    callbacks: list[TrainerCallback | Callable[[Splits], TrainerCallback]] = []
    if continual.method in ("ewc", "l2"):
        fisher = None
        if continual.method == "ewc":
            fisher = fisher_diagonal(model, parent.adapter, parent.adapter.encode(anchor), seed=seed)
        callbacks.append(WeightPenalty(trainable_weights(model), continual.penalty, fisher))
    if distill > 0 and continual.distill_on == "all":
        callbacks.append(Distillation(parent.model, distill))
    if stacked:
        callbacks.append(_AdapterStack(parent_path / "model", parent.labels))
    return callbacks


def _check_method(continual: Any, parent: Run, parent_path: Path, added: list[str]) -> bool:
    """Whether the update stacks an adapter per task (``lora-per-task``); a method the parent cannot take is an
    error."""
    stacked = continual.method == "lora-per-task"
    peft = cast("PeftConfig", parent.config.training.peft)  # read only where the parent has adapters
    if stacked and not (parent.is_peft and peft.method == "lora"):
        kind = "an " + peft.method if parent.is_peft else "a fully fine-tuned"
        raise ConfigError(
            f"continual.method: lora-per-task needs a parent trained with training.peft lora; "
            f"{parent_path} is {kind} run"
        )
    if added and parent.is_peft and not stacked:
        raise ConfigError(
            f"new labels {added}: growing the head of a training.peft run needs continual.method: "
            "lora-per-task (or update a fully fine-tuned run, or retrain with every label)"
        )
    return stacked


def _start_model(parent_path: Path, stacked: bool, added: list[str], labels: list[str], seed: int) -> Any:
    """The weights the update trains from: the parent's (its adapters folded into the base, frozen, when
    ``train()`` puts a new adapter on top), the head grown for ``added`` labels."""
    if stacked:
        model = parameter_efficient.merge(Run.load(parent_path).model)
    else:
        model = Run.load(parent_path, trainable=True).model
    if added:
        grow_head(model, labels, seed=seed)
        log.info("new labels %s: the head grows from %d to %d outputs", added, len(labels) - len(added), len(labels))
    return model


def _pool_record(run: Run, texts: int) -> dict[str, Any] | None:
    """What self-training made of the unlabelled texts (None: there were none)."""
    if not texts:
        return None
    learned = run.metrics.get("self_training") or {}
    return {
        "texts": texts,
        "mode": learned.get("mode", "off"),
        "admitted_last_epoch": learned.get("admitted_last_epoch", 0),
    }


def _record(root: Path, output: Path, record: dict[str, Any]) -> None:
    """The update's record in its folder and the lineage's, and ``latest`` moved to it when promoted."""
    write_json(output / RECORD, record)
    with (root / LINEAGE).open("a", encoding="utf-8") as stream:
        stream.write(json.dumps(record) + "\n")
    if record["promoted"]:
        point_latest(root, output.resolve())
        log.info("promoted: %s is the lineage's latest", output)
    else:
        log.warning(
            "not promoted (%s): %s stays the lineage's latest; the candidate is kept in %s",
            record["gate"]["why"],
            latest(root),
            output,
        )


def _as_paths(given: str | Path | list[str | Path] | None) -> list[str]:
    return [] if given is None else [str(f) for f in (given if isinstance(given, list) else [given])]


def _parent_dir(given: str | Path) -> Path:
    """The parent run's directory (of an `autoft run` output: its better run on validation), checked finished."""
    parent_path, better = resolve_run_dir(given)
    if better is not None:
        log.info("update: the parent is %s of %s", better, given)
    for name in ("config.yaml", "labels.json", "model", "metrics.json"):
        if not (parent_path / name).exists():
            raise RunDirError(f"{parent_path}: not a finished autoft run directory (missing {name})")
    return parent_path


def _replay(
    parent: Run, parent_path: Path, continual: Any, texts: bool, labelled: bool, new: int
) -> tuple[list[Example], list[Example], list[Example], dict[str, Any]]:
    """The lineage's old training and validation rows, the replayed ones (beside ``new`` new samples), and the
    replay's record (with the weight each replayed sample has in the loss)."""
    old_train, old_validation, chosen, how = _replay_rows(parent, parent_path, continual, texts, new)
    replayed = [old_train[i] for i in chosen]
    if not labelled and not replayed:
        raise ConfigError(
            "an update from unlabelled texts alone trains on replayed old samples beside them; "
            "continual.replay_budget is 0 (give labelled data too, or a budget above 0)"
        )
    weight = None if not replayed else replay_weight(continual.replay_weight, len(old_train), len(replayed))
    log.info("replay: %d of the lineage's %d old training samples (%s)", len(replayed), len(old_train), how)
    record = {
        "samples": len(replayed),
        "of": len(old_train),
        "budget": continual.replay_budget,
        "by": continual.replay_by,
        "how": how,
        "weight": weight,
    }
    return old_train, old_validation, replayed, record


def _aligning(parent: Run, model: Any, continual: Any, validation: list[Example]) -> HeadAligning:
    """Weight aligning of the grown head (``continual.align``), chosen on the old and new validation rows."""
    return HeadAligning(
        model,
        len(parent.labels),
        validation,
        mode=continual.align,
        metric=parent.adapter.primary_metric,
        greater_is_better=parent.adapter.greater_is_better,
    )


def _update_record(
    run: Run,
    files: list[str],
    validation: str | Path | None,
    pools: list[str],
    continual: Any,
    added: list[str],
    replay: dict[str, Any],
    distill: Any,
    pool_size: int,
) -> dict[str, Any]:
    """What the lineage records of an update beside the gate's verdict: its data, method, replay and scores."""
    return {
        "data": {
            "train": [str(Path(f).resolve()) for f in files],
            "validation": str(Path(validation).resolve()) if validation else None,
            "unlabeled": [str(Path(f).resolve()) for f in pools],
        },
        "method": continual.method,
        "new_labels": added,
        "replay": replay,
        "distill": distill,
        "align": run.metrics.get("align"),
        "unlabeled": _pool_record(run, pool_size),
        "validation": run.metrics.get("validation"),
        "test": run.metrics.get("test"),
    }


def update(
    parent_dir: str | Path,
    data: str | Path | list[str | Path] | None = None,
    *,
    unlabeled: str | Path | list[str | Path] | None = None,
    validation: str | Path | None = None,
    output: str | Path | None = None,
    overrides: list[str] | None = None,
    overwrite: bool = False,
    resume: bool = False,
) -> UpdateResult:
    """Continue the run in ``parent_dir`` on the new labelled ``data`` (one file or several) and/or the
    ``unlabeled`` texts (files, or folders of them: classification), learned from by self-training (the model's
    pseudo-labels, admitted per class by the agent, ``selection.self_training``) beside the replayed old samples;
    see the module docstring. Without new labelled data the lineage's validation examples validate the update
    (unless ``validation`` is given). ``output`` defaults to ``<root>-update-<n>`` beside the lineage's root.
    ``resume``: continue an interrupted update (give the same ``output``) from its last checkpoint."""
    parent_path = _parent_dir(parent_dir)
    files, pools = _as_paths(data), _as_paths(unlabeled)
    if not files and not pools:
        raise ConfigError("update: give new labelled data, unlabelled texts (--unlabeled), or both")
    root = root_of(parent_path)
    with lineage_lock(root):
        made = len(history(root)) - 1
        output = Path(output) if output is not None else root.parent / f"{root.name}-update-{made + 1}"
        if output.resolve() in (parent_path.resolve(), root):
            raise RunDirError(f"{output}: an update cannot overwrite its parent or its lineage's root")
        parent = Run.load(parent_path)  # scores the old samples and, after training, is compared with the update
        texts = parent.task in TEXT_TARGET_TASKS  # answers and responses: no label set to grow or distil
        pool = read_pool(pools, parent) if pools else []
        # The training files are settled below, once the replay is chosen (the parent's stand in till then).
        config = _child_config(
            parent,
            files or parent.config.data.train_files,
            None if validation is None else str(validation),
            output,
            overrides,
        )
        continual = config.continual
        new = [e for f in files for e in _read(f, parent.config, "data")]
        if validation is not None:
            _read(validation, parent.config, "validation")
        unseen = set() if texts else _labels_of(new) - set(parent.labels)
        added = sorted_labels(unseen) if unseen else []
        stacked = _check_method(continual, parent, parent_path, added)

        # Replay: of everything the lineage trained on, the old samples chosen by continual.replay_by.
        old_train, old_validation, replayed, replay = _replay(
            parent, parent_path, continual, texts, bool(files), len(new) + len(pool)
        )
        if pool:
            log.info(
                "%d unlabelled texts from %s: self-training (%s) from the parent's pseudo-labels",
                len(pool),
                ", ".join(pools),
                config.selection.self_training,
            )

        model = _start_model(parent_path, stacked, added, parent.labels + added, config.training.seed)
        distill = _distill_weight(continual, added, replayed, new)
        callbacks = _protections(
            parent, parent_path, model, continual, replayed or old_train, distill, stacked, config.training.seed
        )
        own_validation = old_validation if validation is None and not files else None
        with tempfile.TemporaryDirectory(dir=output.parent if output.parent.exists() else None) as staging:
            staged = stage(Path(staging), parent, replayed, pool, own_validation)
            if "replay" in staged:
                callbacks += _replayed_callbacks(parent, continual, str(staged["replay"]), replay, distill)
            config = with_files(config, files, staged)
            own_new = None if own_validation is not None else new_validation(config, parent.labels + added)
            if added and parent.config.task in ONE_LABEL_TASKS and not stacked:
                callbacks.append(_aligning(parent, model, continual, old_validation + (own_new or [])))
            output.parent.mkdir(parents=True, exist_ok=True)
            run = train(
                config,
                overwrite=overwrite,
                callbacks=callbacks,
                model=model,
                labels=parent.labels + added,
                resume=resume,
            )
            keep_staged(run, output, files, staged)
            config = run.config

        record = _compare(parent, run, old_validation, config, continual.gate, new_validation=own_new)
        record.update(
            {
                "run": str(output.resolve()),
                "parent": str(parent_path.resolve()),
                "root": str(root),
                "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                **_update_record(run, files, validation, pools, continual, added, replay, distill, len(pool)),
            }
        )
        _record(root, output, record)
    return UpdateResult(run, record)
