"""The agents' cheap inner learner: softmax regression on cached embeddings, full-batch gradient descent.

One ``fit`` of a few dozen steps on a few hundred samples costs well under a millisecond, which is what
lets a policy try hundreds of selections offline. Inputs are standardized with the training statistics
and get a bias column; the step size is 1 / L for the loss's curvature bound L (Böhning 1992), so
descent is stable without tuning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autoft.selection.rewards import Scorer


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of [N, C] logits."""
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _design(x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.column_stack([(np.asarray(x, dtype=np.float64) - mean) / scale, np.ones(len(x))])


@dataclass(frozen=True)
class SoftmaxProblem:
    """A training set and a clean validation set in one standardized design space.

    ``x`` [N, D+1] and ``val_x`` [M, D+1] carry a bias column; ``step`` is the stable learning rate.
    """

    x: np.ndarray
    y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    n_classes: int
    step: float
    l2: float

    @classmethod
    def build(
        cls, x: np.ndarray, y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray, *, n_classes: int, l2: float = 1e-3
    ) -> SoftmaxProblem:
        """Standardize with the training mean / std and derive the step size from the curvature bound."""
        x = np.asarray(x, dtype=np.float64)
        mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-8
        design = _design(x, mean, scale)
        curvature = 0.5 * np.linalg.eigvalsh(design.T @ design / len(design))[-1] + l2
        return cls(
            design,
            np.asarray(y, dtype=np.int64),
            _design(val_x, mean, scale),
            np.asarray(val_y, dtype=np.int64),
            n_classes,
            1.0 / curvature,
            l2,
        )

    def zeros(self) -> np.ndarray:
        """[D+1, C] all-zero weights (uniform predictions)."""
        return np.zeros((self.x.shape[1], self.n_classes))

    def fit(
        self,
        init: np.ndarray,
        *,
        rows: np.ndarray | None = None,
        weights: np.ndarray | None = None,
        steps: int = 30,
        on_validation: bool = False,
    ) -> np.ndarray:
        """Weights after ``steps`` gradient steps from ``init`` on the (weighted) mean cross-entropy.

        ``rows`` restricts training to those samples, ``weights`` weighs them (0 drops a sample);
        ``on_validation`` trains on the validation set instead. ``init`` is returned unchanged when
        no sample has positive weight.
        """
        x, y = (self.val_x, self.val_y) if on_validation else (self.x, self.y)
        if rows is not None:
            x, y = x[rows], y[rows]
        w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
        total = w.sum()
        if total <= 0:
            return init
        targets = np.zeros((len(y), self.n_classes))
        targets[np.arange(len(y)), y] = 1.0
        xw = x.T * (w / total)
        penalty = np.ones((x.shape[1], 1))
        penalty[-1] = 0.0  # no decay on the bias
        params = init.copy()
        for _ in range(steps):
            gradient = xw @ (softmax(x @ params) - targets) + self.l2 * penalty * params
            params -= self.step * gradient
        return params

    def val_probabilities(self, params: np.ndarray) -> np.ndarray:
        """[M, C] validation probabilities under ``params``."""
        return softmax(self.val_x @ params)

    def train_probabilities(self, params: np.ndarray) -> np.ndarray:
        """[N, C] training-set probabilities under ``params``."""
        return softmax(self.x @ params)

    def score(self, params: np.ndarray, score: Scorer) -> float:
        """``score`` of ``params`` on the validation set (higher is better)."""
        return float(score(self.val_probabilities(params), self.val_y))
