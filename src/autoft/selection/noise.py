"""How noisy are the given labels? An estimate from cached probes and the clean validation set.

Nobody tells autoft the noise rate, so it estimates one, in the spirit of the confident joint
(Northcutt et al., 2021) but with the trusted validation set doing the calibration:

1. Out-of-fold probes, fitted on the (noisy) training labels, score every training sample; the same
   fold probes score the validation samples (``cross_fitted_probabilities``).
2. A calibration map fitted on the clean validation labels turns those scores into estimates
   ``q(y | x)`` of the *true* class: matrix scaling of the log-probabilities (a temperature on the
   diagonal, a full matrix and bias around it, their penalty chosen by cross-validation). A probe trained on noisy labels is
   under-confident (symmetric noise) or leans toward the classes labels were flipped to (asymmetric
   noise); the clean labels expose both and the map undoes them.
3. Each given label is modelled as drawn from ``q`` through a label-transition matrix ``T``:
   ``P(given = k | x) = sum_y q(y | x) T[y, k]``. EM fits ``T`` (Dawid and Skene's model with one
   annotator whose true-class prior is fixed per sample), smoothed with a few pseudo-counts.
4. The posterior that each given label is the true one gives the noise rate per sample, per given
   class and overall, and the most likely true class (a suggested relabel) with its confidence.

Calibrated scores make the estimate honest on clean data: when the given labels are the true ones,
``T = I`` is the likelihood's maximum, so a weak probe does not read its own errors as noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

_EPS = 1e-12


@dataclass
class NoiseEstimate:
    """What the estimator concluded. Rates are shares of the training samples (or units)."""

    rate: float
    """Estimated share of given labels that are wrong."""
    per_class: dict[str, float]
    """Per given label: the share of the samples given that label whose label is wrong."""
    temperature: float
    """The temperature on the calibration map's diagonal (1 / its scale)."""
    penalty: float
    """The calibration map's penalty, chosen by cross-validation on the validation samples."""
    transition: np.ndarray
    """[C, C] ``T[y, k]``: P(given label k | true class y)."""
    correct: np.ndarray
    """[N] posterior probability that each given label is the true class."""
    posterior: np.ndarray
    """[N, C] posterior of each sample's true class, given its features and its given label."""
    validation_nll: tuple[float, float]
    """Validation log loss of the probes before and after calibration."""
    calibration: Calibration | None = None
    """The calibration map the estimate was made with (``posterior_of`` applies it to other samples)."""

    def posterior_of(self, probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """[n, C] the posterior of each sample's true class given its probe ``probs`` and given ``labels``, as the
        estimate's samples got theirs: calibrated, through the fitted transition matrix (for samples of a pool
        beyond those the estimate was fitted on)."""
        prior = np.clip(self.calibration(probs), _EPS, 1.0)
        joint = prior * self.transition[:, np.asarray(labels, dtype=np.int64)].T
        return joint / joint.sum(axis=1, keepdims=True)

    @property
    def suggested(self) -> np.ndarray:
        """[N] the most likely true class of each sample."""
        return self.posterior.argmax(axis=1)

    @property
    def suggested_confidence(self) -> np.ndarray:
        """[N] the posterior probability of the suggested class."""
        return self.posterior.max(axis=1)

    def to_dict(self, class_names: list[str]) -> dict:
        """A JSON-ready summary (``noise.json``)."""
        return {
            "rate": round(self.rate, 4),
            "per_class": {k: round(v, 4) for k, v in self.per_class.items()},
            "temperature": round(self.temperature, 4),
            "calibration_penalty": self.penalty,
            "validation_log_loss": {"raw": round(self.validation_nll[0], 4),
                                    "calibrated": round(self.validation_nll[1], 4)},
            "transition": {y: {k: round(float(self.transition[i, j]), 4) for j, k in enumerate(class_names)
                               if self.transition[i, j] >= 0.005}
                           for i, y in enumerate(class_names)},
            "method": "out-of-fold probes calibrated (matrix scaling) on the validation labels; label-transition "
                      "matrix by EM; rate = mean posterior that a given label is wrong",
        }


def _log_probs(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1.0))


