"""Per-sample training dynamics (loss, area under the margin) accumulated from the training loop's own forward
passes, and the per-sentence margin of token-level tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from autoft.tasks.base import margins_from_logits

if TYPE_CHECKING:
    import torch


def sequence_margins(logits: np.ndarray, labels: np.ndarray, *, ignore: int = -100) -> np.ndarray:
    """[B] per sequence, the lowest token margin (``margins_from_logits``) over its labelled tokens:
    a sentence is as suspect as its most contradicted tag. Sequences without labelled tokens get 0.

    ``logits`` [B, T, C], ``labels`` [B, T] with ``ignore`` for positions without a tag."""
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    mask = labels != ignore
    out = np.zeros(len(labels))
    if mask.any():
        token = margins_from_logits(logits[mask], labels[mask])
        per_row = np.full(mask.shape, np.inf)
        per_row[mask] = token
        out = np.where(mask.any(axis=1), per_row.min(axis=1), 0.0)
    return out


def _to_numpy(values) -> np.ndarray:
    """A numpy copy of an array or (possibly CUDA, grad-tracking) torch tensor."""
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values, dtype=np.float64)


class TrainingDynamics:
    """Per-sample training dynamics accumulated over the training loop's steps.

    ``update`` adds one step's per-sample losses and margins (``margins_from_logits``);
    ``mean_loss`` and ``aum`` (area under the margin, Pleiss et al. 2020: the mean over updates of
    ``logit[given] - max other logit``) are NaN for samples never seen, ``count`` is 0 for them.
    """

    def __init__(self, n_samples: int):
        self.n_samples = n_samples
        self.count = np.zeros(n_samples, dtype=np.int64)
        self._loss_sum = np.zeros(n_samples)
        self._margin_sum = np.zeros(n_samples)

    def update(self, indices: np.ndarray, losses: np.ndarray | torch.Tensor, margins: np.ndarray) -> None:
        """Add one step's per-sample ``losses`` and ``margins`` for the samples ``indices`` (arrays or tensors)."""
        indices = _to_numpy(indices).astype(np.int64)
        np.add.at(self.count, indices, 1)
        np.add.at(self._loss_sum, indices, _to_numpy(losses).reshape(-1))
        np.add.at(self._margin_sum, indices, _to_numpy(margins).reshape(-1))

    def update_from_logits(
        self,
        indices: np.ndarray,
        losses: np.ndarray | torch.Tensor,
        logits: np.ndarray | torch.Tensor,
        labels: np.ndarray | torch.Tensor,
    ) -> None:
        """``update`` with the margins computed from a step's ``logits`` [B, C] and ``labels`` [B]."""
        self.update(indices, losses, margins_from_logits(_to_numpy(logits), _to_numpy(labels)))

    def _mean(self, total: np.ndarray) -> np.ndarray:
        out = np.full(self.n_samples, np.nan)
        seen = self.count > 0
        out[seen] = total[seen] / self.count[seen]
        return out

    @property
    def mean_loss(self) -> np.ndarray:
        """[N] mean training loss per sample (NaN: never seen)."""
        return self._mean(self._loss_sum)

    @property
    def aum(self) -> np.ndarray:
        """[N] area under the margin per sample (NaN: never seen); low or negative flags likely label errors."""
        return self._mean(self._margin_sum)

    def features(self) -> np.ndarray:
        """[N, 3]: mean loss, AUM (never-seen samples get the mean over seen ones, or 0) and count / max count."""
        columns = []
        for values in (self.mean_loss, self.aum):
            seen = ~np.isnan(values)
            columns.append(np.where(seen, values, values[seen].mean() if seen.any() else 0.0))
        columns.append(self.count / max(int(self.count.max(initial=0)), 1))
        return np.column_stack(columns)
