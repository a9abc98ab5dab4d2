"""Train / validation / test splits, and the label set they share."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from autoft.config import ONE_LABEL_TASKS, TEXT_TARGET_TASKS, Config, DataConfig
from autoft.data.loading import BadRows, Example, load_examples, read_texts
from autoft.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Splits:
    train: list[Example]
    validation: list[Example]
    test: list[Example] | None
    labels: list[str]
    skipped: list[str] = field(default_factory=list)
    """Rows left out by ``data.on_bad_rows: skip``, as ``file:line: reason``."""
    validation_from_train: bool = False
    """No validation file was given: ``validation`` is a seeded split of the training rows (as noisy)."""
    unlabeled: list[Example] = field(default_factory=list)
    """Texts without labels (``data.unlabeled``); their ``label`` is None."""


def _label_values(example: Example) -> list[str]:
    return cast("list[str]", list(example.label) if isinstance(example.label, list) else [example.label])


def sorted_labels(values: set[str]) -> list[str]:
    """Numeric labels in numeric order, otherwise alphabetical; 'O' first for tag sets."""
    if all(v.lstrip("-").isdigit() for v in values):
        return sorted(values, key=int)
    return sorted(values, key=lambda v: (v != "O", v))


def split_validation(
    examples: list[Example], *, fraction: float, seed: int, stratify: bool
) -> tuple[list[Example], list[Example]]:
    """Seeded split of ``examples`` into (train, validation); stratified by label when possible."""
    from sklearn.model_selection import train_test_split

    if len(examples) < 2:
        raise DataError(f"{examples[0].origin if examples else 'train'}: too few examples to split off validation")
    labels: list[Any] | None = [e.label for e in examples] if stratify else None
    if labels is not None:
        _, counts = np.unique(labels, return_counts=True)
        n_val = max(1, round(fraction * len(examples)))
        if counts.min() < 2 or n_val < len(counts):
            labels = None
    index = np.arange(len(examples))
    train_idx, val_idx = train_test_split(index, test_size=fraction, random_state=seed, stratify=labels)
    return [examples[i] for i in sorted(train_idx)], [examples[i] for i in sorted(val_idx)]


def agent_validation(examples: list[Example], config: Config) -> tuple[list[Example], list[Example]]:
    """The validation set of an agent's run, split (seeded, stratified for one-label tasks) into the part that
    chooses early stopping and the best epoch and the part that rewards the agent (``selection.reward_fraction``)."""
    return split_validation(
        examples,
        fraction=config.selection.reward_fraction,
        seed=config.training.seed,
        stratify=config.task in ONE_LABEL_TASKS,
    )


def _fold(label: str) -> str:
    """What two spellings of one label have in common when they differ only in case or surrounding white space."""
    return label.strip().casefold()


def check_known_labels(examples: list[Example], known: set[str], split: str) -> None:
    """Raise ``DataError`` at the first label (or tag) of ``examples`` outside ``known``; the message names a
    known label it differs from only in case or surrounding white space."""
    folded = {_fold(k): k for k in known}
    for example in examples:
        for value in _label_values(example):
            if value not in known:
                near = folded.get(_fold(value))
                hint = f" (it has {near!r}: the two differ only in case or surrounding white space)" if near else ""
                raise DataError(f"{example.origin}: {split} label {value!r} never occurs in the training data{hint}")


F1_OVER_LABEL_SET = frozenset({"classification", "multi-label-classification"})
"""Tasks whose macro-F1 averages over every label of the set: a label missing from a split scores F1 0 there."""


def _named(labels: list[str], most: int = 20) -> str:
    more = f" and {len(labels) - most} more" if len(labels) > most else ""
    return ", ".join(repr(label) for label in labels[:most]) + more


def warn_spellings(train: list[Example], known: list[str]) -> None:
    """Log a warning for each set of labels that differ only in case or surrounding white space (``Joy`` beside
    ``joy``): they are different classes, each spelling named with the file and line it first occurs at. The
    data is left as it is."""
    spellings: dict[str, dict[str, str]] = {}
    for example in train:
        for value in _label_values(example):
            spellings.setdefault(_fold(value), {}).setdefault(value, example.origin)
    for value in known:
        spellings.setdefault(_fold(value), {}).setdefault(value, "the model's labels")
    for found in spellings.values():
        if len(found) > 1:
            where = ", ".join(f"{value!r} ({origin})" for value, origin in found.items())
            log.warning(
                "labels %s differ only in case or surrounding white space: they are %d different classes "
                "(write them one way if they mean one thing)",
                where,
                len(found),
            )


def warn_unseen_labels(labels: list[str], split: str, examples: list[Example], task: str, where: str) -> None:
    """Log one warning naming the ``labels`` that never occur in ``examples`` (``split`` of the data, read from
    ``where``): the model learns them, but they are not validated or tested there, and a macro-F1 over the
    label set (``F1_OVER_LABEL_SET``) scores each of them 0."""
    seen = {value for example in examples for value in _label_values(example)}
    missing = [label for label in labels if label not in seen]
    if not missing:
        return
    consequence = "never validated" if split == "validation" else "never tested"
    if task in F1_OVER_LABEL_SET:
        consequence += f", and each scores F1 0 in the {split} macro-F1"
    log.warning(
        "the %s data (%s) has no row with training label%s %s: %s",
        split,
        where,
        "s" if len(missing) > 1 else "",
        _named(missing),
        consequence,
    )


def read_file(
    path: str | Path,
    data: DataConfig,
    *,
    task: str,
    fmt: str | None = None,
    source: str | None = None,
    bad_rows: BadRows | None = None,
) -> list[Example]:
    """One labelled data file read with ``data``'s columns, format (or ``fmt``) and label delimiter."""
    return load_examples(
        path,
        task=task,
        text_column=data.text_column,
        label_column=data.label_column,
        fmt=data.format if fmt is None else fmt,
        source=source,
        bad_rows=bad_rows,
        label_delimiter=data.label_delimiter,
        columns=data.columns,
    )


