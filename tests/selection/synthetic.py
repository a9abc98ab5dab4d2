"""Synthetic valuation problems whose answer is known: Gaussian clusters with flipped labels or a bad source."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autoft.selection import probe_probabilities, state_features


@dataclass(frozen=True)
class Problem:
    x: np.ndarray  # [N, D] training embeddings
    y: np.ndarray  # [N] given (partly wrong) labels
    val_x: np.ndarray  # [M, D] clean validation embeddings
    val_y: np.ndarray
    state: np.ndarray  # [N, F] state_features
    n_classes: int
    bad: np.ndarray  # [N] bool: the label is wrong (flipped, or corrupted by a bad source)
    sources: np.ndarray  # [N] int source of each sample (all 0 unless mixed)

    def fit(self, policy, **extra):
        """``policy.fit`` in the pipeline's call style: state features + embeddings for the inner learner."""
        return policy.fit(
            self.state,
            self.y,
            None,
            self.val_y,
            n_classes=self.n_classes,
            embeddings=self.x,
            val_embeddings=self.val_x,
            **extra,
        )


def _centers(rng: np.random.Generator, n_classes: int, dims: int, separation: float) -> np.ndarray:
    return rng.normal(size=(n_classes, dims)) * separation / np.sqrt(2)


def _state(x, y, val_x, val_y, n_classes, sources=None, n_sources=0) -> np.ndarray:
    oof, val = probe_probabilities(x, y, val_x, val_y, n_classes=n_classes)
    return state_features(
        embeddings=x, labels=y, n_classes=n_classes, oof_probs=oof, val_probs=val, sources=sources, n_sources=n_sources
    )


def _clusters(seed: int, n: int, n_val: int, dims: int, n_classes: int, separation: float):
    """Seeded Gaussian clusters: ``(rng, true labels, x, val_x, val_y)``; the caller goes on drawing from ``rng``."""
    rng = np.random.default_rng(seed)
    centers = _centers(rng, n_classes, dims, separation)
    y_true = rng.integers(n_classes, size=n)
    x = centers[y_true] + rng.normal(size=(n, dims))
    val_y = rng.integers(n_classes, size=n_val)
    val_x = centers[val_y] + rng.normal(size=(n_val, dims))
    return rng, y_true, x, val_x, val_y


def noisy_clusters(
    *,
    seed: int = 0,
    n: int = 600,
    n_val: int = 150,
    dims: int = 24,
    n_classes: int = 4,
    flip: float = 0.35,
    separation: float = 0.8,
) -> Problem:
    """``n_classes`` unit-variance Gaussian clusters; a ``flip`` share of training labels symmetrically flipped."""
    rng, y_true, x, val_x, val_y = _clusters(seed, n, n_val, dims, n_classes, separation)
    flipped = rng.random(n) < flip
    y = y_true.copy()
    y[flipped] = (y_true[flipped] + rng.integers(1, n_classes, size=flipped.sum())) % n_classes
    state = _state(x, y, val_x, val_y, n_classes)
    return Problem(x, y, val_x, val_y, state, n_classes, flipped, np.zeros(n, dtype=np.int64))


def asymmetric_clusters(
    *,
    seed: int = 0,
    n: int = 900,
    n_val: int = 200,
    dims: int = 24,
    n_classes: int = 4,
    flip: float = 0.4,
    separation: float = 1.2,
) -> Problem:
    """Like ``noisy_clusters``, but each flipped label moves to one fixed class (``c -> c + 1``): a
    systematic flip that probes and neighbours fitted on the given labels learn as the truth."""
    rng, y_true, x, val_x, val_y = _clusters(seed, n, n_val, dims, n_classes, separation)
    flipped = rng.random(n) < flip
    y = np.where(flipped, (y_true + 1) % n_classes, y_true)
    state = _state(x, y, val_x, val_y, n_classes)
    return Problem(x, y, val_x, val_y, state, n_classes, flipped, np.zeros(n, dtype=np.int64))


def mixed_sources(
    *,
    seed: int = 0,
    n: int = 600,
    n_val: int = 150,
    dims: int = 24,
    n_classes: int = 4,
    bad_share: float = 0.4,
    corrupt: float = 0.8,
    separation: float = 1.0,
) -> Problem:
    """Source 0 matches the clean validation distribution; source 1 (``bad_share`` of the samples) is
    shifted in input space and maps ``corrupt`` of its labels to the next class."""
    rng = np.random.default_rng(seed)
    centers = _centers(rng, n_classes, dims, separation)
    shift = rng.normal(size=dims) * 0.5
    y_true = rng.integers(n_classes, size=n)
    sources = (rng.random(n) < bad_share).astype(np.int64)
    x = centers[y_true] + rng.normal(size=(n, dims)) + sources[:, None] * shift
    corrupted = (sources == 1) & (rng.random(n) < corrupt)
    y = np.where(corrupted, (y_true + 1) % n_classes, y_true)
    val_y = rng.integers(n_classes, size=n_val)
    val_x = centers[val_y] + rng.normal(size=(n_val, dims))
    state = _state(x, y, val_x, val_y, n_classes, sources=sources, n_sources=2)
    return Problem(x, y, val_x, val_y, state, n_classes, corrupted, sources)
