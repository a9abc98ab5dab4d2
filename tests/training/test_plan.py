import math

import pytest
import torch

from autoft.tasks.classification import ClassificationAdapter
from autoft.tasks.ner import TokenClassificationAdapter
from autoft.training.plan import MAX_EPOCHS, auto_batch_size, auto_patience, plan_epochs


def test_epoch_budget_grows_slower_than_the_data_so_small_data_gets_more_passes():
    planned = {n: plan_epochs(n) for n in (100, 500, 3_000, 10_000, 100_000, 1_000_000)}
    assert planned == {100: 11, 500: 8, 3_000: 5, 10_000: 4, 100_000: 2, 1_000_000: 1}
    samples = [n * e for n, e in planned.items()]
    assert samples == sorted(samples)  # more data: more samples trained on in all, in fewer passes
    assert plan_epochs(500, 2.0) == 15 and plan_epochs(10, 10.0) == MAX_EPOCHS
    assert [auto_patience(e) for e in (3, 12, 13, 20)] == [2, 2, 3, 3]


def test_tasks_that_need_longer_train_longer(tiny_model_dir):
    from autoft.modeling.load import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model_dir))
    four = ClassificationAdapter(list("abcd"), tokenizer, max_length=32).training_scale()
    two = ClassificationAdapter(list("ab"), tokenizer, max_length=32).training_scale()
    many = ClassificationAdapter([f"intent{i}" for i in range(77)], tokenizer, max_length=32).training_scale()
    ner = TokenClassificationAdapter(["O", "B-PER", "I-PER"], tokenizer, max_length=32).training_scale()
    assert two == four == 1.0 < ner < many and 1.7 < many < 1.75


def test_batch_size_on_cpu_is_the_tasks_cpu_default():
    from autoft.tasks.classification import ClassificationAdapter
    from autoft.tasks.generation import CausalGenerationAdapter

    for adapter, expected in ((ClassificationAdapter, 32), (CausalGenerationAdapter, 8)):
        size, how = auto_batch_size(torch.nn.Linear(2, 2), adapter, [{"input_ids": [1, 2]}], device=torch.device("cpu"))
        assert size == expected and "cpu" in how and adapter.name in how


def test_batch_size_on_a_gpu_is_the_largest_that_fits(monkeypatch):
    from autoft.training import plan

    tried = []

    def fits(model, adapter, feature, batch_size, device):
        tried.append(batch_size)
        return batch_size <= 64  # a card with room for 64 of the longest sample

    monkeypatch.setattr(plan, "_fits", fits)
    features = [{"input_ids": [1] * n} for n in range(1, 3001)]
    assert auto_batch_size(None, None, features, device=torch.device("cuda"))[0] == 64 and tried == [128, 64]
    tried.clear()  # 600 samples: at most 37 a batch, so an epoch still has 16 steps
    assert auto_batch_size(None, None, features[:600], device=torch.device("cuda"))[0] == 32 and tried == [32]


def test_the_probe_runs_a_real_forward_and_backward_pass(tiny_model_dir):
    from autoft.data.loading import Example
    from autoft.modeling.load import load_model, load_tokenizer
    from autoft.training.plan import _fits

    adapter = TokenClassificationAdapter(["O", "B-PER"], load_tokenizer(str(tiny_model_dir)), max_length=32)
    model = load_model(str(tiny_model_dir), adapter.auto_model_class(), adapter.labels)
    (feature,) = adapter.encode([Example(["Alice", "sings"], ["B-PER", "O"])])
    assert _fits(model, adapter, feature, 4, torch.device("cpu"))
    assert all(p.grad is None for p in model.parameters())


