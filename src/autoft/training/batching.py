"""Seeded batch sampling over a (possibly changing) pool of sample indices."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np


class LengthGroupedBatchSampler:
    """Yields lists of sample indices, one list per batch.

    Each epoch the pool is shuffled with a generator seeded by ``(seed, epoch)``. With
    ``group_by_length``, the shuffled pool is cut into mega-batches of ``batch_size * group_size``
    samples, each sorted by length and cut into batches, and the batch order is shuffled again:
    similar lengths share a batch, so dynamic padding pads little, while batches stay random.

    ``set_epoch(epoch, pool)`` selects the epoch and which samples it draws from; this is how a
    selection policy narrows training to the samples it keeps. With ``num_shards > 1`` (several
    processes under ``accelerate launch``) each process takes every ``num_shards``-th batch, the
    list padded by repeating its first batches so that every process runs the same number of steps.
    """

    def __init__(
        self,
        lengths: list[int] | np.ndarray,
        batch_size: int,
        *,
        seed: int = 0,
        group_by_length: bool = True,
        group_size: int = 50,
        num_shards: int = 1,
        shard: int = 0,
    ) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group_by_length = group_by_length
        self.group_size = group_size
        self.num_shards = num_shards
        self.shard = shard
        self.epoch = 0
        self.pool = np.arange(len(self.lengths))

    def set_epoch(self, epoch: int, pool: np.ndarray | None = None) -> None:
        self.epoch = epoch
        self.pool = np.arange(len(self.lengths)) if pool is None else np.asarray(pool, dtype=np.int64)

    def __len__(self) -> int:
        return math.ceil(math.ceil(len(self.pool) / self.batch_size) / self.num_shards)

    def _batches(self) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.pool)
        if not self.group_by_length:
            return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        span = self.batch_size * self.group_size
        batches: list[np.ndarray] = []
        for start in range(0, len(order), span):
            chunk = order[start : start + span]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches.extend(chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size))
        return [batches[b] for b in rng.permutation(len(batches))]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._batches()
        if self.num_shards > 1 and batches:
            batches += batches[: (-len(batches)) % self.num_shards]
            batches = batches[self.shard :: self.num_shards]
        for batch in batches:
            yield batch.tolist()
