"""DVRL: data valuation with reinforcement learning (Yoon, Arik & Pfister, ICML 2020).

A small MLP, the data-value estimator, maps each sample's state to a keep-probability. Each offline
iteration draws a subsample, samples a Bernoulli selection from the estimator, trains the cheap inner
learner (softmax regression warm-started from a fit on all data) on the selected samples, and scores
it on the clean validation set. The reward minus a baseline drives a REINFORCE step, with the paper's
regulariser keeping the mean keep-probability within [epsilon, 1 - epsilon]. The baseline is the
paper's moving average when one selection is drawn per step (``samples=1``); by default several are
drawn on the same subsample and each is compared with the mean of the others (leave-one-out), which
removes the luck of the subsample and markedly lowers the gradient's variance. As in
the paper, the estimator also sees ``|one_hot(y) - p_val(x)|``, the gap between the given label and a
model fitted on the validation set.

Online, ``update(reward, selected_mask)`` applies the same step to a selection the real model
trained on (``sample_mask`` draws one), with its own moving-average baseline.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autoft.selection.policies._mlp import ValueEstimator, log_sigmoid
from autoft.selection.policies.base import FitData, Policy, check_option, register_policy


def reinforce_gradient(
    probs: np.ndarray, selections: np.ndarray, advantages: np.ndarray, *, epsilon: float, regularizer: float
) -> np.ndarray:
    """[B] d loss / d logits of DVRL's loss, averaged over ``k`` sampled ``selections`` [k, B].

    ``loss = -mean_j advantages[j] * sum_i log pi(selections[j, i]) + regularizer * (relu(mean p - (1 -
    epsilon)) + relu(epsilon - mean p))``; for a sigmoid output d log pi(s_i) / d z_i = s_i - p_i.
    """
    mean = probs.mean()
    slope = 1.0 if mean > 1 - epsilon else -1.0 if mean < epsilon else 0.0
    policy_term = -(np.asarray(advantages)[:, None] * (np.atleast_2d(selections) - probs)).mean(axis=0)
    return policy_term + regularizer * slope * probs * (1 - probs) / len(probs)


class Reinforce(Policy):
    """DVRL's REINFORCE-trained data-value estimator.

    Options: ``iterations`` offline steps on ``batch_size`` random samples each, ``samples`` selections
    drawn per step (with more than one, each selection's baseline is the mean reward of the others,
    which cancels the luck of the subsample; with one, the moving average), Adam ``learning_rate``,
    ``hidden`` MLP width, ``inner_steps`` gradient steps of the inner learner per selection,
    ``epsilon`` and ``regularizer`` (weight) of the keep-rate regulariser, ``baseline_window`` of the
    moving-average baseline, plus the ``Policy`` options (``drop_fraction`` etc.).
    """

    def __init__(
        self,
        *,
        iterations: int = 200,
        batch_size: int = 256,
        samples: int = 4,
        learning_rate: float = 0.003,
        hidden: int = 16,
        inner_steps: int = 20,
        warm_steps: int = 200,
        epsilon: float = 0.1,
        regularizer: float = 1000.0,
        baseline_window: int = 20,
        **options: Any,
    ):
        self.iterations = iterations
        self.batch_size = batch_size
        self.samples = samples
        self.learning_rate = learning_rate
        self.hidden = hidden
        self.inner_steps = inner_steps
        self.warm_steps = warm_steps
        self.epsilon = epsilon
        self.regularizer = regularizer
        self.baseline_window = baseline_window
        super().__init__(**options)

    def _check_options(self) -> None:
        super()._check_options()
        for name in ("iterations", "batch_size", "samples", "hidden", "inner_steps", "baseline_window"):
            check_option(self.name, name, getattr(self, name), getattr(self, name) >= 1, "an integer >= 1")
        check_option(self.name, "warm_steps", self.warm_steps, self.warm_steps >= 0, "an integer >= 0")
        check_option(self.name, "learning_rate", self.learning_rate, self.learning_rate > 0, "> 0")
        check_option(self.name, "epsilon", self.epsilon, 0.0 <= self.epsilon < 0.5, "in [0, 0.5)")
        check_option(self.name, "regularizer", self.regularizer, self.regularizer >= 0, ">= 0")

    # -- offline ----------------------------------------------------------------------------------

    def _inputs(self, data: FitData) -> np.ndarray:
        """[N, F + 2C] estimator input: state, one-hot label, |one-hot label - validation-model probabilities|."""
        problem = data.problem
        val_model = problem.fit(problem.zeros(), on_validation=True, steps=max(self.warm_steps, 1))
        one_hot = np.eye(data.n_classes)[data.labels]
        gap = np.abs(one_hot - problem.train_probabilities(val_model))
        return np.concatenate([data.state, one_hot, gap], axis=1)

    def _fit(self, data: FitData) -> np.ndarray:
        problem, score = data.problem, self._scorer()
        self.rng_ = np.random.default_rng(self.seed)
        self.inputs_ = self._inputs(data)
        self.estimator_ = ValueEstimator.create(
            self.inputs_.shape[1], self.hidden, self.rng_, learning_rate=self.learning_rate
        )
        warm = problem.fit(problem.zeros(), steps=self.warm_steps)
        n, batch = len(data.labels), min(self.batch_size, len(data.labels))
        baseline = problem.score(problem.fit(warm, steps=self.inner_steps), score)
        for _ in range(self.iterations):
            rows = np.sort(self.rng_.choice(n, batch, replace=False)) if batch < n else np.arange(n)
            forward = self._reinforce_prepare(rows)
            selections = (self.rng_.random((self.samples, len(rows))) < forward[0]).astype(np.float64)
            rewards = np.array([
                problem.score(problem.fit(warm, rows=rows, weights=selection, steps=self.inner_steps), score)
                for selection in selections
            ])
            others = (rewards.sum() - rewards) / (self.samples - 1) if self.samples > 1 else baseline
            self._reinforce(forward, selections, rewards - others)
            self._log("offline", self._summary(forward[0], selections), round(float(rewards.mean()), 6))
            baseline += (rewards.mean() - baseline) / self.baseline_window
        self.online_baseline_ = 0.0
        return self._estimate()

    def _reinforce_prepare(self, rows: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Keep-probabilities of ``rows`` and the forward cache a REINFORCE step needs."""
        logits, cache = self.estimator_.logits(self.inputs_[rows])
        return np.exp(log_sigmoid(logits)), cache

    def _reinforce(
        self, forward: tuple[np.ndarray, list[np.ndarray]], selections: np.ndarray, advantages: np.ndarray | float
    ) -> None:
        """One REINFORCE step: raise the log-likelihood of each selection in proportion to its advantage."""
        probs, cache = forward
        grad = reinforce_gradient(
            probs, np.atleast_2d(selections), np.atleast_1d(advantages),
            epsilon=self.epsilon, regularizer=self.regularizer,
        )
        self.estimator_.step(self.estimator_.gradients(grad, cache))

    @staticmethod
    def _summary(probs: np.ndarray, selections: np.ndarray) -> dict[str, Any]:
        selections = np.atleast_2d(selections)
        return {
            "selected": round(float(selections.sum(axis=1).mean()), 2),
            "considered": selections.shape[1],
            "mean_keep_probability": round(float(probs.mean()), 6),
        }

    def _estimate(self) -> np.ndarray:
        """[N] current keep-probabilities of the estimator."""
        return self.estimator_.probabilities(self.inputs_)

    def _keep_probabilities(self, values: np.ndarray) -> np.ndarray:
        return values  # the estimator's outputs are keep-probabilities already

    # -- online -----------------------------------------------------------------------------------

    def sample_mask(self) -> np.ndarray:
        """[N] bool: a selection drawn from the keep-probabilities with the policy's seeded generator."""
        self._check_fitted()
        return self.rng_.random(self.n_samples_) < self.keep_probabilities_

    def _online_step(self, reward: float, selected_mask: np.ndarray | None, action: int | None) -> dict[str, Any]:
        """REINFORCE on the selection the real model trained on, against a moving-average baseline (starts at 0)."""
        if selected_mask is None:
            raise ValueError("reinforce.update needs selected_mask: the [N] selection the model trained on")
        selection = np.asarray(selected_mask, dtype=np.float64).reshape(-1)
        if len(selection) != self.n_samples_:
            raise ValueError(f"selected_mask has {len(selection)} entries, the policy was fitted on {self.n_samples_}")
        forward = self._reinforce_prepare(np.arange(self.n_samples_))
        self._reinforce(forward, selection, reward - self.online_baseline_)
        self.online_baseline_ += (reward - self.online_baseline_) / self.baseline_window
        self.values_ = self._estimate()
        return self._summary(forward[0], selection)


register_policy("reinforce", Reinforce)

__all__ = ["Reinforce"]
