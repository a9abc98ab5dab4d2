"""The hook through which a data-selection policy steers training.

The loop asks the selector, at the start of every epoch, for one weight per training sample: a
weight of 0 leaves the sample out of that epoch's batches, other weights scale its loss. After each
optimisation step the selector sees the batch's per-sample losses and logits (training dynamics for
free, from the forward pass already made), and after each evaluation the validation metrics and
predictions (its reward). A selector may also ask, at the end of each epoch, for the model's label
margins on any training samples (``rows_to_score``), including those it left out. A selector that sets ``update_every`` is also scored every that many
steps on a validation mini-batch of its choosing (``validation_rows``), and may answer with new
loss weights for the rest of the epoch. ``AllData`` is plain fine-tuning.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class SampleSelector:
    """Base class: trains on every sample with weight 1. Subclasses override what they need."""

    update_every: int | None = None
    """Optimisation steps between mid-epoch rewards on a validation mini-batch (``None``: per epoch only)."""

    def begin_epoch(self, epoch: int, n_samples: int) -> np.ndarray | None:
        """Per-sample weights for this epoch (``None``: all samples, weight 1)."""
        return None

    def masked_words(self, epoch: int) -> dict[int, list[int]] | None:
        """Per training sample, the word positions whose tags this epoch leaves out of the loss (NER:
        a suspect entity, while the rest of its sentence still trains); ``None``: none. Asked after
        ``begin_epoch``."""
        return None

    def observe(self, indices: np.ndarray, losses: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """One training step's per-sample losses (mean per loss unit), logits and labels."""

    def rows_to_score(self, epoch: int) -> np.ndarray | None:
        """Training rows the model should score after this epoch (``observe_margins``); ``None``: none."""
        return None

    def observe_margins(self, rows: np.ndarray, margins: np.ndarray) -> None:
        """The model's margin for each given label of ``rows`` (``TaskAdapter.label_margin``), after an epoch."""

    def validation_rows(self, n_validation: int) -> np.ndarray:
        """Rows of the validation set that make up the mid-epoch mini-batch (default: all)."""
        return np.arange(n_validation)

    def step_reward(self, step: int, validation: dict[str, Any], predictions: list[Any]) -> np.ndarray | None:
        """Metrics and predictions on the validation mini-batch after ``step`` optimisation steps.

        Returns new per-sample loss weights for the rest of the epoch, or ``None`` to keep them."""
        return None

    def end_epoch(self, epoch: int, validation: dict[str, Any], predictions: list[Any] | None = None) -> None:
        """Validation metrics (and decoded predictions) after the epoch: the reward signal."""


class AllData(SampleSelector):
    """Plain fine-tuning: every sample, every epoch."""
