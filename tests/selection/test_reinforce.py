import numpy as np
import pytest
import torch

from autoft.selection import get_policy
from autoft.selection.policies._mlp import ValueEstimator
from autoft.selection.policies.reinforce import reinforce_gradient, shifted_probabilities


@pytest.mark.parametrize("bias", [0.0, 4.0, -4.0])  # regulariser off, above 1 - epsilon, below epsilon
def test_hand_written_backward_matches_torch_autograd(bias):
    rng = np.random.default_rng(0)
    estimator = ValueEstimator.create(7, 5, rng)
    estimator.params[-1] += bias
    x = rng.normal(size=(9, 7))
    logits, cache = estimator.logits(x)
    probs = 1 / (1 + np.exp(-logits))
    selections = (rng.random((3, 9)) < 0.5).astype(float)
    advantages = np.array([0.3, -0.2, 0.5])
    ours = estimator.gradients(reinforce_gradient(probs, selections, advantages, epsilon=0.1, regularizer=2.0), cache)

    params = [torch.tensor(p, requires_grad=True) for p in estimator.params]
    w1, b1, w2, b2, w3, b3 = params
    h = torch.relu(torch.relu(torch.tensor(x) @ w1 + b1) @ w2 + b2)
    p = torch.sigmoid((h @ w3 + b3)[:, 0])
    s, a = torch.tensor(selections), torch.tensor(advantages)
    log_pi = (s * p.log() + (1 - s) * (1 - p).log()).sum(1)
    mean = p.mean()
    loss = -(a * log_pi).mean() + 2.0 * (torch.relu(mean - 0.9) + torch.relu(0.1 - mean))
    loss.backward()
    for mine, theirs in zip(ours, params):
        np.testing.assert_allclose(mine, theirs.grad.numpy(), rtol=1e-6, atol=1e-10)


def test_keep_rate_regulariser_pulls_the_mean_back():
    probs = np.full(4, 0.99)
    grad = reinforce_gradient(probs, np.ones((1, 4)), np.zeros(1), epsilon=0.1, regularizer=1.0)
    assert np.all(grad > 0)  # descending the loss lowers the logits: the mean keep-probability falls


def test_online_reinforce_moves_keep_probabilities_toward_rewarded_selection(noisy):
    policy = noisy.fit(get_policy("reinforce", iterations=20, seed=0))
    mask = np.zeros(len(noisy.y), dtype=bool)
    mask[: len(mask) // 2] = True
    before = policy.keep_probabilities_.copy()
    for _ in range(5):
        policy.update(1.0, mask)  # this selection earned a large gain
    after = policy.keep_probabilities_
    assert (after - before)[mask].mean() > (after - before)[~mask].mean()


def test_shifted_probabilities_keep_the_order_at_the_keep_rate_of_each_group():
    rng = np.random.default_rng(0)
    probs = rng.uniform(0.05, 0.95, 40)
    groups = [np.arange(0, 10), np.arange(10, 40)]
    shifted = shifted_probabilities(probs, 0.7, groups)
    for rows in groups:
        assert shifted[rows].mean() == pytest.approx(0.7, abs=1e-8)
        assert np.array_equal(np.argsort(shifted[rows]), np.argsort(probs[rows]))  # one shift per group
    assert shifted_probabilities(probs, 0.25).mean() == pytest.approx(0.25, abs=1e-8)
    np.testing.assert_array_equal(shifted_probabilities(probs, 1.0), np.ones(40))
    with pytest.raises(ValueError, match="keep_rate"):
        shifted_probabilities(probs, 1.5)


def test_the_policy_gradient_is_taken_at_the_probabilities_drawn_with():
    probs, drawn = np.array([0.9, 0.9]), np.array([0.5, 0.5])
    selection = np.array([[1.0, 0.0]])
    grad = reinforce_gradient(probs, selection, np.ones(1), epsilon=0.0, regularizer=0.0, drawn=drawn)
    np.testing.assert_allclose(grad, -(selection[0] - drawn))  # s - p with the draw's p, not the estimator's


def test_draw_selection_then_update_uses_the_draw_once(noisy):
    policy = noisy.fit(get_policy("reinforce", iterations=5, seed=0))
    mask = policy.draw_selection(0.6)
    assert policy.drawn_probabilities_.mean() == pytest.approx(0.6, abs=1e-8)
    assert abs(mask.mean() - 0.6) < 0.1
    policy.update(0.2, mask)
    assert policy.drawn_probabilities_ is None
