"""Tabular Q-learning over buckets of training data: which bucket should the next batches come from?

Actions are buckets (by default quantiles of the label's suspicion; or e.g. the source). The state
is small and discrete: the last action and whether its reward was positive (plus a start state), so
the table has ``1 + 2K`` rows. Epsilon-greedy exploration with seeded tie-breaking; rewards are the
inner learner's validation gain (``_buckets``). A bucket's score is its Q averaged over states,
weighted by how often each (state, bucket) pair was tried.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autoft.selection.policies._buckets import BucketPolicy
from autoft.selection.policies.base import check_option, register_policy


class QLearning(BucketPolicy):
    """Epsilon-greedy tabular Q-learning; options ``epsilon``, ``alpha`` (step size), ``discount``, plus the
    ``BucketPolicy`` ones."""

    def __init__(
        self,
        *,
        epsilon: float = 0.3,
        alpha: float = 0.2,
        discount: float = 0.5,
        **options: Any,
    ):
        self.epsilon = epsilon
        self.alpha = alpha
        self.discount = discount
        super().__init__(**options)

    def _check_options(self) -> None:
        super()._check_options()
        check_option(self.name, "epsilon", self.epsilon, 0.0 <= self.epsilon <= 1.0, "in [0, 1]")
        check_option(self.name, "alpha", self.alpha, 0.0 < self.alpha <= 1.0, "in (0, 1]")
        check_option(self.name, "discount", self.discount, 0.0 <= self.discount < 1.0, "in [0, 1)")

    def _start(self, n_buckets: int) -> None:
        self.q_ = np.zeros((1 + 2 * n_buckets, n_buckets))
        self.visits_ = np.zeros_like(self.q_, dtype=np.int64)
        self.state_ = 0

    def _begin_episode(self) -> None:
        self.state_ = 0

    def _choose(self, rng: np.random.Generator) -> tuple[int, dict[str, Any]]:
        """Epsilon-greedy on the current state's row; ties among the best broken at random."""
        row = self.q_[self.state_]
        explore = rng.random() < self.epsilon
        candidates = np.arange(len(row)) if explore else np.flatnonzero(row == row.max())
        return int(rng.choice(candidates)), {"state": int(self.state_), "explore": bool(explore)}

    def _learn(self, bucket: int, reward: float, done: bool) -> None:
        """Q[s, a] += alpha * (reward + discount * max Q[s'] - Q[s, a]), with s' = (a, reward > 0)."""
        following = 1 + 2 * bucket + int(reward > 0)
        target = reward + (0.0 if done else self.discount * self.q_[following].max())
        self.q_[self.state_, bucket] += self.alpha * (target - self.q_[self.state_, bucket])
        self.visits_[self.state_, bucket] += 1
        self.state_ = following

    def _bucket_scores(self) -> np.ndarray:
        """[K] visit-weighted mean Q of each bucket over states (never tried: the lowest score seen)."""
        tries = self.visits_.sum(axis=0)
        scores = (self.visits_ * self.q_).sum(axis=0) / np.maximum(tries, 1)
        return np.where(tries > 0, scores, scores[tries > 0].min() if tries.any() else 0.0)


register_policy("q-learning", QLearning)

__all__ = ["QLearning"]
