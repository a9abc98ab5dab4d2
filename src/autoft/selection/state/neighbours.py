"""The share of each sample's nearest neighbours in embedding space that carry its label (label noise is local: a
flipped tweet sits among tweets of its true class)."""

from __future__ import annotations

import numpy as np
import sklearn
from sklearn.neighbors import NearestNeighbors


def default_neighbours(n_samples: int) -> int:
    """How many neighbours ``neighbour_agreement`` asks by default: N / 30, within [5, 100]."""
    return int(np.clip(n_samples // 30, 5, 100))


NEIGHBOUR_MEMORY_MB = 128
"""Megabytes of pairwise distances ``neighbour_agreement`` computes at a time (the same neighbours, less memory)."""


def neighbour_agreement(embeddings: np.ndarray, labels: np.ndarray, *, k: int | None = None) -> np.ndarray:
    """[N] share of each sample's ``k`` nearest neighbours (cosine, itself excluded) with its given label.

    ``k`` defaults to ``default_neighbours(N)`` and is capped at N - 1. Exact search (brute force),
    fine for the tens of thousands of samples a fine-tuning set holds.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    k = min(default_neighbours(n) if k is None else k, n - 1)
    if k < 1:
        return np.ones(n)
    index = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(embeddings)
    with sklearn.config_context(working_memory=NEIGHBOUR_MEMORY_MB):  # distances in blocks of this size, not 1 GB
        _, neighbours = index.kneighbors(embeddings)
    # Drop each sample itself — or, where exact duplicates crowded it out of the list, the farthest one.
    keep = neighbours != np.arange(n)[:, None]
    keep[keep.all(axis=1), -1] = False
    others = neighbours[keep].reshape(n, k)
    return (labels[others] == labels[:, None]).mean(axis=1)
