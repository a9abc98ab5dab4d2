"""Per-sample rewards from the validation gradient (selection.alignment) and the policy that learns from them."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import autoft
from autoft.data.loading import Example
from autoft.selection.alignment import AlignmentRewards
from autoft.selection.policies import get_policy
from autoft.training.callbacks import StepOutput, TrainState
from tests.conftest import synthetic_rows, tiny_config, write_csv


class _Head(torch.nn.Module):
    """A model whose output layer is one linear map of a 2-d input (what the hook reads)."""

    def __init__(self) -> None:
        super().__init__()
        self.config = SimpleNamespace(num_labels=2)
        self.out = torch.nn.Linear(2, 2)
        with torch.no_grad():  # a head that already leans the right way, as after a first epoch
            self.out.weight.copy_(torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
            self.out.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(x)


def _points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    centres = np.array([[1.0, 0.0], [0.0, 1.0]])
    return (centres[labels] + 0.3 * rng.standard_normal((n, 2))).astype(np.float32), labels


def test_a_wrong_label_pulls_against_the_validation_gradient_and_its_value_falls():
    model = _Head()
    val_x, val_y = _points(64, 1)
    examples = [Example(text=str(i), label="ab"[y]) for i, y in enumerate(val_y)]

    def predict(features):
        model.eval()
        with torch.no_grad():
            x = torch.as_tensor(np.stack([f["x"] for f in features]))
            return list(torch.softmax(model(x), -1).numpy())

    def encode(rows):  # (one length: the loop's passes keep their order)
        return [{"input_ids": [0], "x": val_x[int(e.text)]} for e in rows]

    policy = get_policy("alignment").start_from(np.full(40, 0.5))
    rewards = AlignmentRewards(policy, examples, {"a": 0, "b": 1}, every=5, batch=64)
    state = TrainState(n_samples=40, model=model, encode=encode, predict=lambda f: predict(f))
    rewards.on_train_begin(state)
    rewards.on_epoch_begin(state)
    x, y = _points(40, 2)
    given = y.copy()
    wrong = np.arange(40) % 4 == 0  # a quarter of the training labels flipped
    given[wrong] = 1 - given[wrong]
    for step, batch in enumerate(np.array_split(np.arange(40), 5), 1):
        model.train()
        logits = model(torch.as_tensor(x[batch]))
        labels = torch.as_tensor(given[batch])
        output = StepOutput(batch, torch.zeros(len(batch)), logits.detach(), labels)
        state.step = step
        rewards.on_step_end(state, output)
    rewards.on_train_end(state)
    mean = policy.reward_sum_ / np.maximum(policy.reward_count_, 1)
    assert rewards.rewards_given == 40 and (policy.reward_count_ == 1).all()
    assert mean[wrong].max() < 0 < mean[~wrong].min()  # every flipped row pulls against the clean labels
    assert policy.values_[wrong].max() < policy.values_[~wrong].min()  # and sinks below every clean one
    assert model.out._forward_hooks == {}  # the hook is gone after training


def test_the_policy_keeps_its_prior_for_rows_never_rewarded_and_checks_its_inputs():
    policy = get_policy("alignment", prior_weight=0.0).start_from(np.array([0.9, 0.1, 0.5, 0.7]))
    np.testing.assert_allclose(policy.values_, [0.9, 0.1, 0.5, 0.7])
    policy.update_samples(np.array([0, 1, 1]), np.array([-1.0, 2.0, 2.0]))
    assert policy.values_[1] > policy.values_[0]  # rewarded rows rank by reward alone at prior_weight 0
    assert policy.values_[2] == pytest.approx(0.5) and policy.values_[3] == pytest.approx(0.75)  # their prior's rank
    with pytest.raises(ValueError, match="2 rows but 1 rewards"):
        policy.update_samples(np.array([0, 1]), np.array([1.0]))
    with pytest.raises(autoft.errors.ConfigError, match="prior_weight"):
        get_policy("alignment", prior_weight=2.0)


def test_a_run_with_the_alignment_policy_rewards_every_trained_row(tiny_model_dir, tmp_path):
    rows = synthetic_rows(90, 0)
    noisy = [(text, "sport" if i % 5 == 0 and label != "sport" else label) for i, (text, label) in enumerate(rows)]
    files = {
        "train": write_csv(tmp_path / "train.csv", noisy),
        "validation": write_csv(tmp_path / "val.csv", synthetic_rows(40, 1)),
    }
    config = tiny_config(tiny_model_dir, files, tmp_path / "run", epochs=3, learning_rate=2e-3)
    config["selection"] = {"policy": "alignment", "drop_fraction": 0.1, "update_every": 4}
    autoft.train(config)
    records = [json.loads(line) for line in (tmp_path / "run" / "decisions.jsonl").read_text().splitlines()]
    updates = [r["policy_update"] for r in records if r.get("event") == "reward" and r.get("policy_update")]
    assert updates and updates[-1]["rewards"] >= 2 * 90 * 0.9  # (two epochs of the kept rows, at least)
    assert updates[-1]["rows_rewarded"] >= 0.9 * 90


def test_rewards_rank_rows_within_their_class_so_a_class_wide_pull_moves_no_class():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((20, 3)), np.repeat([0, 1], 10)
    policy = get_policy("alignment", prior_weight=0.0).fit(x, y, x[:6], y[:6], n_classes=2)
    spread = 0.01 * np.arange(10)
    policy.update_samples(np.arange(20), np.concatenate([5.0 + spread, -5.0 + spread]))  # class 1 all pulled down
    np.testing.assert_allclose(policy.values_[:10], policy.values_[10:])  # the same order inside each class
