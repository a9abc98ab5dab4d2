import math

import numpy as np
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
    from autoft.training.optimizer import make_optimizer
    from autoft.training.plan import resolve
    from tests.conftest import synthetic_rows

    adapter = ClassificationAdapter(["food", "sport", "tech"], load_tokenizer(str(tiny_model_dir)), max_length=32)
    features = adapter.encode([Example(t, label) for t, label in synthetic_rows(160, 0)])
    torch.manual_seed(0)
    model = load_model(str(tiny_model_dir), adapter.auto_model_class(), adapter.labels)
    return resolve(
        TrainingConfig(batch_size=16, **training),
        model=model,
        adapter=adapter,
        train_features=features,
        make_optimizer=lambda m: make_optimizer(m, 0.01, 1e-5),
        device=torch.device("cpu"),
    )


def test_the_range_test_costs_at_most_a_fifth_of_a_small_plan_and_is_untouched_on_a_big_one():
    from autoft.training.plan import MAX_SEARCH_SHARE, search_budget

    assert MAX_SEARCH_SHARE == 0.2
    # 3,000 rows, 5 epochs: 24 steps x 32 samples are 768 of 15,000 (5%), the test as it always was.
    big = search_budget([20] * 3000, [20] * 3000, epochs=5, batch_size=32)
    assert (big.steps, big.batch_size, big.skipped) == (24, 32, False)
    assert big.share == big.unbound_share == pytest.approx(768 / 15000, abs=1e-4) and big.planned_tokens == 300_000
    # 300 questions, 9 epochs: 768 of 2,700 samples (28%); batches of 22 keep the 24 steps (528 samples, 19.6%).
    qa = search_budget([300] * 300, [300] * 300, epochs=9, batch_size=32)
    assert (qa.steps, qa.batch_size) == (24, 22) and qa.unbound_share == pytest.approx(768 / 2700, abs=1e-4)
    assert qa.share == pytest.approx(528 / 2700, abs=1e-4) and "batches cut from 32" in qa.how
    # 60 rows x 10 epochs: 120 samples allowed, 24 steps of 5.
    few = search_budget([30] * 60, [30] * 60, epochs=10, batch_size=32)
    assert (few.steps, few.batch_size, few.skipped) == (24, 5, False) and few.share == pytest.approx(0.2)
    # 40 pairs x 7 epochs, batch 8 (generation): 56 samples allowed, under 24 x 4: no test.
    tiny = search_budget([250] * 40, [250] * 40, epochs=7, batch_size=8)
    assert tiny.skipped and (tiny.steps, tiny.batch_size, tiny.share) == (0, 0, 0.0)
    assert tiny.unbound_share == pytest.approx(192 / 280, abs=1e-4)
    assert tiny.how == "skipped: even 24 steps x 4 samples would cost 34% of the planned training, over 20%"
    # Tokens count, not rows: rows twice as long as training's, or two processes each running it, halve the batch.
    assert search_budget([600] * 300, [300] * 300, epochs=9, batch_size=32).batch_size == 11
    assert search_budget([300] * 300, [300] * 300, epochs=9, batch_size=32, processes=2).batch_size == 11
    for n in (10, 40, 100, 300, 1000, 5000):
        for epochs in (1, 3, 8, 30):
            for batch in (2, 8, 32, 128):
                budget = search_budget([50] * n, [50] * n, epochs=epochs, batch_size=batch)
                assert budget.share <= MAX_SEARCH_SHARE and (budget.skipped or budget.steps == 24)
                assert budget.skipped == (budget.unbound_share * min(4, batch) / batch > MAX_SEARCH_SHARE)
                if budget.unbound_share <= MAX_SEARCH_SHARE:
                    assert (budget.steps, budget.batch_size, budget.share) == (24, batch, budget.unbound_share)


@pytest.mark.parametrize(
    ("rows", "epochs"),
    [
        # The defaults benchmark's rows (benchmarks/results/defaults.json: CPU, batch 32): rows, planned epochs.
        (500, 8),  # TweetEval 500: 768 of 4,000 samples (19.2%), the most
        (1500, 6),  # TweetEval 1,500: 8.5%
        (3257, 5),  # TweetEval full: 4.7%
        (500, 13),  # BANKING77 500: 11.8%
        (1500, 10),  # BANKING77 1,500: 5.1%
        (9003, 6),  # BANKING77 full: 1.4%
        (500, 11),  # BTC 500: 14.0%
        (1500, 9),  # BTC 1,500: 5.7%
    ],
)
def test_the_bound_leaves_the_defaults_benchmark_rows_as_they_were_measured(rows, epochs):
    from autoft.training.plan import search_budget

    lengths = [int(x) for x in np.random.default_rng(rows).integers(10, 60, rows)]  # the test draws the same rows
    budget = search_budget(lengths, lengths, epochs=epochs, batch_size=32)
    assert (budget.steps, budget.batch_size, budget.skipped) == (24, 32, False)
    assert budget.share == budget.unbound_share == pytest.approx(768 / (rows * epochs), abs=1e-4)
    # A bound of a tenth would cut the 500-row tests (and chose other rates on two of them: plan.py's docstring).
    assert search_budget(lengths, lengths, epochs=epochs, batch_size=32, max_share=0.1).batch_size == (
        32 if rows > 500 else int(0.1 * rows * epochs / 24)
    )


