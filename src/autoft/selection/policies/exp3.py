"""Exp3.S over buckets of training data: the adversarial bandit of "Automated curriculum learning for
neural networks" (Graves et al., ICML 2017).

Each step draws a bucket from ``pi = (1 - gamma) softmax(w) + gamma / K``; the reward (learning
progress: the inner learner's validation gain) is rescaled to [-1, 1] by the 20th / 80th percentiles
of the last ``history`` rewards (``rewards.rescale_reward``), importance-weighted by ``1 / pi``, and the
log-weights take the fixed-share update that lets the bandit track a moving best arm::

    w_i <- log[(1 - alpha) exp(w_i + eta r_i) + alpha / (K - 1) sum_{j != i} exp(w_j + eta r_j)]
    r_i  = (reward * [i == chosen] + beta) / pi_i

A bucket's score is the mean raw reward observed when it was drawn: the log-weights themselves are
importance-weighted (noisy for the buckets the bandit learned to avoid) and saturate at -1 per step,
so they cannot tell a harmful bucket from a useless one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import logsumexp

from autoft.selection.policies._buckets import BucketPolicy
from autoft.selection.policies.base import check_option, register_policy
from autoft.selection.rewards import rescale_reward


class Exp3S(BucketPolicy):
    """Exp3.S; options ``gamma`` (exploration), ``eta`` (step size), ``alpha`` (fixed share), ``beta``
    (optimism bias), ``history`` (rewards kept for the rescaling quantiles), plus the ``BucketPolicy`` ones."""

    def __init__(
        self,
        *,
        gamma: float = 0.1,
        eta: float = 0.1,
        alpha: float = 0.001,
        beta: float = 0.0,
        history: int = 1000,
        **options: Any,
    ):
        self.gamma = gamma
        self.eta = eta
        self.alpha = alpha
        self.beta = beta
        self.history = history
        super().__init__(**options)

    def _check_options(self) -> None:
        super()._check_options()
        check_option(self.name, "gamma", self.gamma, 0.0 < self.gamma <= 1.0, "in (0, 1]")
        check_option(self.name, "eta", self.eta, self.eta > 0, "> 0")
        check_option(self.name, "alpha", self.alpha, 0.0 <= self.alpha < 1.0, "in [0, 1)")
        check_option(self.name, "beta", self.beta, self.beta >= 0, ">= 0")
        check_option(self.name, "history", self.history, self.history >= 1, "an integer >= 1")

    def _start(self, n_buckets: int) -> None:
        self.log_weights_ = np.zeros(n_buckets)
        self.rewards_seen_: list[float] = []
        self.reward_sums_ = np.zeros(n_buckets)
        self.pulls_ = np.zeros(n_buckets, dtype=np.int64)

    def probabilities(self) -> np.ndarray:
        """[K] current bucket probabilities: sum to 1, each at least gamma / K."""
        k = len(self.log_weights_)
        return (1.0 - self.gamma) * np.exp(self.log_weights_ - logsumexp(self.log_weights_)) + self.gamma / k

    def _choose(self, rng: np.random.Generator) -> tuple[int, dict[str, Any]]:
        pi = self.probabilities()
        bucket = int(rng.choice(len(pi), p=pi))
        return bucket, {"probabilities": [round(float(p), 6) for p in pi]}

    def _learn(self, bucket: int, reward: float, done: bool) -> None:
        """Rescale, importance-weight, then the fixed-share exponential-weights update."""
        self.rewards_seen_.append(reward)  # the paper's reservoir includes the current reward
        scaled = rescale_reward(reward, self.rewards_seen_[-self.history :])
        self.reward_sums_[bucket] += reward
        self.pulls_[bucket] += 1
        pi = self.probabilities()
        estimate = np.full(len(pi), self.beta) / pi
        estimate[bucket] = (scaled + self.beta) / pi[bucket]
        boosted = self.log_weights_ + self.eta * estimate
        k = len(pi)
        if k == 1:
            self.log_weights_ = boosted - boosted.max()
            return
        others = np.array([logsumexp(np.delete(boosted, i)) for i in range(k)])
        updated = np.logaddexp(np.log1p(-self.alpha) + boosted, np.log(self.alpha / (k - 1) + 1e-300) + others)
        self.log_weights_ = updated - updated.max()  # shifting all weights leaves pi unchanged

    def _bucket_scores(self) -> np.ndarray:
        """[K] mean raw reward observed per bucket (never drawn: the lowest mean seen)."""
        means = self.reward_sums_ / np.maximum(self.pulls_, 1)
        drawn = self.pulls_ > 0
        return np.where(drawn, means, means[drawn].min() if drawn.any() else 0.0)


register_policy("exp3", Exp3S)

__all__ = ["Exp3S"]
