"""Shared loop of the bucket policies (Q-learning, Exp3.S): an agent picks which bucket of data to train on next.

Buckets are given per sample (e.g. the source) or, by default, quantiles of the label's suspicion
(``state.suspicion``: the probes and the nearest neighbours).
Offline, ``episodes`` times, the inner learner restarts from a fit on all data and takes
``episode_length`` steps; at each the agent picks a bucket, the learner trains ``inner_steps``
gradient steps on a seeded minibatch of it, and the reward is the validation gain of that training
(learning progress). The subclass fills in the agent: ``_start``, ``_begin_episode``, ``_choose``,
``_learn`` and ``_bucket_scores``.

Each sample's value is ordered first by its bucket's learned score, then, within a bucket, by the
evidence for its label (1 - suspicion): ``values_ = rank of bucket score + 0.999 * agreement``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import rankdata

from autoft.selection.policies.base import FitData, Policy, check_option
from autoft.selection.state import quantile_buckets


class BucketPolicy(Policy):
    """Base of the policies whose action is a bucket of training data.

    Options: ``n_buckets`` quantile buckets of the label suspicion (used only when ``fit`` gets no
    ``buckets``), ``episodes`` x ``episode_length`` offline steps, ``inner_steps`` gradient steps on a
    ``batch_size`` minibatch of the chosen bucket per step, ``warm_steps`` of the all-data fit every
    episode starts from, plus the ``Policy`` options.

    Learned state: ``buckets_`` [N], ``n_buckets_``, ``bucket_values_`` [K], ``agreement_`` [N].
    """

    def __init__(
        self,
        *,
        n_buckets: int = 5,
        episodes: int = 30,
        episode_length: int = 10,
        inner_steps: int = 5,
        batch_size: int = 64,
        warm_steps: int = 100,
        **options: Any,
    ):
        self.n_buckets = n_buckets
        self.episodes = episodes
        self.episode_length = episode_length
        self.inner_steps = inner_steps
        self.batch_size = batch_size
        self.warm_steps = warm_steps
        super().__init__(**options)

    def _check_options(self) -> None:
        super()._check_options()
        for name in ("n_buckets", "episodes", "episode_length", "inner_steps", "batch_size"):
            check_option(self.name, name, getattr(self, name), getattr(self, name) >= 1, "an integer >= 1")
        check_option(self.name, "warm_steps", self.warm_steps, self.warm_steps >= 0, "an integer >= 0")

    # -- the agent, filled in by subclasses ---------------------------------------------------------

    def _start(self, n_buckets: int) -> None:
        """Create the agent's tables for ``n_buckets`` actions."""
        raise NotImplementedError

    def _begin_episode(self) -> None:
        """Reset per-episode agent state (e.g. the current state of a Q-learner)."""

    def _choose(self, rng: np.random.Generator) -> tuple[int, dict[str, Any]]:
        """The next bucket, and what to log about the choice."""
        raise NotImplementedError

    def _learn(self, bucket: int, reward: float, done: bool) -> None:
        """Learn from ``reward`` for training on ``bucket``; ``done`` ends the episode."""
        raise NotImplementedError

    def _bucket_scores(self) -> np.ndarray:
        """[K] learned score per bucket, higher = better bucket."""
        raise NotImplementedError

    # -- the loop -----------------------------------------------------------------------------------

    def _fit(self, data: FitData) -> np.ndarray:
        self.from_prior_ = False
        given = data.buckets
        self.buckets_ = given if given is not None else quantile_buckets(data.disagreement, self.n_buckets)
        self.n_buckets_ = int(self.buckets_.max()) + 1
        self.agreement_ = 1.0 - data.disagreement
        members = [np.flatnonzero(self.buckets_ == b) for b in range(self.n_buckets_)]
        problem, score = data.problem, self._scorer()
        self.rng_ = np.random.default_rng(self.seed)
        self._start(self.n_buckets_)
        warm = problem.fit(problem.zeros(), steps=self.warm_steps)
        for episode in range(self.episodes):
            params, current = warm, problem.score(warm, score)
            self._begin_episode()
            for t in range(self.episode_length):
                bucket, choice = self._choose(self.rng_)
                rows = members[bucket]
                if len(rows) > self.batch_size:
                    rows = np.sort(self.rng_.choice(rows, self.batch_size, replace=False))
                params = problem.fit(params, rows=rows, steps=self.inner_steps)
                after = problem.score(params, score)
                reward, current = after - current, after
                self._learn(bucket, reward, done=t == self.episode_length - 1)
                self._log("offline", {"bucket": bucket, "episode": episode, **choice}, round(reward, 8))
        self._begin_episode()  # online play starts afresh
        return self._values()

    def _start_from(self, prior: np.ndarray, state: np.ndarray | None) -> np.ndarray:
        """No offline episodes: quantile buckets of the prior, every bucket's score still to learn online. The
        values stay the prior's rank: a run's few rewards cannot rank buckets against it, so online the bandit
        only learns which bucket to emphasise (``bucket_weights``)."""
        self.from_prior_ = True
        self.buckets_ = quantile_buckets(-prior, self.n_buckets)  # bucket 0: the highest prior
        self.n_buckets_ = int(self.buckets_.max()) + 1
        self.agreement_ = rankdata(prior) / len(prior)
        self.rng_ = np.random.default_rng(self.seed)
        self._start(self.n_buckets_)
        self._begin_episode()
        self._log("offline", {"start": "prior", "buckets": self.n_buckets_}, None)
        return self._values()

    def _values(self) -> np.ndarray:
        """[N] values: bucket score rank first, probe agreement within a bucket."""
        self.bucket_values_ = self._bucket_scores()
        if getattr(self, "from_prior_", False):
            return self.agreement_.copy()
        bucket_rank = rankdata(self.bucket_values_, method="dense") - 1
        return bucket_rank[self.buckets_] + 0.999 * self.agreement_

    # -- online -------------------------------------------------------------------------------------

    def act(self) -> int:
        """The bucket the next batches should come from (the agent's choice, seeded); remembered for ``update``."""
        self._check_fitted()
        self.last_action_, _ = self._choose(self.rng_)
        return self.last_action_

    def bucket_weights(self, bucket: int) -> np.ndarray:
        """[N] 1 for the samples of ``bucket``, 0 elsewhere: ``TrainState.weights`` that train on it alone."""
        self._check_fitted()
        return (self.buckets_ == bucket).astype(np.float64)

    def _online_step(self, reward: float, selected_mask: np.ndarray | None, action: int | None) -> dict[str, Any]:
        bucket = getattr(self, "last_action_", None) if action is None else int(action)
        if bucket is None or not 0 <= bucket < self.n_buckets_:
            raise ValueError(
                f"{self.name}.update needs the bucket rewarded: call act() first or pass action=, got {bucket!r}"
            )
        self._learn(bucket, reward, done=False)
        self.values_ = self._values()
        return {"bucket": bucket}


__all__ = ["BucketPolicy"]