def test_a_plan_too_small_for_the_range_test_starts_from_the_prior_rate(tiny_model_dir):
    plan = _resolved(tiny_model_dir, epochs=2)  # 320 samples in all: 64 for the test, under 24 steps x 4
    record = plan.to_dict()
    assert plan.lr_search is None and record["lr_search"] is None and record["lr_search_budget"]["skipped"]
    assert plan.config.learning_rate == plan.config.head_learning_rate == 2e-4
    assert "the prior rate of full fine-tuning (0.0002); no range test: skipped" in plan.choices["learning_rate"]["how"]
    assert plan.choices["head_learning_rate"]["how"] == "the prior rate"
    lora = _resolved(tiny_model_dir, epochs=2, peft="lora")
    assert lora.config.learning_rate == lora.config.head_learning_rate == 1.1e-3


def test_a_small_plan_runs_a_cheaper_test_and_records_what_the_bound_did(tiny_model_dir, capsys):
    import json

    bound = _resolved(tiny_model_dir, epochs=3)  # 480 samples: 96 for the test, 24 steps of four
    budget, search = bound.to_dict()["lr_search_budget"], bound.lr_search
    assert set(budget) == {
        "steps",
        "batch_size",
        "tokens_per_sample",
        "planned_tokens",
        "share",
        "unbound_share",
        "max_share",
        "skipped",
        "how",
    }
    assert (budget["steps"], budget["batch_size"], budget["skipped"], budget["max_share"]) == (24, 4, False, 0.2)
    assert search.batch_size == 4 and search.samples <= 96 and len(search.losses) <= 24
    estimate = 96 * budget["tokens_per_sample"]
    assert budget["share"] == pytest.approx(estimate / budget["planned_tokens"], rel=1e-3) and budget["share"] <= 0.2
    assert budget["planned_tokens"] == pytest.approx(3 * 160 * budget["tokens_per_sample"], rel=1e-3)
    assert search.tokens == pytest.approx(estimate, rel=0.25)  # the tokens it drew: about what was estimated
    assert budget["unbound_share"] == pytest.approx(384 / 480)
    assert "24 steps x 4 samples (batches cut from 16): 20.0%" in bound.choices["learning_rate"]["how"]
    json.dumps(bound.to_dict())  # training_plan.json
    capsys.readouterr()
    # The bar follows training.progress (--no-progress sets it false): shown on stderr, or not at all.
    _resolved(tiny_model_dir, epochs=10, progress=True)
    assert "lr range test" in capsys.readouterr().err
    cut = _resolved(tiny_model_dir, epochs=10, progress=False)
    assert "lr range test" not in capsys.readouterr().err
    # 1,600 samples: 320 for the test, 24 steps of 13; a long plan leaves it as it was (24 x 16).
    assert (cut.search_budget.steps, cut.search_budget.batch_size) == (24, 13)
    long = _resolved(tiny_model_dir, epochs=40)
    assert (long.search_budget.steps, long.search_budget.batch_size, long.lr_search.samples) == (24, 16, 384)


def test_a_long_plan_holds_the_pretrained_weights_under_the_ceiling_and_the_head_keeps_the_searched_rate(
    tiny_model_dir, monkeypatch
):
    from autoft.training import plan

    monkeypatch.setattr(plan, "MAX_SEARCH_SHARE", math.inf)  # one epoch of 160 rows: no bound on the test's cost
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
    from autoft.training.optimizer import make_optimizer

    model = load_model(str(tiny_model_dir), ClassificationAdapter.auto_model_class(), ["a", "b"])
    head = {id(p) for p in model.classifier.parameters()}
    optimizer = make_optimizer(model, 0.01, 1e-4, 1e-3)
    rates = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert {rates[i] for i in head} == {1e-3} and {r for i, r in rates.items() if i not in head} == {1e-4}
    assert len(rates) == sum(p.requires_grad for p in model.parameters())
    assert {g["weight_decay"] for g in optimizer.param_groups} == {0.0, 0.01}
    assert (
        len(make_optimizer(model, 0.01, 1e-4, 1e-4).param_groups)
        == len(make_optimizer(model, 0.01, 1e-4).param_groups)
        == 2
    )
