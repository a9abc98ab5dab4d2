import numpy as np
import pytest
import torch

from autoft.data.loading import Example
from autoft.modeling.load import load_model, load_tokenizer
from autoft.tasks.classification import ClassificationAdapter
from autoft.training.batching import LengthGroupedBatchSampler
from autoft.training.evaluation import evaluate
from autoft.training.lr_search import choose_rate, range_test, smooth, valley
from autoft.training.optimizer import make_optimizer
from tests.conftest import synthetic_rows

LABELS = ["food", "sport", "tech"]


def test_valley_picks_the_falling_stretch():
    flat, falling, rising = [2.0] * 10, list(np.linspace(2.0, 0.5, 12)), list(np.linspace(0.6, 3.0, 6))
    start, end, pick = valley(flat + falling + rising)
    assert 9 <= start <= 11 and end == 21
    assert start < pick < end


def test_choose_rate_keeps_to_the_bounds():
    rates = list(np.geomspace(1e-5, 1e-1, 30))
    curve = [2.0] * 10 + list(np.linspace(2.0, 0.5, 15)) + [3.0] * 5
    free, rule, span = choose_rate(rates, curve, (1e-9, 1.0))
    assert rule == "valley" and span[0] < free < span[1]
    assert choose_rate(rates, curve, (1e-6, free / 10))[0] == pytest.approx(free / 10)
    assert choose_rate(rates, curve, (free * 10, 1.0))[0] == pytest.approx(free * 10)
    assert choose_rate(rates, [1.0] * 30, (1e-4, 1e-2))[0] == pytest.approx(1e-3)  # no curve: the middle
    assert smooth([1.0, 1.0, 1.0], 0.9) == pytest.approx([1.0, 1.0, 1.0])


@pytest.fixture()
def tiny(tiny_model_dir):
    adapter = ClassificationAdapter(LABELS, load_tokenizer(str(tiny_model_dir)), max_length=32)
    train = adapter.encode([Example(t, label) for t, label in synthetic_rows(300, 0)])
    validation_examples = [Example(t, label) for t, label in synthetic_rows(60, 1)]

    def fresh():
        torch.manual_seed(0)
        return load_model(str(tiny_model_dir), ClassificationAdapter.auto_model_class(), LABELS)

    return adapter, train, validation_examples, adapter.encode(validation_examples), fresh


def validation_loss_after(rate, tiny, steps=40):
    """Validation loss of the tiny model after ``steps`` AdamW steps at a fixed ``rate``: the ground truth."""
    adapter, train, validation, validation_features, fresh = tiny
    model, rng = fresh(), np.random.default_rng(0)
    optimizer = make_optimizer(model, 0.01, rate)
    model.train()
    for _ in range(steps):
        batch = adapter.collate_indexed(
            [dict(train[i], index=int(i)) for i in rng.choice(len(train), 16, replace=False)]
        )
        batch.pop("index")
        labels = batch.pop("labels")
        losses, units = adapter.per_sample_loss(model(**batch).logits, labels)
        (losses.sum() / units.sum()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
    return evaluate(model, adapter, validation, validation_features, batch_size=64)["loss"]


def test_range_test_finds_the_band_a_fixed_rate_sweep_finds_and_leaves_the_model_as_it_was(tiny):
    adapter, train, _, _, fresh = tiny
    sweep = {rate: validation_loss_after(rate, tiny) for rate in (1e-5, 1e-3, 3e-3, 1e-2, 1e-1)}
    best = min(sweep, key=sweep.get)
    assert sweep[best] < 0.5 * sweep[1e-5]  # the toy task is learnable, and slow rates do not learn it in 40 steps

    model = fresh()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    search = range_test(
        model,
        adapter,
        train,
        lambda m: make_optimizer(m, 0.01, 1e-5),
        batch_size=16,
        steps=40,
        min_lr=1e-5,
        max_lr=1.0,
        bounds=(1e-9, 10.0),
        shuffles=2,
    )
    assert best / 4 <= search.chosen <= best * 4, (search.chosen, sweep)
    assert search.rule == "valley of the mean curve of 2 shuffles"
    assert search.diverged_at is not None and search.diverged_at > search.chosen
    assert len(search.learning_rates) == len(search.losses) == len(search.smoothed) < 40
    # The curve is the step-by-step mean of two passes over different shuffles, each from the same weights.
    first, second = search.shuffle_losses
    assert first[0] == pytest.approx(second[0], rel=0.5) and first[:5] != second[:5]
    n = len(search.losses)
    assert search.losses == pytest.approx([(a + b) / 2 for a, b in zip(first[:n], second[:n])])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())

    clipped = range_test(
        fresh(),
        adapter,
        train,
        lambda m: make_optimizer(m, 0.01, 1e-5),
        batch_size=16,
        steps=40,
        min_lr=1e-5,
        max_lr=1.0,
        bounds=(1e-5, 5e-4),
    )
    assert clipped.chosen == pytest.approx(5e-4) and "upper bound" in clipped.rule


def test_a_curve_that_only_diverges_falls_back_to_the_middle_of_the_bounds(tiny):
    adapter, train, _, _, fresh = tiny
    search = range_test(
        fresh(),
        adapter,
        train,
        lambda m: make_optimizer(m, 0.01, 1e-5),
        batch_size=16,
        steps=12,
        min_lr=10.0,
        max_lr=1000.0,
        bounds=(1e-5, 1e-3),
    )
    assert search.diverged_at is not None and search.chosen == pytest.approx(1e-4)
    assert search.rule.startswith("no ")


def test_the_range_test_shows_a_bar_when_asked_and_counts_the_tokens_it_drew(tiny, capsys):
    adapter, train, _, _, fresh = tiny
    model = fresh()
    shown = range_test(
        model,
        adapter,
        train,
        lambda m: make_optimizer(m, 0.01, 1e-5),
        batch_size=8,
        steps=6,
        min_lr=1e-5,
        max_lr=1e-4,
        progress=True,
    )
    assert "lr range test" in capsys.readouterr().err
    hidden = range_test(
        model, adapter, train, lambda m: make_optimizer(m, 0.01, 1e-5), batch_size=8, steps=6, min_lr=1e-5, max_lr=1e-4
    )
    assert capsys.readouterr().err == ""
    # Six batches of eight, the first six the training sampler draws with seed 0: their unpadded tokens.
    lengths = [len(f["input_ids"]) for f in train]
    sampler = LengthGroupedBatchSampler(lengths, 8, seed=0)
    sampler.set_epoch(1)
    drawn = [i for batch in list(sampler)[:6] for i in batch]
    assert shown.samples == hidden.samples == 48 and shown.diverged_at is None
    assert shown.tokens == hidden.tokens == sum(lengths[i] for i in drawn)
    assert shown.losses == pytest.approx(hidden.losses)  # the bar changes nothing
