"""The noise-rate estimator on synthetic clusters whose noise is known."""

import csv

import numpy as np
import pytest

from autoft.selection.noise import estimate_noise, fit_calibration, fit_transition
from autoft.selection.state import cross_fitted_probabilities


def _clusters(
    seed: int,
    flip: float,
    *,
    n: int = 1200,
    n_val: int = 200,
    dims: int = 24,
    n_classes: int = 4,
    kind: str = "symmetric",
    only_class: int | None = None,
    separation: float = 1.0,
):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_classes, dims)) * separation / np.sqrt(2)
    y_true = rng.integers(n_classes, size=n)
    x = centers[y_true] + rng.normal(size=(n, dims))
    val_y = rng.integers(n_classes, size=n_val)
    val_x = centers[val_y] + rng.normal(size=(n_val, dims))
    flipped = rng.random(n) < flip
    if only_class is not None:
        flipped &= y_true == only_class
    y = y_true.copy()
    if kind == "symmetric":
        y[flipped] = (y_true[flipped] + rng.integers(1, n_classes, size=flipped.sum())) % n_classes
    else:  # each class to the next one
        y[flipped] = (y_true[flipped] + 1) % n_classes
    return x, y, val_x, val_y, y_true


def _estimate(seed, flip, **kwargs):
    x, y, val_x, val_y, y_true = _clusters(seed, flip, **kwargs)
    n_classes = kwargs.get("n_classes", 4)
    oof, val_oof = cross_fitted_probabilities(x, y, val_x, n_classes=n_classes, seed=seed)
    estimate = estimate_noise(oof, y, val_oof, val_y, [f"c{k}" for k in range(n_classes)])
    return estimate, y, y_true


@pytest.mark.parametrize("flip", [0.0, 0.2, 0.4])
@pytest.mark.parametrize("kind", ["symmetric", "asymmetric"])
def test_estimated_rate_within_five_points_of_the_truth(flip, kind):
    estimate, y, y_true = _estimate(1, flip, kind=kind)
    truth = float((y != y_true).mean())
    assert abs(estimate.rate - truth) <= 0.05, (estimate.rate, truth)
    assert estimate.correct.shape == y.shape and np.all((estimate.correct >= 0) & (estimate.correct <= 1))


def test_per_class_rates_find_the_one_noisy_class():
    estimate, y, y_true = _estimate(2, 0.5, only_class=2)
    noisy_given = {f"c{k}": float((y_true[y == k] != k).mean()) for k in range(4)}
    for name, truth in noisy_given.items():
        assert abs(estimate.per_class[name] - truth) <= 0.06, (name, estimate.per_class, noisy_given)
    # the flips left class 2 for the other three: the transition matrix says so, the others stay near identity
    # (class 2's diagonal is 0.5; the rate acted on, EM's less twice its null rate, shrinks it toward 1)
    assert estimate.transition[2, 2] < 0.8 and min(estimate.transition[k, k] for k in (0, 1, 3)) > 0.9


def test_too_few_rows_per_class_acts_on_no_noise():
    """Real flips, well separated classes, but 6 rows a class: EM still finds noise, yet the rate acted on is 0 and
    the estimate says why (a class that small cannot spare a row on the probes' guess)."""
    estimate, y, y_true = _estimate(3, 0.3, n=120, n_classes=20, separation=3.0)
    assert (y != y_true).mean() > 0.2 and estimate.em_rate > 0.1
    assert estimate.rate < 0.005 and estimate.lower_bound == 0.0
    assert estimate.rows_per_class < 10 and "fewer than 10" in estimate.too_few_rows
    assert estimate.to_dict([f"c{k}" for k in range(20)])["rows_per_class"] == estimate.rows_per_class
    enough, _, _ = _estimate(3, 0.3, n=400, n_classes=20, separation=3.0)
    assert enough.too_few_rows is None and enough.rate > 0.1


@pytest.mark.integration
def test_small_clean_relation_data_does_not_read_as_noisy(tmp_path):
    """300 clean SemEval relations (19 directed classes, a few rows each): EM's 361-entry transition matrix reads
    the weak probes' errors as noise (about half the labels); the rate acted on is held to the lower bounds, so
    the agent leaves out little, and no class loses more than half its rows."""
    import json

    from autoft import autonomous
    from autoft.data.loading import load_examples
    from autoft.data.writing import write_examples
    from autoft.selection.valuation import too_little_noise
    from tests.conftest import require_shared

    folder = require_shared("semeval2010_task8")
    pool = load_examples(folder / "TRAIN_FILE.TXT", task="relation-extraction")
    order = np.random.default_rng(0).permutation(len(pool))
    train = [pool[i] for i in sorted(order[:300])]
    known = {e.label for e in train}
    validation = [pool[i] for i in sorted(order[300:500]) if pool[i].label in known]
    files = {
        "train": str(write_examples(tmp_path / "train", train)),
        "validation": str(write_examples(tmp_path / "validation", validation)),
    }
    config = {
        "task": "relation-extraction",
        "data": files,
        "output_dir": str(tmp_path / "values"),
        "training": {"max_length": 96, "progress": False},
        "selection": {"policy": "exp3"},
    }
    path = autonomous.value(config)
    noise = json.loads((path.parent / "noise.json").read_text())
    assert noise["em_rate"] > 0.25, noise  # the bias the bounds are for
    assert noise["rate"] <= 0.1 and noise["rate"] <= noise["lower_bound"] + 1e-3, noise
    # (and it calls too few of 300 rows wrong to act on: drop_fraction auto leaves nothing out)
    expected = 0.0 if too_little_noise(noise["rate"], len(train)) else round(noise["rate"], 4)
    assert noise["drop_fraction"] == expected
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    for label in known:
        given = [r for r in rows if r["given_label"] == label]
        assert sum(r["flagged"] == "True" for r in given) <= len(given) / 2, label


