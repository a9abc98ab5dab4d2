import numpy as np

from autoft.training.batching import LengthGroupedBatchSampler


def lengths(n=1000, seed=0):
    return np.random.default_rng(seed).integers(5, 120, size=n)


def padded_tokens(sampler, lens):
    return sum(len(b) * max(lens[i] for i in b) for b in sampler)


def test_every_pool_sample_once_per_epoch():
    sampler = LengthGroupedBatchSampler(lengths(), 32, seed=1)
    for epoch, pool in ((1, None), (2, np.arange(0, 1000, 3))):
        sampler.set_epoch(epoch, pool)
        seen = [i for batch in sampler for i in batch]
        expected = np.arange(1000) if pool is None else pool
        assert sorted(seen) == sorted(expected.tolist())
        assert len(list(sampler)) == len(sampler)


def test_grouping_cuts_padding():
    lens = lengths()
    grouped = LengthGroupedBatchSampler(lens, 32, seed=0, group_by_length=True)
    random = LengthGroupedBatchSampler(lens, 32, seed=0, group_by_length=False)
    assert padded_tokens(grouped, lens) < 0.75 * padded_tokens(random, lens)


def test_seeded_per_epoch():
    a = LengthGroupedBatchSampler(lengths(), 16, seed=5)
    b = LengthGroupedBatchSampler(lengths(), 16, seed=5)
    a.set_epoch(3)
    b.set_epoch(3)
    assert list(a) == list(b)
    b.set_epoch(4)
    assert list(a) != list(b)


def test_batches_are_shuffled_not_sorted():
    lens = lengths()
    sampler = LengthGroupedBatchSampler(lens, 32, seed=0)
    maxima = [max(lens[i] for i in b) for b in sampler]
    assert maxima != sorted(maxima) and maxima != sorted(maxima, reverse=True)
