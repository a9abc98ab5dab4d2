"""Mixed sources: one consistent with the clean validation set, one shifted with a corrupted label mapping."""

import pytest

from autoft.selection import get_policy


@pytest.mark.parametrize("name", ["q-learning", "exp3"])
def test_bucket_by_source_values_the_good_source_higher(name, mixed):
    policy = mixed.fit(get_policy(name, seed=0), buckets=mixed.sources)
    good, bad = policy.values_[mixed.sources == 0], policy.values_[mixed.sources == 1]
    assert policy.bucket_values_[0] > policy.bucket_values_[1]
    assert good.mean() > bad.mean()


@pytest.mark.parametrize("name", ["reinforce", "small-loss"])
def test_per_sample_policies_value_the_good_source_higher(name, mixed):
    policy = mixed.fit(get_policy(name, seed=0))
    assert policy.values_[mixed.sources == 0].mean() > policy.values_[mixed.sources == 1].mean()
