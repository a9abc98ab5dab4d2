"""A policy that learns each sample's value from dense, per-sample validation rewards: how well the gradient the
sample gives aligns with the clean validation set's (learning to reweight, Ren et al. ICML 2018; on the output
layer, where it is cheap).

Offline it starts where ``suspicion`` stays: value = 1 - suspicion (the noise posterior, the validation-set probe,
the neighbours). Online, ``update_samples(rows, rewards)`` receives a reward for every training row of every
optimisation step (``autoft.selection.alignment.AlignmentRewards``: the projection of the row's output-layer gradient
on the direction that lowers the loss of a validation mini-batch; a wrongly labelled row pulls the other way). A row's
value is then the mean of its prior's rank and the rank of its mean reward among the rows of its given class that were
rewarded (within the class: every row of a class the model under-predicts is rewarded for it, whatever its label); a
row never rewarded (never trained on) keeps its prior's rank. Learned state: ``reward_sum_`` and ``reward_count_``
[N].
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import rankdata

from autoft.selection.policies.base import FitData, Policy, check_option, register_policy


class GradientAlignment(Policy):
    """Per-sample values learned online from validation-gradient alignment; option ``prior_weight`` (in [0, 1]):
    the prior rank's share of a rewarded row's value (the rest is its reward rank)."""

    sample_rewards = True
    """The training loop's per-sample rewards feed ``update_samples`` (``run`` adds ``AlignmentRewards``)."""

    def __init__(self, *, prior_weight: float = 0.5, **options: Any):
        self.prior_weight = prior_weight
        super().__init__(**options)

    def _check_options(self) -> None:
        super()._check_options()
        check_option(self.name, "prior_weight", self.prior_weight, 0.0 <= self.prior_weight <= 1.0, "in [0, 1]")

    def _fit(self, data: FitData) -> np.ndarray:
        self._log("offline", {"mean_suspicion": round(float(data.disagreement.mean()), 6)}, None)
        return self._begin(1.0 - data.disagreement, data.labels)

    def _start_from(self, prior: np.ndarray, state: np.ndarray | None) -> np.ndarray:
        self._log("offline", {"start": "prior", "mean_prior": round(float(prior.mean()), 6)}, None)
        return self._begin(prior, np.zeros(len(prior), dtype=np.int64))

    def _begin(self, prior: np.ndarray, labels: np.ndarray) -> np.ndarray:
        self.prior_ = np.asarray(prior, dtype=np.float64)
        self.labels_ = np.asarray(labels, dtype=np.int64)
        self.reward_sum_ = np.zeros(len(prior))
        self.reward_count_ = np.zeros(len(prior), dtype=np.int64)
        return self.prior_.copy()

    def update_samples(self, rows: np.ndarray, rewards: np.ndarray) -> None:
        """Learn from one reward per row (rows may repeat); refreshes ``values_`` and the keep-probabilities."""
        self._check_fitted()
        rows, rewards = np.asarray(rows, dtype=np.int64), np.asarray(rewards, dtype=np.float64)
        if rows.shape != rewards.shape:
            raise ValueError(f"update_samples: {len(rows)} rows but {len(rewards)} rewards")
        np.add.at(self.reward_sum_, rows, rewards)
        np.add.at(self.reward_count_, rows, 1)
        self.values_ = self._values()
        self.keep_probabilities_ = self._keep_probabilities(self.values_)

    def _values(self) -> np.ndarray:
        n = len(self.prior_)
        values = rankdata(self.prior_) / n
        for c in np.unique(self.labels_):  # ranked within each given class: a class the model still under-predicts
            seen = (self.reward_count_ > 0) & (self.labels_ == c)  # earns all its rows a reward, whatever their label
            if seen.any():
                learned = rankdata(self.reward_sum_[seen] / self.reward_count_[seen]) / seen.sum()
                values[seen] = self.prior_weight * values[seen] + (1.0 - self.prior_weight) * learned
        return values

    def _online_step(self, reward: float, selected_mask: np.ndarray | None, action: int | None) -> dict[str, Any]:
        """The epoch's validation gain: logged, not learned from (the per-sample rewards are what it learns)."""
        seen = int((self.reward_count_ > 0).sum())
        return {"rows_rewarded": seen, "rewards": int(self.reward_count_.sum())}


register_policy("alignment", GradientAlignment)

__all__ = ["GradientAlignment"]
