"""``autoft update``: a new run directory trained from its parent's weights on new data plus a replay of old samples
(see :mod:`autoft.continual`)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autoft.comparison import resolve_run_dir
from autoft.config import AUTO, ONE_LABEL_TASKS, TEXT_TARGET_TASKS, Config
from autoft.continual.gate import _compare
from autoft.continual.replay import (
    _flagged_origins,
    _labels_of,
    _margins,
    _read,
    _replay_weights,
    choose_replay,
    lineage_data,
)
from autoft.data.loading import Example
from autoft.data.splits import sorted_labels
from autoft.data.writing import write_examples
from autoft.errors import ConfigError, RunDirError
from autoft.io import read_jsonl, write_checksums, write_json, write_text_atomic
from autoft.lineage import LINEAGE, RECORD, history, latest, lineage_lock, point_latest, root_of
from autoft.modeling import parameter_efficient
from autoft.modeling.heads import grow_head
from autoft.run import Run, train
from autoft.training.callbacks import TrainerCallback
from autoft.training.regularizers import Distillation, WeightPenalty, fisher_diagonal, trainable_weights

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


def _replay_rows(parent: Run, parent_path: Path, continual: Any, texts: bool
                 ) -> tuple[list[Example], list[Example], np.ndarray, str]:
    """The lineage's old training and validation examples, the rows of the old training ones to replay, and how
    they were chosen (for the log and the lineage record)."""
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
    return old_train, old_validation, chosen, how


def _protections(parent: Run, parent_path: Path, model: Any, continual: Any, anchor: list[Example],
                 added: list[str], stacked: bool, seed: int) -> tuple[list[TrainerCallback], float]:
    """The callbacks that keep the old knowledge (a pull toward the parent's weights, distillation from the parent,
    the parent's adapters written beside the update's) and the distillation weight."""
    callbacks = []
    if continual.method in ("ewc", "l2"):
        fisher = None
        if continual.method == "ewc":
            fisher = fisher_diagonal(model, parent.adapter, parent.adapter.encode(anchor), seed=seed)
        callbacks.append(WeightPenalty(trainable_weights(model), continual.penalty, fisher))
    # Distillation protects the old labels' scores when new labels compete with them; with the label set
    # unchanged the replay covers the old labels, and it would only slow learning the new data.
    distill = (1.0 if added else 0.0) if continual.distill == AUTO else continual.distill
    if distill > 0:
        callbacks.append(Distillation(parent.model, distill))
    if stacked:
        callbacks.append(_AdapterStack(parent_path / "model", parent.labels))
    return callbacks, distill


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
        old_train, old_validation, chosen, how = _replay_rows(parent, parent_path, continual, texts)
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
        callbacks, distill = _protections(parent, parent_path, model, continual, replayed or old_train, added,
                                          stacked, config.training.seed)

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
            point_latest(root, output.resolve())
            log.info("promoted: %s is the lineage's latest", output)
        else:
            log.warning("not promoted (%s): %s stays the lineage's latest; the candidate is kept in %s",
                        record["gate"]["why"], latest(root), output)
    return UpdateResult(run, record)
