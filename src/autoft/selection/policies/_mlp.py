"""DVRL's data-value estimator: a tiny ReLU MLP with a sigmoid output, trained by Adam, in plain numpy.

Numpy rather than torch on purpose: the network is a few thousand weights, and torch's intra-op
thread pool costs more than the arithmetic (tens of times more on a busy machine), while changing
its thread count would be process-wide state. The backward pass is written out by hand; the tests
check it against torch autograd.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def log_sigmoid(z: np.ndarray) -> np.ndarray:
    """Numerically stable ``log(sigmoid(z))``."""
    return -np.logaddexp(0.0, -z)


@dataclass
class ValueEstimator:
    """``p = sigmoid(relu(relu(x W1 + b1) W2 + b2) w3 + b3)``: one keep-probability per row of ``x``."""

    params: list[np.ndarray]
    learning_rate: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    _moments: list[np.ndarray] = field(default_factory=list, repr=False)
    _squares: list[np.ndarray] = field(default_factory=list, repr=False)
    _steps: int = 0

    @classmethod
    def create(
        cls, inputs: int, hidden: int, rng: np.random.Generator, *, learning_rate: float = 0.01
    ) -> ValueEstimator:
        """Weights uniform in +-1/sqrt(fan_in) (torch's ``nn.Linear`` default), drawn from ``rng``."""
        params = []
        for fan_in, fan_out in ((inputs, hidden), (hidden, hidden), (hidden, 1)):
            bound = 1.0 / np.sqrt(fan_in)
            params += [rng.uniform(-bound, bound, (fan_in, fan_out)), rng.uniform(-bound, bound, fan_out)]
        return cls(params, learning_rate)

    def logits(self, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """[B] pre-sigmoid outputs, and the activations the backward pass needs."""
        w1, b1, w2, b2, w3, b3 = self.params
        h1 = np.maximum(x @ w1 + b1, 0.0)
        h2 = np.maximum(h1 @ w2 + b2, 0.0)
        return (h2 @ w3 + b3)[:, 0], [x, h1, h2]

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """[B] keep-probabilities."""
        z, _ = self.logits(x)
        return np.exp(log_sigmoid(z))

    def gradients(self, grad_logits: np.ndarray, cache: list[np.ndarray]) -> list[np.ndarray]:
        """d loss / d params, given d loss / d logits [B] and ``logits``'s cache."""
        x, h1, h2 = cache
        _, _, w2, _, w3, _ = self.params
        g3 = grad_logits[:, None]
        g2 = (g3 @ w3.T) * (h2 > 0)
        g1 = (g2 @ w2.T) * (h1 > 0)
        return [x.T @ g1, g1.sum(0), h1.T @ g2, g2.sum(0), h2.T @ g3, g3.sum(0)]

    def step(self, gradients: list[np.ndarray]) -> None:
        """One Adam step (bias-corrected, eps 1e-8) on ``gradients``."""
        if not self._moments:
            self._moments = [np.zeros_like(p) for p in self.params]
            self._squares = [np.zeros_like(p) for p in self.params]
        self._steps += 1
        b1, b2 = self.betas
        correction = np.sqrt(1 - b2**self._steps) / (1 - b1**self._steps)
        for p, g, m, v in zip(self.params, gradients, self._moments, self._squares):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= self.learning_rate * correction * m / (np.sqrt(v) + 1e-8)
