import numpy as np

from autoft.selection import get_policy


def test_prefers_the_clean_bucket_on_a_two_bucket_problem(noisy):
    buckets = noisy.bad.astype(np.int64)  # bucket 1: every flipped label; bucket 0: the clean ones
    policy = noisy.fit(get_policy("q-learning", seed=0), buckets=buckets)
    assert policy.bucket_values_[0] > policy.bucket_values_[1]
    assert policy.q_[0].argmax() == 0  # greedy from the start state: the clean bucket
    late = [d["action"]["bucket"] for d in policy.decisions_[len(policy.decisions_) // 2 :]]
    assert np.mean(np.array(late) == 0) > 0.7  # mostly exploiting it (epsilon = 0.3)
    assert policy.values_[buckets == 0].min() > policy.values_[buckets == 1].max()


def test_state_is_last_action_and_reward_sign(noisy):
    policy = noisy.fit(get_policy("q-learning", episodes=2, n_buckets=3))
    assert policy.q_.shape == (1 + 2 * 3, 3)
    states = [d["action"]["state"] for d in policy.decisions_]
    assert states[0] == 0 and all(0 <= s < 7 for s in states)
