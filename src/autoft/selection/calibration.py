"""Calibration of probe outputs on trusted labels: matrix scaling (a temperature on the diagonal, a full matrix and
bias around it), its penalty chosen by cross-validation on the validation samples. The noise estimate
(``autoft.selection.noise``) turns the probes' scores into estimates of the true class with it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

_EPS = 1e-12


def log_probs(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1.0))


def nll(log_probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature ``t`` minimising the log loss of ``softmax(log(probs) / t)`` on ``labels``."""
    logits = log_probs(probs)
    labels = np.asarray(labels, dtype=np.int64)
    result = minimize_scalar(
        lambda log_t: nll(log_softmax(logits / np.exp(log_t), axis=1), labels),
        bounds=(np.log(0.05), np.log(20.0)),
        method="bounded",
    )
    return float(np.exp(result.x))


@dataclass
class Calibration:
    """``q = softmax(log(probs) @ (I / temperature + matrix) + bias)``: matrix scaling of probe outputs."""

    temperature: float
    matrix: np.ndarray  # [C, C]
    bias: np.ndarray  # [C]

    def __call__(self, probs: np.ndarray) -> np.ndarray:
        weights = np.eye(len(self.bias)) / self.temperature + self.matrix
        return np.exp(log_softmax(log_probs(probs) @ weights + self.bias, axis=1))


PENALTIES = (0.001, 0.01, 0.1, 1.0)
"""Candidate penalties of the calibration map; cross-validation on the validation samples picks one."""


def fit_calibration(probs: np.ndarray, labels: np.ndarray, *, penalty: float = 0.01) -> Calibration:
    """Matrix scaling fitted on trusted ``labels``: the temperature first, then scale, matrix and bias
    together by L-BFGS on the mean log loss plus ``penalty`` times the squared matrix and bias (so a few
    validation samples per class cannot fit noise of their own)."""
    import torch

    labels_t = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    logits = torch.as_tensor(log_probs(probs))
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


def choose_penalty(
    probs: np.ndarray, labels: np.ndarray, *, folds: int = 5, seed: int = 0, candidates: tuple[float, ...] = PENALTIES
) -> float:
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
            losses[i] += nll(log_probs(fit_calibration(fit_p, fit_y, penalty=penalty)(held_p)), held_y)
    return candidates[int(np.argmin(losses))]


__all__ = ["PENALTIES", "Calibration", "choose_penalty", "fit_calibration", "fit_temperature", "log_probs", "nll"]
