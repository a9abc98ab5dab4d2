import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from autoft.data.loading import Example
from autoft.modeling.load import resolve_model_name
from autoft.tasks.classification import ClassificationAdapter


@pytest.fixture(scope="module")
def adapter():
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_name("default"))
    return ClassificationAdapter(["neg", "pos"], tokenizer, max_length=8)


def test_encode_truncates_and_maps_labels(adapter):
    features = adapter.encode([Example("a very long sentence " * 10, "pos"), Example("short", "neg")])
    assert len(features[0]["input_ids"]) == 8
    assert [f["labels"] for f in features] == [1, 0]


def test_collate_pads_dynamically_or_to_max_length(adapter):
    features = adapter.encode([Example("one two three", "pos"), Example("one", "neg")])
    assert adapter.collate(features)["input_ids"].shape == (2, 5)
    assert adapter.collate(features, pad_to=8)["input_ids"].shape == (2, 8)


def test_metrics_hand_computed(adapter):
    gold = [Example(t, l) for t, l in [("a", "pos"), ("b", "pos"), ("c", "neg"), ("d", "neg")]]
    metrics = adapter.metrics(gold, ["pos", "neg", "neg", "neg"])
    assert metrics["accuracy"] == 0.75
    # pos: P=1, R=.5, F=2/3; neg: P=2/3, R=1, F=.8
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert metrics["report"]["pos"]["recall"] == 0.5


def test_per_sample_loss_is_cross_entropy(adapter):
    logits = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    losses, units = adapter.per_sample_loss(logits, torch.tensor([1, 0]))
    assert losses.tolist() == pytest.approx([np.log(2), np.log(1 + np.exp(-2))], rel=1e-5)
    assert units.tolist() == [1, 1]


def test_forward_corrected_loss(adapter):
    logits = torch.tensor([[0.0, 0.0], [2.0, 0.0], [-1.0, 3.0]])
    labels = torch.tensor([1, 0, 0])
    plain, _ = adapter.per_sample_loss(logits, labels)
    same, _ = adapter.per_sample_loss(logits, labels, torch.eye(2))
    assert same.tolist() == pytest.approx(plain.tolist(), rel=1e-5)
    # Labels swapped for every sample: the given label's loss is the other class's plain loss.
    swapped, _ = adapter.per_sample_loss(logits, labels, torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    other, _ = adapter.per_sample_loss(logits, 1 - labels)
    assert swapped.tolist() == pytest.approx(other.tolist(), rel=1e-5)
    # Half the labels of class 0 given as 1: P(given 1) = p0 / 2 + p1.
    half, _ = adapter.per_sample_loss(logits, torch.tensor([1, 1, 1]), torch.tensor([[0.5, 0.5], [0.0, 1.0]]))
    p = torch.softmax(logits, -1)
    assert half.tolist() == pytest.approx((-torch.log(p[:, 0] / 2 + p[:, 1])).tolist(), rel=1e-5)


def test_label_margin(adapter):
    (feature,) = adapter.encode([Example("fine", "pos")])
    assert adapter.label_margin(np.array([0.8, 0.2]), feature) == pytest.approx(-0.6)