def test_suggested_labels_recover_flipped_ones_and_keep_the_right_ones():
    estimate, y, y_true = _estimate(3, 0.3)
    flipped = y != y_true
    assert (estimate.suggested[flipped] == y_true[flipped]).mean() > 0.75
    assert (estimate.suggested[~flipped] == y[~flipped]).mean() > 0.9
    # the posterior that a label is right separates the flipped from the rest
    assert estimate.correct[flipped].mean() < 0.35
    assert estimate.correct[~flipped].mean() > 0.8


def test_calibration_lowers_the_validation_log_loss_of_a_noisy_probe():
    estimate, _, _ = _estimate(4, 0.4)
    raw, calibrated = estimate.validation_nll
    assert calibrated < raw - 0.05
    assert estimate.temperature < 1.0  # a probe trained on noisy labels is under-confident


def test_calibration_of_calibrated_scores_is_near_identity():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2000, 3)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(3, p=p) for p in probs])
    calibration = fit_calibration(probs, labels)
    assert abs(calibration.temperature - 1.0) < 0.15
    assert np.abs(calibration(probs) - probs).max() < 0.1


def test_transition_em_on_known_priors():
    # perfect priors and 30% of labels moved from class 0 to class 1: EM reads T off the data
    rng = np.random.default_rng(0)
    y_true = rng.integers(2, size=4000)
    prior = np.eye(2)[y_true] * 0.98 + 0.01
    y = np.where((y_true == 0) & (rng.random(4000) < 0.3), 1, y_true)
    transition, posterior = fit_transition(prior, y)
    assert transition[0, 1] == pytest.approx(0.3, abs=0.03) and transition[1, 0] < 0.02
    assert (posterior.argmax(1) == y_true).mean() > 0.99


def test_to_dict_is_json_ready():
    import json

    estimate, _, _ = _estimate(5, 0.2)
    summary = estimate.to_dict([f"c{k}" for k in range(4)])
    json.dumps(summary)
    assert set(summary["per_class"]) == {"c0", "c1", "c2", "c3"} and 0.1 < summary["rate"] < 0.3


def test_each_source_gets_its_own_rate():
    """Three sources of one pool: clean, 50% symmetric flips, and labels drawn at random (75% wrong with 4 classes).
    Pooled, the clean source is charged with part of the others' noise; every source as an annotator of its own reads
    each near its truth, and a source too small to estimate alone keeps the pooled posterior."""
    x, y, val_x, val_y, y_true = _clusters(6, 0.0, n=1800)
    rng = np.random.default_rng(6)
    sources = np.repeat([0, 1, 2], 600)
    noisy = (sources == 1) & (rng.random(1800) < 0.5)
    y[noisy] = (y_true[noisy] + rng.integers(1, 4, size=noisy.sum())) % 4
    y[sources == 2] = rng.integers(4, size=600)
    tiny = np.zeros(1800, dtype=np.int64)
    tiny[:20] = 3  # 20 rows of the clean source, too few for a source of their own
    oof, val_oof = cross_fitted_probabilities(x, y, val_x, n_classes=4, seed=6)
    names = ["clean", "flips", "random", "tiny"]
    pooled = estimate_noise(oof, y, val_oof, val_y, names[:4])
    split = estimate_noise(oof, y, val_oof, val_y, names[:4], sources=np.maximum(sources, tiny), source_names=names)
    assert pooled.per_source is None
    rates = {k: v["rate"] for k, v in split.per_source.items()}
    truth = {name: float((y != y_true)[np.maximum(sources, tiny) == k].mean()) for k, name in enumerate(names)}
    for name in ("clean", "flips", "random"):
        assert abs(rates[name] - truth[name]) <= 0.08, (rates, truth)
        assert split.per_source[name]["estimated_alone"]
    assert not split.per_source["tiny"]["estimated_alone"] and split.per_source["tiny"]["rows"] == 20
    assert np.allclose(split.posterior[:20], pooled.posterior[:20])  # the pooled estimate's posterior
    # pooled, the clean source is charged with part of the others' noise
    assert 1.0 - pooled.correct[sources == 0].mean() > rates["clean"] + 0.05
    assert split.rate == pytest.approx(1.0 - split.correct.mean())
    summary = split.to_dict(names[:4])
    assert set(summary["per_source"]) == set(names) and summary["per_source"]["flips"]["rows"] == 600
