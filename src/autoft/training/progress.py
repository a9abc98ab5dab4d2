"""What a fit has done so far: each epoch's record, the best epoch and its weights, early stopping and rollback."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import numpy as np
import torch
from torch.optim.lr_scheduler import LambdaLR

from autoft.config import TrainingConfig
from autoft.tasks.base import TaskAdapter
from autoft.training.callbacks import TrainerCallback
from autoft.training.optimizer import LinearSchedule

log = logging.getLogger(__name__)

LOSS_MIN_DELTA = 1e-4
"""A validation loss that falls by less than this share is not progress (``early_stopping_on: metric-or-loss``)."""
ROLLBACK_FACTOR = 0.5
"""``on_plateau: rollback``: the learning rate's factor after each return to the best epoch's weights."""


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    samples: int
    seconds: float
    samples_per_second: float
    validation: dict[str, Any]


@dataclass
class TrainResult:
    best_epoch: int
    best_validation: dict[str, Any]
    history: list[EpochRecord] = field(default_factory=list)
    stopped_early: bool = False
    rollbacks: list[int] = field(default_factory=list)
    """Epochs after which the loop went back to the best weights at a lower rate (``on_plateau: rollback``)."""
    settings: TrainingConfig | None = None
    """The settings trained with: the config with every ``auto`` resolved."""
    plan: dict[str, Any] = field(default_factory=dict)
    """What ``auto`` chose and how (``Plan.to_dict``): per field, and the learning-rate range test's curve."""

    def to_dict(self) -> dict[str, Any]:
        settings = self.settings.model_dump(mode="json") if self.settings is not None else None
        return {**asdict(self), "settings": settings}


@dataclass
class Progress:
    """The loop's counters and its best epoch so far: with the weights, optimizer, schedule and random states,
    what a checkpoint holds (``to_state``/``from_state``)."""

    result: TrainResult
    step: int = 0
    best_score: float = -np.inf
    best_loss: float = np.inf
    best_state: dict[str, torch.Tensor] | None = None
    stale: int = 0
    returned_to: set[int] = field(default_factory=set)
    """Best epochs already rolled back to: once each."""

    def to_state(
        self,
        finished_epoch: int,
        schedule: LinearSchedule,
        callback: TrainerCallback,
        within: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        result, settings = self.result, cast(TrainingConfig, self.result.settings)  # set when training starts
        return {
            "epoch": finished_epoch,
            "step": self.step,
            "done": schedule.done,
            "rate_scale": schedule.scale,
            "best_score": self.best_score,
            "best_loss": self.best_loss,
            "stale": self.stale,
            "returned_to": sorted(self.returned_to),
            "best_epoch": result.best_epoch,
            "best_validation": result.best_validation,
            "history": [asdict(r) for r in result.history],
            "rollbacks": result.rollbacks,
            "settings": settings.model_dump(mode="json"),
            "plan": result.plan,
            "callbacks": callback.state_dict(),
            **({"in_epoch": within} if within else {}),
        }

    def restore(self, saved: dict[str, Any], schedule: LinearSchedule) -> None:
        self.step, self.best_score, self.best_loss = saved["step"], saved["best_score"], saved["best_loss"]
        self.stale, self.returned_to = saved["stale"], set(saved["returned_to"])
        schedule.done, schedule.scale = saved["done"], saved["rate_scale"]
        result = self.result
        result.best_epoch, result.best_validation = saved["best_epoch"], saved["best_validation"]
        result.history = [EpochRecord(**r) for r in saved["history"]]
        result.rollbacks = saved["rollbacks"]


def keep_best_or_stop(
    progress: Progress,
    validation: dict[str, Any],
    epoch: int,
    config: TrainingConfig,
    adapter: TaskAdapter,
    model: torch.nn.Module,
    schedule: LinearSchedule,
    scheduler: LambdaLR,
) -> bool:
    """Keep the best weights; True when nothing has improved for ``patience`` epochs (the metric, or with
    ``early_stopping_on: metric-or-loss`` also the validation loss). With ``on_plateau: rollback``, an epoch whose
    validation metric fell below the best sends the loop back to the best weights, to go on at half the rate: the
    fall most likely came from a rate too high for this data. Once per best epoch: if the lower rate falls below it
    again, the fall is the validation set's noise or the end of learning, and training goes on from there."""
    result, score = progress.result, validation[adapter.primary_metric] * (1 if adapter.greater_is_better else -1)
    loss = validation.get("loss")
    loss_improved = (
        config.early_stopping_on == "metric-or-loss"
        and loss is not None
        and loss < progress.best_loss * (1 - LOSS_MIN_DELTA)
    )
    progress.best_loss = min(progress.best_loss, loss if loss is not None else np.inf)
    improved, fell = score > progress.best_score, score < progress.best_score
    if improved:
        progress.best_score, progress.stale = score, 0
        progress.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        result.best_epoch, result.best_validation = epoch, validation
    elif loss_improved:
        progress.stale = 0
    else:
        progress.stale += 1
        patience = cast("int | None", config.early_stopping_patience)  # resolved: no auto
        if patience is not None and progress.stale >= patience:
            result.stopped_early = True
            log.info("early stopping after epoch %d (best: epoch %d)", epoch, result.best_epoch)
            return True
    if (
        fell
        and config.on_plateau == "rollback"
        and epoch < cast(int, config.epochs)
        and result.best_epoch not in progress.returned_to
    ):
        progress.returned_to.add(result.best_epoch)
        model.load_state_dict(cast("dict[str, torch.Tensor]", progress.best_state))  # fell: a best epoch was kept
        schedule.scale *= ROLLBACK_FACTOR
        scheduler.step()  # re-reads the schedule (it follows `done`, not the step count): the new rate applies now
        result.rollbacks.append(epoch)
        log.info(
            "validation %s fell in epoch %d: back to epoch %d's weights, learning rate x%g from here",
            adapter.primary_metric,
            epoch,
            result.best_epoch,
            schedule.scale,
        )
    return False


__all__ = ["LOSS_MIN_DELTA", "ROLLBACK_FACTOR", "EpochRecord", "Progress", "TrainResult", "keep_best_or_stop"]
