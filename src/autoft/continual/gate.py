"""The promotion gate: parent and update scored on the lineage's validation data and on the update's, and whether
the update may become the lineage's ``latest``."""

from __future__ import annotations

from typing import Any

from autoft.config import TEXT_TARGET_TASKS, Config
from autoft.continual.replay import _labels_of
from autoft.data.loading import Example
from autoft.data.splits import load_splits
from autoft.run import Run


def _score(run: Run, examples: list[Example]) -> float | None:
    """``run``'s primary metric on the ``examples`` whose labels it knows (every one, for answers and responses)."""
    known = set(run.labels)
    kept = examples if run.task in TEXT_TARGET_TASKS else [e for e in examples if _labels_of([e]) <= known]
    return float(run.evaluate(kept)[run.adapter.primary_metric]) if kept else None


def new_validation(config: Config, labels: list[str]) -> list[Example]:
    """The update's own validation examples (its ``data.validation``, or the seeded split of its training data)."""
    return load_splits(config.data, task=config.task, seed=config.training.seed, known=labels, warn=False).validation


def _compare(
    parent: Run,
    child: Run,
    old_validation: list[Example],
    config: Config,
    tolerance: float | None,
    *,
    new_validation: list[Example] | None,
) -> dict[str, Any]:
    """Parent and update scored on the lineage's validation data and on the update's ``new_validation`` (rows
    whose labels the parent knows; None: the update has none of its own), and the promotion gate's verdict."""
    sets = {"old_validation": old_validation, "new_validation": new_validation or []}
    scores: dict[str, Any] = {}
    failed = []
    for name, examples in sets.items():
        before, after = _score(parent, examples), _score(child, examples)
        scores[name] = {
            "parent": before,
            "update": after,
            "change": None if before is None or after is None else round(after - before, 6),
            "rows": len(examples),
        }
        if tolerance is None or before is None or after is None:
            continue
        if child.adapter.greater_is_better and after < before - tolerance:
            failed.append(f"{name} {child.adapter.primary_metric} {after:.4f} < parent {before:.4f} - {tolerance:g}")
        elif not child.adapter.greater_is_better and after > before + tolerance:  # a loss
            failed.append(f"{name} {child.adapter.primary_metric} {after:.4f} > parent {before:.4f} + {tolerance:g}")
    promoted = not failed
    why = "; ".join(failed) if failed else ("no gate" if tolerance is None else f"within {tolerance:g} of the parent")
    return {
        "metric": child.adapter.primary_metric,
        "scores": scores,
        "gate": {"tolerance": tolerance, "why": why},
        "promoted": promoted,
    }