def load_splits(data: DataConfig, *, task: str, seed: int, known: list[str] | None = None, warn: bool = True) -> Splits:
    """Read the configured files, split off validation if none is given, and fix the label set. ``known``: labels
    the model already has (a continual update), which count as seen in training. ``warn``: log the labels spelt
    two ways and the training labels that validation or test never has (off where the data was read before)."""
    bad = BadRows(data.on_bad_rows, data.max_bad_rows)

    def read(path: str, source: str | None = None) -> list[Example]:
        return read_file(path, data, task=task, source=source, bad_rows=bad)

    train: list[Example] = []
    for path in data.train_files:
        train.extend(read(path))
    if data.validation:
        validation = read(data.validation)
    else:
        train, validation = split_validation(
            train, fraction=data.validation_fraction, seed=seed, stratify=task in ONE_LABEL_TASKS
        )
        log.info(
            "no data.validation given: %d training rows (a seeded %.0f%%, seed %d) are held out as validation "
            "for early stopping and the best epoch",
            len(validation),
            100 * data.validation_fraction,
            seed,
        )
    test = read(data.test) if data.test else None
    unlabeled: list[Example] = []
    if data.unlabeled:
        if task != "classification":
            raise DataError(
                f"data.unlabeled: {data.unlabeled}: unlabelled texts are learned from in classification "
                f"only so far, not {task}"
            )
        if not Path(data.unlabeled).is_file():
            raise DataError(f"data.unlabeled: {data.unlabeled}: file not found")
        unlabeled = read_texts(data.unlabeled, task=task, text_column=data.text_column)  # a table, or a text a line
        log.info("%d unlabelled texts from %s", len(unlabeled), data.unlabeled)

    if bad.skipped:
        log.warning("%d broken rows skipped (data.on_bad_rows: skip)", len(bad.skipped))
    if task in TEXT_TARGET_TASKS:  # targets are texts: no label set to fix
        return Splits(train, validation, test, [], bad.skipped, validation_from_train=not data.validation)
    values: set[str] = set(known or [])
    for example in train:
        values.update(_label_values(example))
    if task in ONE_LABEL_TASKS and len(values) < 2:
        raise DataError(f"{data.train_files[0]}: need at least two distinct labels, found {sorted(values)}")
    if warn:
        warn_spellings(train, known or [])
    check_known_labels(validation, values, "validation")
    if test is not None:
        check_known_labels(test, values, "test")
    labels = sorted_labels(values)
    if warn:
        warn_unseen_labels(
            labels,
            "validation",
            validation,
            task,
            data.validation or f"a {100 * data.validation_fraction:.0f}% split of the training rows",
        )
        if test is not None:
            warn_unseen_labels(labels, "test", test, task, str(data.test))
    return Splits(
        train, validation, test, labels, bad.skipped, validation_from_train=not data.validation, unlabeled=unlabeled
    )
