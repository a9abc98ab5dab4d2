"""The scores a run records: the model's zero-shot test scores before fine-tuning (tasks whose targets are texts),
decision settings tuned on validation, the test scores of the best weights, and the ``metrics.json`` record that
gathers them with what the loop and the callbacks report."""

from __future__ import annotations

import copy
import logging
import time
from typing import Any

from autoft.config import Config
from autoft.data.loading import Example
from autoft.data.splits import Splits
from autoft.tasks.base import TaskAdapter
from autoft.training.loop import TrainResult, evaluate

log = logging.getLogger(__name__)


def zero_shot(
    config: Config, model: Any, adapter: TaskAdapter, test: list[Example], features: list[Any]
) -> tuple[dict[str, Any], list[Any]]:
    """The test scores and predictions of the model before fine-tuning (tasks whose targets are texts)."""
    before, predictions = evaluate(
        model,
        adapter,
        test,
        features,
        batch_size=config.training.eval_batch_size,
        progress=config.training.progress,
        description="zero-shot",
        return_predictions=True,
    )
    log.info(
        "zero-shot test scores (before fine-tuning): %s",
        ", ".join(f"{k} {v:.4f}" for k, v in before.items() if isinstance(v, float)),
    )
    return before, predictions


def tune_decision(
    config: Config, model: Any, adapter: TaskAdapter, validation: list[Example], features: list[Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The adapter's decision settings (multi-label thresholds) tuned on validation, which the final validation and
    test scores then use; returns the validation scores with them and the record for ``metrics.json``."""
    untuned = copy.deepcopy(adapter.decision)
    scores = evaluate(
        model,
        adapter,
        validation,
        features,
        tune_decision=True,
        batch_size=config.training.eval_batch_size,
        progress=False,
    )
    log.info(
        "decision tuned on validation: %s; the final validation and test scores use it (each epoch's "
        "validation, which chose the best epoch, used %s)",
        adapter.decision,
        untuned,
    )
    return scores, {
        "tuned_on": "validation",
        "used_by": ["validation", "test"],
        "tuned": adapter.decision,
        "epochs": untuned,
    }


def test_scores(
    config: Config, model: Any, adapter: TaskAdapter, splits: Splits, features: list[Any] | None
) -> tuple[dict[str, Any] | None, list[Any] | None]:
    """The best weights' scores and predictions on the test set (None, None without one)."""
    if splits.test is None:
        return None, None
    return evaluate(
        model,
        adapter,
        splits.test,
        features or [],
        batch_size=config.training.eval_batch_size,
        progress=config.training.progress,
        description="test",
        return_predictions=True,
    )


def run_metrics(
    config: Config,
    adapter: TaskAdapter,
    splits: Splits,
    result: TrainResult,
    *,
    sizes: dict[str, int],
    parameters: tuple[int, int],
    scores: dict[str, Any],
    contributed: dict[str, Any],
    warnings: list[str],
    seconds: dict[str, float],
) -> dict[str, Any]:
    """The ``metrics.json`` record: the run's settings, sizes, each epoch, ``scores`` (validation, test, decision,
    zero_shot), what the callbacks contributed (``contributed``: the noise estimate, self-training, the guard's
    back-off...), and ``seconds`` (fit, started: the ``perf_counter`` the run began at)."""
    trainable, total = parameters
    metrics = {
        "task": config.task,
        "model": config.model,
        "primary_metric": adapter.primary_metric,
        "policy": config.selection.policy,
        "sizes": {**sizes, "unlabeled": len(splits.unlabeled), "test": len(splits.test) if splits.test else 0},
        "parameters": {
            "total": total,
            "trainable": trainable,
            "peft": config.training.peft.method if config.training.peft is not None else None,
        },
        "skipped_rows": len(splits.skipped),
        "warnings": warnings,
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "rollbacks": result.rollbacks,
        "epochs": [vars(r) for r in result.history],
        "validation": scores["validation"],
        "test": scores["test"],
        "decision": scores["decision"],
        "zero_shot": scores["zero_shot"],
        "training": config.training.model_dump(mode="json"),
        "auto": result.plan["choices"],
        "noise": contributed.get("noise"),
        "self_training": contributed.get("self_training"),
        "train_seconds": round(sum(r.seconds for r in result.history), 3),
        "fit_seconds": round(seconds["fit"], 3),
        "wall_seconds": round(time.perf_counter() - seconds["started"], 3),
    }
    metrics.update({k: v for k, v in contributed.items() if k not in metrics})  # e.g. the guard's back_off
    return metrics


__all__ = ["run_metrics", "test_scores", "tune_decision", "zero_shot"]