def test_the_ceiling_on_the_rate_falls_with_the_planned_steps_and_stretches_with_the_task(tiny_model_dir):
    from autoft.config import TrainingConfig
    from autoft.modeling.load import load_tokenizer
    from autoft.tasks.generation import CausalGenerationAdapter
    from autoft.training.plan import horizon_ceiling

    tokenizer = load_tokenizer(str(tiny_model_dir))
    four = ClassificationAdapter(list("abcd"), tokenizer, max_length=32)
    many = ClassificationAdapter([f"intent{i}" for i in range(77)], tokenizer, max_length=32)
    full = TrainingConfig()
    assert horizon_ceiling(four, full, 100) == pytest.approx(2.5e-4)
    assert horizon_ceiling(four, full, 400) == pytest.approx(1.25e-4)  # four times the steps: half the rate
    assert horizon_ceiling(many, full, 400) == pytest.approx(1.25e-4 * many.training_scale() ** 2)
    assert horizon_ceiling(four, TrainingConfig(peft="lora"), 400) == math.inf
    assert horizon_ceiling(CausalGenerationAdapter(["text"], tokenizer), full, 400) == math.inf


def _resolved(tiny_model_dir, **training):
    from autoft.config import TrainingConfig
    from autoft.data.loading import Example
    from autoft.modeling.load import load_model, load_tokenizer
    from autoft.training.loop import _optimizer
    from autoft.training.plan import resolve
    from tests.conftest import synthetic_rows

    adapter = ClassificationAdapter(["food", "sport", "tech"], load_tokenizer(str(tiny_model_dir)), max_length=32)
    features = adapter.encode([Example(t, label) for t, label in synthetic_rows(160, 0)])
    torch.manual_seed(0)
    model = load_model(str(tiny_model_dir), adapter.auto_model_class(), adapter.labels)
    return resolve(TrainingConfig(batch_size=16, **training), model=model, adapter=adapter, train_features=features,
                   make_optimizer=lambda m: _optimizer(m, 0.01, 1e-5), device=torch.device("cpu"))


def test_a_long_plan_holds_the_pretrained_weights_under_the_ceiling_and_the_head_keeps_the_searched_rate(
        tiny_model_dir):
    short, long = _resolved(tiny_model_dir, epochs=1), _resolved(tiny_model_dir, epochs=400)
    searched = long.lr_search.chosen
    assert short.lr_search.chosen == searched  # the same test: the plan's length changes what is done with it
    # 400 epochs of 10 steps: a ceiling of 2.5e-3 / sqrt(4000), far under anything the test picks in its band.
    assert long.config.learning_rate == pytest.approx(2.5e-3 / math.sqrt(4000))
    assert long.config.learning_rate < searched
    assert long.config.head_learning_rate == searched
    assert "held at 0.0025 x 1.00^2 / sqrt(4000 planned steps)" in long.choices["learning_rate"]["how"]
    # One epoch of 10 steps: a ceiling of 2.5e-3 / sqrt(10), over the band's top (5e-4): the test's rate stands.
    assert short.config.learning_rate == short.config.head_learning_rate == searched
    fixed = _resolved(tiny_model_dir, epochs=400, learning_rate=3e-4)
    assert fixed.lr_search is None and fixed.config.learning_rate == fixed.config.head_learning_rate == 3e-4
    assert _resolved(tiny_model_dir, epochs=400, head_learning_rate=1e-3).config.head_learning_rate == 1e-3


def test_the_head_trains_at_its_own_rate_in_the_optimiser(tiny_model_dir):
    from autoft.modeling.load import load_model
    from autoft.training.loop import _optimizer

    model = load_model(str(tiny_model_dir), ClassificationAdapter.auto_model_class(), ["a", "b"])
    head = {id(p) for p in model.classifier.parameters()}
    optimizer = _optimizer(model, 0.01, 1e-4, 1e-3)
    rates = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert {rates[i] for i in head} == {1e-3} and {r for i, r in rates.items() if i not in head} == {1e-4}
    assert len(rates) == sum(p.requires_grad for p in model.parameters())
    assert {g["weight_decay"] for g in optimizer.param_groups} == {0.0, 0.01}
    assert len(_optimizer(model, 0.01, 1e-4, 1e-4).param_groups) == len(_optimizer(model, 0.01, 1e-4).param_groups) == 2
