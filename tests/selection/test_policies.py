"""The contract every registered policy honours, on the synthetic problems of ``synthetic.py``."""

import time

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from autoft.errors import ConfigError
from autoft.selection import POLICIES, get_policy
from autoft.selection.keeping import kept_mask

ALL = sorted(POLICIES)
LEARNED = [name for name in ALL if name not in ("none", "random")]
AGENTS = ["reinforce", "q-learning", "exp3"]
# Shorter offline phases where a test only checks bookkeeping, not quality.
FAST = {"reinforce": {"iterations": 30}, "q-learning": {"episodes": 4}, "exp3": {"episodes": 4}}


def fast(name, **options):
    return get_policy(name, **{**FAST.get(name, {}), **options})


def test_registry_holds_every_policy():
    assert set(ALL) >= {"none", "random", "small-loss", "reinforce", "q-learning", "exp3"}
    assert get_policy("small_loss").name == "small-loss"  # '_' and '-' are interchangeable


def test_unknown_policy_and_options_are_config_errors():
    with pytest.raises(ConfigError, match="unknown policy 'dvrl'; known: .*reinforce"):
        get_policy("dvrl")
    with pytest.raises(ConfigError, match="has no option 'iterationz'"):
        get_policy("reinforce", iterationz=3)
    with pytest.raises(ConfigError, match="'epsilon' must be in"):
        get_policy("q-learning", epsilon=2.0)
    with pytest.raises(ConfigError, match="'drop_fraction'"):
        get_policy("random", drop_fraction=1.5)
    with pytest.raises(ConfigError, match="reward 'nope'"):
        get_policy("exp3", reward="nope")


@pytest.mark.parametrize("name", LEARNED)
def test_values_rank_flipped_labels_lowest(name, noisy):
    started = time.perf_counter()
    policy = noisy.fit(get_policy(name, seed=0))
    seconds = time.perf_counter() - started
    auroc = roc_auc_score(noisy.bad, -policy.values_)
    print(f"{name}: AUROC {auroc:.3f}, fit {seconds:.2f} s")
    assert auroc >= 0.85
    assert seconds < 10.0


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_values_and_decisions(name, noisy):
    first, second = noisy.fit(fast(name, seed=3)), noisy.fit(fast(name, seed=3))
    np.testing.assert_array_equal(first.values_, second.values_)
    assert first.decisions_ == second.decisions_ and len(first.decisions_) >= 1
    assert {"step", "phase", "action", "reward"} <= set(first.decisions_[0])


@pytest.mark.parametrize("name", AGENTS)
def test_different_seed_different_decisions(name, noisy):
    first, other = noisy.fit(fast(name, seed=0)), noisy.fit(fast(name, seed=1))
    assert first.decisions_ != other.decisions_


@pytest.mark.parametrize("name", ALL)
def test_values_and_keep_probabilities(name, noisy):
    """The product leaves out the lowest-valued samples (``kept_mask`` on ``values_``)."""
    policy = noisy.fit(fast(name))
    n = len(noisy.y)
    assert policy.values_.shape == policy.keep_probabilities_.shape == (n,)
    assert np.all((policy.keep_probabilities_ >= 0) & (policy.keep_probabilities_ <= 1))
    if name == "none":
        assert np.all(policy.values_ == 1) and np.all(policy.keep_probabilities_ == 1)
        return
    keep = kept_mask(policy.values_, None, 0.25)
    assert (~keep).sum() == round(0.25 * n)
    assert policy.values_[keep].min() >= policy.values_[~keep].max()  # the lowest values go


def test_options_training_would_ignore_are_gone():
    with pytest.raises(ConfigError, match="has no option 'threshold'"):
        get_policy("small-loss", threshold=0.5)


def test_use_before_fit_and_bad_inputs(noisy):
    policy = get_policy("small-loss")
    with pytest.raises(NotFittedError, match="not fitted"):
        policy.update(0.0)
    with pytest.raises(ValueError, match="val_features or val_embeddings"):
        policy.fit(noisy.state, noisy.y, None, noisy.val_y, n_classes=noisy.n_classes)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        policy.fit(noisy.x, noisy.y, noisy.val_x, noisy.val_y, n_classes=3)


def test_plain_embeddings_call_style(noisy):
    """Without separate state features, the embeddings serve as state and inner-learner input alike."""
    policy = fast("q-learning").fit(noisy.x, noisy.y, noisy.val_x, noisy.val_y, n_classes=noisy.n_classes)
    assert policy.values_.shape == (len(noisy.y),)


@pytest.mark.parametrize("name", ALL)
def test_online_update_logs_a_decision(name, noisy):
    policy = noisy.fit(fast(name))
    before = len(policy.decisions_)
    if name == "reinforce":
        record = policy.update(0.05, policy.sample_mask())
    elif name in ("q-learning", "exp3"):
        bucket = policy.act()
        record = policy.update(0.05)
        assert record["action"]["bucket"] == bucket
        assert policy.bucket_weights(bucket).sum() == (policy.buckets_ == bucket).sum()
    else:
        record = policy.update(0.05)
    assert len(policy.decisions_) == before + 1 and record["phase"] == "online" and record["reward"] == 0.05
    assert policy.keep_probabilities_.shape == (len(noisy.y),)


@pytest.mark.parametrize("name", ALL)
def test_a_policy_starts_from_a_prior_where_no_inner_learner_exists(name):
    """Prompt-response pairs have no cheap inner learner: each policy starts from a prior value per pair and its
    state, keeps the prior's order (REINFORCE's estimator learns it from the state), and learns online from there."""
    rng = np.random.default_rng(0)
    state = rng.normal(size=(200, 6))
    prior = 1.0 / (1.0 + np.exp(-(2.0 * state[:, 0] - state[:, 1])))  # a function of the state, as a posterior is
    policy = get_policy(name, drop_fraction=0.3, seed=0).start_from(prior, state)
    assert policy.values_.shape == (200,) and policy.decisions_[0]["phase"] == "offline"
    order = np.corrcoef(np.argsort(np.argsort(policy.values_)), np.argsort(np.argsort(prior)))[0, 1]
    if name == "none":
        assert np.all(policy.values_ == 1)
    elif name == "random":
        assert abs(order) < 0.3
    else:
        assert order > (0.9 if name == "reinforce" else 0.999), order
    if name == "reinforce":
        drawn = policy.draw_selection(0.7)
        before = policy.values_.copy()
        policy.update(0.5, drawn)  # the drawn selection was rewarded: the pairs it kept gain value
        assert (
            policy.values_[drawn].mean() - before[drawn].mean() > policy.values_[~drawn].mean() - before[~drawn].mean()
        )
    elif name in AGENTS:
        bucket = policy.act()
        policy.update(0.5)
        if name == "exp3":
            assert policy.pulls_[bucket] == 1
        assert np.array_equal(np.argsort(policy.values_), np.argsort(prior))  # drops follow the prior
    with pytest.raises(ValueError, match="prior"):
        get_policy(name).start_from(np.zeros((3, 2)))
