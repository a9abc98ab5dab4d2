import numpy as np
import pytest

from autoft.selection import get_policy


@pytest.mark.parametrize("gamma", [0.05, 0.2])
def test_probabilities_sum_to_one_and_stay_above_gamma_over_k(gamma, noisy):
    policy = noisy.fit(get_policy("exp3", gamma=gamma, eta=1.0, episodes=5))
    k = policy.n_buckets_
    for decision in policy.decisions_:
        pi = np.array(decision["action"]["probabilities"])
        assert pi.sum() == pytest.approx(1.0, abs=1e-5) and pi.min() >= gamma / k - 1e-6
    rng = np.random.default_rng(0)
    for _ in range(300):  # extreme online rewards cannot starve any bucket
        policy.act()
        policy.update(float(rng.choice([-1e3, 1e3])))
        pi = policy.probabilities()
        assert pi.sum() == pytest.approx(1.0) and pi.min() >= gamma / k - 1e-12


def test_learns_to_draw_the_clean_bucket(noisy):
    policy = noisy.fit(get_policy("exp3", seed=0), buckets=noisy.bad.astype(np.int64))
    assert policy.probabilities()[0] > 0.5
    assert policy.bucket_values_[0] > policy.bucket_values_[1]