def _nll(log_probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature ``t`` minimising the log loss of ``softmax(log(probs) / t)`` on ``labels``."""
    logits = _log_probs(probs)
    labels = np.asarray(labels, dtype=np.int64)
    result = minimize_scalar(lambda log_t: _nll(log_softmax(logits / np.exp(log_t), axis=1), labels),
                             bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


@dataclass
class Calibration:
    """``q = softmax(log(probs) @ (I / temperature + matrix) + bias)``: matrix scaling of probe outputs."""

    temperature: float
    matrix: np.ndarray  # [C, C]
    bias: np.ndarray  # [C]

    def __call__(self, probs: np.ndarray) -> np.ndarray:
        weights = np.eye(len(self.bias)) / self.temperature + self.matrix
        return np.exp(log_softmax(_log_probs(probs) @ weights + self.bias, axis=1))


PENALTIES = (0.001, 0.01, 0.1, 1.0)
"""Candidate penalties of the calibration map; cross-validation on the validation samples picks one."""


def fit_calibration(probs: np.ndarray, labels: np.ndarray, *, penalty: float = 0.01) -> Calibration:
    """Matrix scaling fitted on trusted ``labels``: the temperature first, then scale, matrix and bias
    together by L-BFGS on the mean log loss plus ``penalty`` times the squared matrix and bias (so a few
    validation samples per class cannot fit noise of their own)."""
    import torch

    labels_t = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    logits = torch.as_tensor(_log_probs(probs))
    c = logits.shape[1]
    scale = torch.tensor(-np.log(fit_temperature(probs, labels)), dtype=torch.float64, requires_grad=True)
    matrix = torch.zeros(c, c, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(c, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([scale, matrix, bias], max_iter=200, line_search_fn="strong_wolfe")
    eye = torch.eye(c, dtype=torch.float64)

    def closure():
        optimizer.zero_grad()
        out = logits @ (torch.exp(scale) * eye + matrix) + bias
        loss = torch.nn.functional.cross_entropy(out, labels_t) + penalty * (matrix.pow(2).sum() + bias.pow(2).sum())
        loss.backward()
        return loss

    optimizer.step(closure)
    return Calibration(float(torch.exp(-scale.detach())), matrix.detach().numpy().copy(), bias.detach().numpy().copy())


def choose_penalty(probs: np.ndarray, labels: np.ndarray, *, folds: int = 5, seed: int = 0,
                   candidates: tuple[float, ...] = PENALTIES) -> float:
    """The candidate penalty with the lowest held-out log loss, by ``folds``-fold cross-validation over
    the validation samples. ``probs`` is [M, C] or [F, M, C] (every fold probe's view of each sample; a
    sample's views stay on the same side of each split)."""
    from sklearn.model_selection import KFold

    probs = np.asarray(probs, dtype=np.float64)
    views = probs if probs.ndim == 3 else probs[None]
    labels = np.asarray(labels, dtype=np.int64)
    folds = min(folds, len(labels))
    if folds < 2:
        return candidates[len(candidates) // 2]
    losses = np.zeros(len(candidates))
    for fit_rows, held_rows in KFold(folds, shuffle=True, random_state=seed).split(labels):
        fit_p, fit_y = views[:, fit_rows].reshape(-1, views.shape[-1]), np.tile(labels[fit_rows], len(views))
        held_p, held_y = views[:, held_rows].reshape(-1, views.shape[-1]), np.tile(labels[held_rows], len(views))
        for i, penalty in enumerate(candidates):
            losses[i] += _nll(_log_probs(fit_calibration(fit_p, fit_y, penalty=penalty)(held_p)), held_y)
    return candidates[int(np.argmin(losses))]


def fit_transition(
    prior: np.ndarray, labels: np.ndarray, *, smoothing: float = 1.0, iterations: int = 200, tol: float = 1e-7
) -> tuple[np.ndarray, np.ndarray]:
    """EM for ``T`` in ``P(given = labels[i] | x_i) = sum_y prior[i, y] T[y, labels[i]]``.

    Returns ``(T [C, C], posterior [N, C])``, the posterior being P(true class | x, given label). Each row
    of ``T`` gets ``smoothing`` pseudo-counts spread evenly over the other classes plus as many on the
    diagonal, so a class seen rarely stays near "labels are right" instead of jumping to an extreme.
    """
    prior = np.clip(np.asarray(prior, dtype=np.float64), _EPS, 1.0)
    labels = np.asarray(labels, dtype=np.int64)
    n, c = prior.shape
    transition = np.full((c, c), 0.1 / max(c - 1, 1))
    np.fill_diagonal(transition, 0.9)
    previous = -np.inf
    for _ in range(iterations):
        joint = prior * transition[:, labels].T  # [N, C]: prior[i, y] * T[y, given_i]
        evidence = joint.sum(axis=1, keepdims=True)
        posterior = joint / evidence
        likelihood = float(np.log(evidence).sum())
        transition = transition_of(posterior, labels, smoothing=smoothing)
        if likelihood - previous < tol * n:
            break
        previous = likelihood
    joint = prior * transition[:, labels].T
    return transition, joint / joint.sum(axis=1, keepdims=True)


def transition_of(posterior: np.ndarray, labels: np.ndarray, rows: np.ndarray | None = None, *,
                  smoothing: float = 1.0) -> np.ndarray:
    """[C, C] ``T[y, k]`` of ``rows`` (default: all): the expected counts of (true class y, given label k)
    under ``posterior`` [N, C], with ``fit_transition``'s pseudo-counts, normalised per true class. The
    label noise of a subset (the samples an agent keeps) is lower than that of the whole set."""
    posterior, labels = np.asarray(posterior, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    if rows is not None:
        posterior, labels = posterior[rows], labels[rows]
    c = posterior.shape[1]
    counts = np.full((c, c), smoothing / max(c - 1, 1))
    np.fill_diagonal(counts, smoothing)
    np.add.at(counts.T, labels, posterior)  # counts[y, given_i] += posterior[i, y]
    return counts / counts.sum(axis=1, keepdims=True)


def estimate_noise(
    oof_probs: np.ndarray,
    labels: np.ndarray,
    val_probs: np.ndarray,
    val_labels: np.ndarray,
    class_names: list[str],
    *,
    smoothing: float = 1.0,
    seed: int = 0,
) -> NoiseEstimate:
    """Estimate the label noise of ``labels`` from cross-fitted probe probabilities.

    ``oof_probs`` [N, C]: out-of-fold probe probabilities of the training samples; ``val_probs`` [M, C],
    or [F, M, C] from each of F fold probes: the same probes' probabilities of the validation samples,
    whose labels ``val_labels`` [M] are trusted (``cross_fitted_probabilities`` gives both).
    """
    labels, val_labels = np.asarray(labels, dtype=np.int64), np.asarray(val_labels, dtype=np.int64)
    if len(val_labels) == 0:
        raise ValueError("estimating the noise rate needs validation samples with trusted labels")
    val_probs = np.asarray(val_probs, dtype=np.float64)
    penalty = choose_penalty(val_probs, val_labels, seed=seed)
    if val_probs.ndim == 3:  # every fold probe's view of the validation set: more pairs for the calibration
        val_labels = np.tile(val_labels, len(val_probs))
        val_probs = val_probs.reshape(-1, val_probs.shape[-1])
    calibration = fit_calibration(val_probs, val_labels, penalty=penalty)
    before = _nll(_log_probs(val_probs), val_labels)
    after = _nll(_log_probs(calibration(val_probs)), val_labels)
    transition, posterior = fit_transition(calibration(oof_probs), labels, smoothing=smoothing)
    correct = posterior[np.arange(len(labels)), labels]
    per_class = {name: float(1.0 - correct[labels == k].mean())
                 for k, name in enumerate(class_names) if (labels == k).any()}
    return NoiseEstimate(float(1.0 - correct.mean()) if len(labels) else 0.0, per_class, calibration.temperature,
                         penalty, transition,
                         correct, posterior, (before, after), calibration)


__all__ = ["Calibration", "NoiseEstimate", "choose_penalty", "estimate_noise", "fit_calibration", "fit_temperature",
           "fit_transition", "transition_of"]
