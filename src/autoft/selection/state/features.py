"""The value estimator's input: every per-sample signal as one float32 matrix, the suspicion rank that combines
the signals calibrated on clean labels, and quantile buckets of a score."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from sklearn.decomposition import PCA

from autoft.selection.state.probes import disagreement

_EPS = 1e-12


def suspicion(
    labels: np.ndarray, val_probs: np.ndarray, agreement: np.ndarray, noise_probability: np.ndarray
) -> np.ndarray:
    """[N] in (0, 1]: how strongly the evidence contradicts each given label.

    The mean of three ranks: the noise estimate's posterior that the label is wrong
    (``autoft.selection.noise``), the disagreement of the probe fitted on the clean validation set, and the
    neighbours' disagreement. The signals fitted on the noisy labels alone (out-of-fold probes,
    neighbours) learn a systematic flip as the truth; the two calibrated on the clean labels do not. On
    TweetEval it ranks flipped labels at AUROC 0.854 under 30% asymmetric noise and 0.883 under 40%
    symmetric noise (``benchmarks/results/noise_rate.md``).
    """
    ranks = [
        disagreement(labels, val_probs),
        1.0 - np.asarray(agreement, dtype=np.float64),
        np.asarray(noise_probability, dtype=np.float64),
    ]
    return sum(rankdata(r) for r in ranks) / (len(ranks) * max(len(labels), 1))


def _entropy(probs: np.ndarray) -> np.ndarray:
    """[N] Shannon entropy (nats) of each row."""
    return -(probs * np.log(np.clip(probs, _EPS, 1.0))).sum(axis=1)


def _top_margin(probs: np.ndarray) -> np.ndarray:
    """[N] highest minus second-highest probability of each row."""
    top = np.sort(probs, axis=1)
    return top[:, -1] - (top[:, -2] if probs.shape[1] > 1 else 0.0)


def _one_hot(values: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros((len(values), size))
    out[np.arange(len(values)), np.asarray(values, dtype=np.int64)] = 1.0
    return out


def _probe_columns(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """[N, 5]: prob of the given label, max prob, entropy, top-2 margin, disagreement."""
    given = probs[np.arange(len(labels)), labels]
    return np.column_stack([given, probs.max(axis=1), _entropy(probs), _top_margin(probs), 1.0 - given])


def reduce_embeddings(embeddings: np.ndarray, *, dims: int | None = 32, seed: int = 0) -> np.ndarray:
    """[N, min(dims, D, N)] PCA projection of ``embeddings`` (fixed ``seed``); unchanged if already small enough."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if dims is None or embeddings.shape[1] <= dims:
        return embeddings
    components = min(dims, len(embeddings))
    return PCA(n_components=components, random_state=seed).fit_transform(embeddings)


def state_features(
    *,
    embeddings: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    oof_probs: np.ndarray,
    val_probs: np.ndarray,
    agreement: np.ndarray | None = None,
    noise_probability: np.ndarray | None = None,
    sources: np.ndarray | None = None,
    n_sources: int = 0,
    dynamics: np.ndarray | None = None,
    embedding_dims: int | None = 32,
    seed: int = 0,
) -> np.ndarray:
    """The value estimator's input, [N, F] float32.

    Columns, in order: the embeddings (PCA-reduced to ``embedding_dims`` with ``seed`` when wider;
    ``None`` keeps them whole), the one-hot given label [n_classes], for each probe (out-of-fold, then
    validation) the prob of the given label, max prob, entropy, top-2 margin and disagreement [10],
    the neighbour agreement [1] when ``agreement`` is given, the noise estimate's posterior that the label
    is wrong [1] when ``noise_probability`` is given, the one-hot source [n_sources] when ``sources`` is given, and ``dynamics`` (e.g.
    ``TrainingDynamics.features()``) when given.
    """
    labels = np.asarray(labels, dtype=np.int64)
    blocks = [
        reduce_embeddings(embeddings, dims=embedding_dims, seed=seed),
        _one_hot(labels, n_classes),
        _probe_columns(labels, np.asarray(oof_probs, dtype=np.float64)),
        _probe_columns(labels, np.asarray(val_probs, dtype=np.float64)),
    ]
    if agreement is not None:
        blocks.append(np.asarray(agreement, dtype=np.float64).reshape(len(labels), 1))
    if noise_probability is not None:
        blocks.append(np.asarray(noise_probability, dtype=np.float64).reshape(len(labels), 1))
    if sources is not None:
        blocks.append(_one_hot(sources, max(n_sources, int(np.max(sources)) + 1)))
    if dynamics is not None:
        blocks.append(np.asarray(dynamics, dtype=np.float64).reshape(len(labels), -1))
    return np.concatenate(blocks, axis=1).astype(np.float32)


def quantile_buckets(scores: np.ndarray, n_buckets: int) -> np.ndarray:
    """[N] int bucket of each sample: 0 for the lowest ``scores`` quantile up to ``n_buckets - 1`` for the highest.

    Buckets are equal-count up to ties (tied scores always share a bucket), so fewer than ``n_buckets``
    may be non-empty when scores repeat.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if n_buckets < 1:
        raise ValueError(f"n_buckets must be >= 1, got {n_buckets}")
    edges = np.quantile(scores, np.linspace(0.0, 1.0, n_buckets + 1)[1:-1])
    return np.searchsorted(edges, scores, side="left").astype(np.int64)
