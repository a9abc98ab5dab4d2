"""Class-incremental bias correction: after an update that brought new labels, the head's rows for the new labels
are aligned with the old ones (:func:`autoft.modeling.heads.align_new_rows`), chosen on validation.

Training on data that is mostly the new labels' leaves their output rows longer than the old labels', and the model
then answers the new labels too often: the known cause of forgetting in class-incremental learning (weight aligning,
Zhao et al. CVPR 2020; bias correction, Wu et al. CVPR 2019). ``continual.align``: ``auto`` scores the best epoch's
model on the lineage's validation examples and the update's own, as trained, with its new rows' norms aligned, and
with their biases aligned too, and keeps the best (a tie keeps the fewer changes); ``norms`` / ``norms+bias`` apply
one; ``off`` none. What was chosen and each candidate's score go to ``metrics.json`` (``align``).
"""

from __future__ import annotations

import logging
from typing import Any, cast

from autoft.data.loading import Example
from autoft.modeling.heads import align_new_rows, head_state, set_head_state
from autoft.training.callbacks import Evaluate, TrainerCallback, TrainState

log = logging.getLogger(__name__)
CANDIDATES = ("off", "norms", "norms+bias")


class HeadAligning(TrainerCallback):
    """At the end of an update's training, aligns the head's rows for the labels from ``n_old`` on (``mode``: one
    of ``CANDIDATES``, or ``auto``: the best of them on ``validation``)."""

    SAVED = ()

    def __init__(
        self,
        model: Any,
        n_old: int,
        validation: list[Example],
        *,
        mode: str,
        metric: str,
        greater_is_better: bool = True,
    ) -> None:
        self.model, self.n_old, self.validation, self.mode = model, n_old, validation, mode
        self.metric, self.greater_is_better = metric, greater_is_better
        self.record: dict[str, Any] = {}

    def on_train_end(self, state: TrainState) -> None:
        trained = head_state(self.model)
        tried = [self.mode] if self.mode != "auto" else list(CANDIDATES)
        scores: dict[str, float] = {}
        gamma = 1.0
        for candidate in tried:
            set_head_state(self.model, trained)
            if candidate != "off":
                gamma = align_new_rows(self.model, self.n_old, bias=candidate == "norms+bias")
            if self.mode == "auto":
                scores[candidate] = float(cast(Evaluate, state.evaluate)(self.validation)[0][self.metric])
        sign = 1 if self.greater_is_better else -1
        chosen = max(tried, key=lambda c: (sign * scores[c], -tried.index(c))) if scores else self.mode
        set_head_state(self.model, trained)
        gamma = 1.0 if chosen == "off" else align_new_rows(self.model, self.n_old, bias=chosen == "norms+bias")
        log.info(
            "continual.align %s: %s%s (new labels' rows scaled by %.3g to the old rows' mean norm)",
            self.mode,
            chosen,
            "" if not scores else " on validation (" + ", ".join(f"{c} {v:.4f}" for c, v in scores.items()) + ")",
            gamma,
        )
        self.record = {
            "mode": self.mode,
            "chosen": chosen,
            "scale": round(gamma, 6),
            "validation": {c: round(v, 6) for c, v in scores.items()},
            "rows": len(self.validation),
        }

    def run_metrics(self) -> dict[str, Any]:
        return {"align": self.record} if self.record else {}


__all__ = ["CANDIDATES", "HeadAligning"]
