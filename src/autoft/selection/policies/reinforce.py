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

Online, the policy draws the selection the real model trains on (``draw_selection``: a Bernoulli
draw from its keep-probabilities, shifted in log-odds so the expected keep rate is the run's), and
``update(reward, selected_mask)`` applies the same step to that selection, with its own moving-average
baseline — the gradient of the log-probability of the selection actually drawn, not of a top-k cut.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit, logit
from scipy.stats import rankdata

from autoft.selection.policies._mlp import ValueEstimator, log_sigmoid
from autoft.selection.policies.base import FitData, Policy, check_option, register_policy


def reinforce_gradient(
    probs: np.ndarray,
    selections: np.ndarray,
    advantages: np.ndarray,
    *,
    epsilon: float,
    regularizer: float,
    drawn: np.ndarray | None = None,
) -> np.ndarray:
    """[B] d loss / d logits of DVRL's loss, averaged over ``k`` sampled ``selections`` [k, B].

    ``loss = -mean_j advantages[j] * sum_i log pi(selections[j, i]) + regularizer * (relu(mean p - (1 -
    epsilon)) + relu(epsilon - mean p))``; for a sigmoid output d log pi(s_i) / d z_i = s_i - p_i, where
    ``p`` is the probability each selection was drawn with: ``drawn`` when the draw shifted the
    estimator's ``probs`` (``shifted_probabilities``), else ``probs``.
    """
    mean = probs.mean()
    slope = 1.0 if mean > 1 - epsilon else -1.0 if mean < epsilon else 0.0
    drawn = probs if drawn is None else drawn
    policy_term = -(np.asarray(advantages)[:, None] * (np.atleast_2d(selections) - drawn)).mean(axis=0)
    return policy_term + regularizer * slope * probs * (1 - probs) / len(probs)


def shifted_probabilities(probs: np.ndarray, keep_rate: float, groups: list[np.ndarray] | None = None) -> np.ndarray:
    """[N] ``sigmoid(logit(probs) + b)``, with one shift ``b`` per group of rows (default: one for all)
    chosen so that the group's mean is ``keep_rate``: the estimator's order and confidence, at the run's
    keep rate. A shift is a constant of the draw, so ``d log pi / d logits`` stays ``s - shifted``."""
    if not 0.0 <= keep_rate <= 1.0:
        raise ValueError(f"keep_rate must be in [0, 1], got {keep_rate!r}")
    logits = logit(np.clip(np.asarray(probs, dtype=np.float64), 1e-6, 1 - 1e-6))
    shifted = np.empty_like(logits)
    for rows in groups or [np.arange(len(logits))]:
        if keep_rate in (0.0, 1.0):
            shifted[rows] = keep_rate
            continue
        z = logits[rows]
        bound = np.abs(z).max() + abs(logit(keep_rate)) + 1.0  # mean(sigmoid(z + b)) is keep_rate in [-bound, bound]
        shift = brentq(lambda b, z=z: expit(z + b).mean() - keep_rate, -bound, bound, xtol=1e-10)
        shifted[rows] = expit(z + shift)
    return shifted


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
            rewards = np.array(
                [
                    problem.score(problem.fit(warm, rows=rows, weights=selection, steps=self.inner_steps), score)
                    for selection in selections
                ]
            )
            others = (rewards.sum() - rewards) / (self.samples - 1) if self.samples > 1 else baseline
            self._reinforce(forward, selections, rewards - others)
            self._log("offline", self._summary(forward[0], selections), round(float(rewards.mean()), 6))
            baseline += (rewards.mean() - baseline) / self.baseline_window
        self.online_baseline_ = 0.0
        return self._estimate()

    def _start_from(self, prior: np.ndarray, state: np.ndarray | None) -> np.ndarray:
        """The estimator learns to give the prior's rank as its keep-probability from the ``state`` (binary
        cross-entropy, ``warm_steps`` full-batch Adam steps), so the online REINFORCE steps start from the prior's
        order and move it by what the real model's rewards say."""
        if state is None:
            raise ValueError("reinforce.start_from needs the state the estimator reads")
        self.rng_ = np.random.default_rng(self.seed)
        self.inputs_ = state
        self.estimator_ = ValueEstimator.create(
            state.shape[1], self.hidden, self.rng_, learning_rate=self.learning_rate
        )
        target = np.clip(rankdata(prior) / len(prior), 0.02, 0.98)
        for _ in range(max(self.warm_steps, 1)):
            logits, cache = self.estimator_.logits(state)
            self.estimator_.step(self.estimator_.gradients((np.exp(log_sigmoid(logits)) - target) / len(state), cache))
        estimate = self._estimate()
        fit = float(np.corrcoef(estimate, target)[0, 1]) if np.ptp(estimate) > 0 else 0.0
        self._log("offline", {"start": "prior", "correlation_with_prior": round(fit, 4)}, None)
        self.online_baseline_ = 0.0
        return estimate

    def _reinforce_prepare(self, rows: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Keep-probabilities of ``rows`` and the forward cache a REINFORCE step needs."""
        logits, cache = self.estimator_.logits(self.inputs_[rows])
        return np.exp(log_sigmoid(logits)), cache

    def _reinforce(
        self,
        forward: tuple[np.ndarray, list[np.ndarray]],
        selections: np.ndarray,
        advantages: np.ndarray | float,
        drawn: np.ndarray | None = None,
    ) -> None:
        """One REINFORCE step: raise the log-likelihood of each selection in proportion to its advantage
        (``drawn``: the probabilities the selections were drawn with, when not the estimator's own)."""
        probs, cache = forward
        grad = reinforce_gradient(
            probs,
            np.atleast_2d(selections),
            np.atleast_1d(advantages),
            epsilon=self.epsilon,
            regularizer=self.regularizer,
            drawn=drawn,
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
        self.drawn_probabilities_: np.ndarray | None = None
        return self.rng_.random(self.n_samples_) < self.keep_probabilities_

    def draw_selection(self, keep_rate: float, groups: list[np.ndarray] | None = None) -> np.ndarray:
        """[N] bool: a selection drawn with the policy's seeded generator from its keep-probabilities shifted
        to ``keep_rate`` (per group of rows, e.g. per given class; ``shifted_probabilities``). The next
        ``update`` rewards this draw with the probabilities it was drawn with."""
        self._check_fitted()
        self.drawn_probabilities_ = shifted_probabilities(self.keep_probabilities_, keep_rate, groups)
        return self.rng_.random(self.n_samples_) < self.drawn_probabilities_

    def _online_step(self, reward: float, selected_mask: np.ndarray | None, action: int | None) -> dict[str, Any]:
        """REINFORCE on the selection the real model trained on, against a moving-average baseline (starts at 0)."""
        if selected_mask is None:
            raise ValueError("reinforce.update needs selected_mask: the [N] selection the model trained on")
        selection = np.asarray(selected_mask, dtype=np.float64).reshape(-1)
        if len(selection) != self.n_samples_:
            raise ValueError(f"selected_mask has {len(selection)} entries, the policy was fitted on {self.n_samples_}")
        forward = self._reinforce_prepare(np.arange(self.n_samples_))
        drawn, self.drawn_probabilities_ = getattr(self, "drawn_probabilities_", None), None  # one draw, one step
        self._reinforce(forward, selection, reward - self.online_baseline_, drawn)
        self.online_baseline_ += (reward - self.online_baseline_) / self.baseline_window
        self.values_ = self._estimate()
        return self._summary(forward[0], selection)


register_policy("reinforce", Reinforce)

__all__ = ["Reinforce", "reinforce_gradient", "shifted_probabilities"]
