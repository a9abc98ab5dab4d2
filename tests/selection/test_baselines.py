import numpy as np
import pytest

from autoft.selection import get_policy
from autoft.selection.keeping import kept_mask


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.3, 0.5])
def test_random_drops_exactly_the_requested_fraction(fraction, noisy):
    policy = noisy.fit(get_policy("random", drop_fraction=fraction, seed=4))
    n = len(noisy.y)
    assert (~kept_mask(policy.values_, None, fraction)).sum() == round(fraction * n)
    np.testing.assert_allclose(policy.keep_probabilities_, 1 - fraction)


def test_random_drops_differ_by_seed(noisy):
    a = kept_mask(noisy.fit(get_policy("random", seed=0)).values_, None, 0.3)
    b = kept_mask(noisy.fit(get_policy("random", seed=1)).values_, None, 0.3)
    assert not np.array_equal(a, b)


def test_none_keeps_everything(noisy):
    policy = noisy.fit(get_policy("none"))
    assert np.all(policy.values_ == 1)
    assert np.all(policy.keep_probabilities_ == 1)


def test_small_loss_drops_the_flipped_labels_first(noisy):
    dropped = ~kept_mask(noisy.fit(get_policy("small-loss")).values_, None, 0.3)
    assert noisy.bad[dropped].mean() > 0.8  # 32% of all labels are flipped


def test_suspicion_ranks_systematic_flips_above_the_noisy_probes():
    """Each class's flips go to one other class: probes fitted on the given labels learn part of the flip
    as the truth; the suspicion ranking (noise posterior, validation probe, neighbours) sees more of it."""
    from sklearn.metrics import roc_auc_score

    from tests.selection.synthetic import asymmetric_clusters

    gains = []
    for seed in (0, 1):
        problem = asymmetric_clusters(seed=seed, flip=0.45, separation=0.5)
        auroc = {
            name: roc_auc_score(problem.bad, -problem.fit(get_policy(name)).values_)
            for name in ("small-loss", "suspicion")
        }
        assert auroc["suspicion"] > 0.75
        gains.append(auroc["suspicion"] - auroc["small-loss"])
    assert np.mean(gains) > 0.02
