"""No class starves, and the agent backs off when it falls behind plain fine-tuning on the same validation rows."""

import json

import numpy as np
import pytest

import autoft
from autoft.config import SelectionConfig
from autoft.selection.agent import AgentCallback, Units, Valuation
from autoft.selection.guard import BackOff, ReferenceScores, read_reference, starved_classes
from autoft.selection.keeping import class_floor
from autoft.selection.noise import NoiseEstimate
from autoft.selection.policies import get_policy
from autoft.training.callbacks import CallbackList, TrainState


def test_a_class_below_its_floor_takes_in_confident_relabels_then_its_own_best_rows():
    labels = np.array([0] * 10 + [1] * 10 + [2] * 10)
    values = np.arange(30, dtype=float)
    keep = np.ones(30, dtype=bool)
    keep[:10] = False  # every row of class 0 left out
    keep[[10, 11, 12, 20, 21]] = False  # and a few of the others, some of them suggested to be class 0
    suggested = labels.copy()
    suggested[[10, 11, 20, 21]] = 0
    confidence = np.full(30, 0.99)
    confidence[21] = 0.6  # not confident enough to relabel
    kept, relabelled, records = class_floor(keep, values, labels, suggested, confidence, ["a", "b", "c"])
    # class 0 needs 5 effective rows: 3 confident relabels into it, then its own 2 best-valued rows back
    assert np.flatnonzero(relabelled).tolist() == [10, 11, 20]
    assert np.flatnonzero(kept[:10]).tolist() == [8, 9]
    assert records == [{"class": "a", "rows": 10, "left_out": 8, "taken_back": 2, "relabelled_in": 3, "effective": 5}]
    assert (kept[10:] == keep[10:]).all()  # the other classes lost no more than half: untouched
    # nothing to do when no class lost more than half
    again, none, quiet = class_floor(np.ones(30, dtype=bool), values, labels, suggested, confidence, ["a", "b", "c"])
    assert again.all() and not none.any() and quiet == []


def test_a_class_loses_no_more_than_its_estimated_noise_allows():
    """With per-class noise rates, a class keeps its own rows beyond 1.5 times the share the estimate calls wrong
    in it (best-valued first, no relabels into it: it is not starving), and a class estimated noisy may lose that
    share (up to half)."""
    labels = np.array([0] * 20 + [1] * 20)
    values = np.arange(40, dtype=float)
    keep = np.ones(40, dtype=bool)
    keep[:8] = False  # 8 of class 0's 20 rows left out
    keep[20:28] = False  # and 8 of class 1's
    suggested = 1 - labels  # every row confidently suggested to be the other class
    confidence = np.full(40, 0.99)
    rates = np.array([0.1, 0.4])  # class 0: 2 of 20 wrong, so at most 3 left out; class 1: up to 12
    kept, relabelled, records = class_floor(keep, values, labels, suggested, confidence, ["a", "b"], class_rates=rates)
    assert np.flatnonzero(~kept[:20]).tolist() == [0, 1, 2]  # its 5 best-valued rows left out came back
    assert (kept[20:] == keep[20:]).all() and not relabelled.any()
    assert records == [{"class": "a", "rows": 20, "left_out": 3, "taken_back": 5, "relabelled_in": 0, "effective": 17}]


def _noisy_valuation(n_per_class=20, drop=0.5):
    """A valuation of three classes where class 2's rows hold the lowest values: a global cut at ``drop`` would
    leave out all of them."""
    labels = np.repeat(np.arange(3), n_per_class)
    n = len(labels)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4))
    units = Units(x, labels, x[:6], np.array([0, 1, 2] * 2), ["a", "b", "c"], np.arange(n), np.zeros(n, np.int64))
    policy = get_policy("small-loss", drop_fraction=drop)
    policy.values_ = np.where(labels == 2, 0.0, 1.0) + np.linspace(0, 0.5, n)
    posterior = np.eye(3)[labels] * 0.98 + 0.01
    posterior[labels == 2] = [0.3, 0.3, 0.4]  # class 2's rows: unsure, no confident relabel
    noise = NoiseEstimate(
        0.3, {"a": 0.4, "b": 0.4, "c": 0.6}, 1.0, 0.1, np.eye(3), posterior[np.arange(n), labels], posterior, (1.0, 1.0)
    )
    selection = SelectionConfig(policy="small-loss", drop_fraction=drop, correction="forward")
    names = ["abc"[k] for k in labels]
    valuation = Valuation(
        policy, units, labels, ["train"], names, names, np.ones(n), 1 - noise.correct, selection, noise
    )
    return AgentCallback(valuation, primary_metric="macro_f1", reward_examples=[autoft.Example("v", "a")]), labels


def test_the_agent_keeps_half_of_a_class_it_would_empty_and_names_it():
    callback, labels = _noisy_valuation()
    state = TrainState(n_samples=len(labels))
    state.epoch = 1
    callback.on_epoch_begin(state)
    kept = state.weights > 0
    assert kept[labels == 2].sum() == 10  # half of class c's 20 rows, not none
    assert kept.sum() == 40  # the rows taken back come on top of the cut
    floor = [d for d in callback.decisions if d["event"] == "class-floor"]
    assert floor and floor[-1]["classes"][0]["class"] == "c"
    assert callback.warnings == []  # it kept half: no class lost more than half
    # flagged rows (data_values.csv, corrected files) follow the floor too
    assert (callback.valuation.flagged(callback.values) == ~kept).all()


def test_a_class_that_still_loses_more_than_half_is_named_once(caplog):
    callback, labels = _noisy_valuation()
    posterior = callback.valuation.noise.posterior
    rows = np.flatnonzero(labels == 0)[:12]
    posterior[rows] = [0.0, 0.0, 1.0]  # confidently class c: relabelled into it instead of c's own rows coming back
    callback.valuation.policy.values_[rows] = -1.0  # and left out
    state = TrainState(n_samples=len(labels))
    with caplog.at_level("WARNING", logger="autoft"):
        for epoch in (1, 2):
            state.epoch = epoch
            callback.on_epoch_begin(state)
    # class a gets its own 2 best rows back first (it lost 12 of 20); c, left out but 2, takes in 8 of a's others
    assert callback.relabelled.sum() == 8 and state.relabels[int(rows[2])] == 2 and (state.weights[rows[:2]] > 0).all()
    assert callback.warnings == [
        (
            "class 'c': the agent left out 18 of its 20 rows as mislabelled; it trains on 10 "
            "(8 relabelled into it from other classes); check its labels in data_values.csv"
        )
    ]
    assert sum(d["event"] == "class-warning" for d in callback.decisions) == 1
    assert caplog.text.count("class 'c'") == 1


def _reference(scores, greater_is_better=True, rows=60):
    return {
        "metric": "macro_f1",
        "greater_is_better": greater_is_better,
        "examples": 10,
        "epochs": scores,
        "samples": [rows * (e + 1) for e in range(len(scores))],
    }


def test_the_agent_backs_off_when_it_trails_plain_on_as_many_samples_then_stops_intervening():
    callback, labels = _noisy_valuation()
    guard = BackOff(_reference([0.5, 0.6, 0.7, 0.7]))  # plain: 60 rows an epoch
    both = CallbackList([callback, guard])
    state = TrainState(n_samples=len(labels))
    both.on_train_begin(state)
    kept = []
    for epoch, score in zip((1, 2, 3, 4, 5), (0.45, 0.5, 0.52, 0.55, 0.9)):
        state.epoch, state.label_transition = epoch, None  # (the loop resets it before each epoch)
        both.on_epoch_begin(state)
        kept.append(int((state.weights > 0).sum()))
        if epoch == 5:
            break
        state.validation = {"macro_f1": score}
        both.on_evaluate(state)
    # After 40 samples plain has no epoch to compare with; after 80 its first (0.5): level. After 120 it had 0.6:
    # 0.52 trails, half as much left out. After 170 (120 + 50 kept) still 0.6: 0.55 trails, nothing left out.
    assert [(r["epoch"], r["samples"], r["plain_best"], r["intervention"]) for r in guard.records] == [
        (3, 120, 0.6, 0.5),
        (4, 170, 0.6, 0.0),
    ]
    assert kept == [40, 40, 40, 50, 60]  # (15 of class c left out at 0.25: its floor brings 5 back)
    assert state.relabels == {} and state.label_transition is None  # plain training from here
    back_offs = [d for d in callback.decisions if d["event"] == "back-off"]
    assert [(d["epoch"], d["intervention"], d["drop_fraction"]) for d in back_offs] == [(4, 0.5, 0.25), (5, 0.0, 0.0)]


def test_back_off_follows_the_metric_s_direction_and_resumes_at_its_level():
    guard = BackOff(_reference([2.0, 1.5], greater_is_better=False, rows=1))  # a loss: lower is better
    state = TrainState(n_samples=1)
    guard.on_train_begin(state)
    for epoch, loss, intervention in ((1, 1.9, 1.0), (2, 1.8, 0.5)):  # 1.9 < 2.0: ahead; 1.8 trails 1.5
        state.epoch = epoch
        guard.on_epoch_begin(state)
        state.validation = {"macro_f1": loss}
        guard.on_evaluate(state)
        assert state.intervention == intervention
    saved = json.loads(json.dumps(guard.state_dict()))
    resumed, fresh = BackOff(_reference([2.0, 1.5], greater_is_better=False, rows=1)), TrainState(n_samples=1)
    resumed.on_train_begin(fresh)
    resumed.load_state_dict(saved)
    assert fresh.intervention == 0.5 and resumed.level == 1 and resumed.trained == 2


def test_the_agent_backs_off_at_once_when_its_model_starves_a_class_plain_predicts():
    reference = {
        **_reference([0.5, 0.6, 0.7], rows=10),
        "predicted": [{"a": 9, "b": 1}, {"a": 6, "b": 4}, {"a": 5, "b": 5}],
    }
    guard = BackOff(reference)
    state = TrainState(n_samples=10)
    guard.on_train_begin(state)
    # Its macro-F1 is ahead of plain's every epoch; epoch 1: b is rare for plain too (1 < STARVED_MIN); epoch 2: the
    # agent predicts 'b' once where plain predicted it 4 times (not yet 5); epoch 3: once against 5; epoch 4: never.
    for epoch, predictions in ((1, ["a"] * 10), (2, ["a"] * 9 + ["b"]), (3, ["a"] * 9 + ["b"]), (4, ["a"] * 10)):
        state.epoch = epoch
        guard.on_epoch_begin(state)
        state.validation, state.validation_predictions = {"macro_f1": 0.9}, predictions
        guard.on_evaluate(state)
    assert [(r["epoch"], r["starved"], r["intervention"]) for r in guard.records] == [
        (3, [{"class": "b", "predicted": 1, "plain_predicted": 5}], 0.5),
        (4, [{"class": "b", "predicted": 0, "plain_predicted": 5}], 0.0),
    ]  # (plain's last epoch stands for later ones)
    assert guard.run_metrics()["back_off"] == guard.records
    assert guard.run_warnings()[0] == (
        "epoch 3: the agent backed off (leaves out half as much): on its stopping half "
        "its model predicted 'b' for 1 rows (plain fine-tuning's for 5)"
    )
    assert starved_classes({"predicted": [None]}, 1, ["a"]) == [] and starved_classes(reference, 1, [["x"]]) == []


def test_an_agent_trained_on_far_fewer_samples_is_held_to_plain_s_model_on_no_more():
    reference = {
        **_reference([0.5, 0.6, 0.7], rows=10),  # plain: 10, 20, 30 samples
        "predicted": [{"a": 4, "b": 6}, {"a": 5, "b": 5}, {"a": 5, "b": 5}],
    }
    once = ["a"] * 9 + ["b"]
    starved_b = [{"class": "b", "predicted": 1, "plain_predicted": 6}]
    assert starved_classes(reference, 1, once, 9) == starved_b  # 9 of plain's 10: as trained, the same epoch
    assert starved_classes(reference, 1, once, 6) == []  # 6 of 10: no model of plain's was trained on as little
    assert starved_classes(reference, 2, once, 12) == starved_b  # 12 of 20: plain's first epoch (10 samples)
    assert starved_classes(reference, 2, ["a"] * 8 + ["b"] * 2, 12) == []  # 2 ≥ 0.25 × 6
    guard = BackOff(reference)
    state = TrainState(n_samples=10)
    state.weights = np.array([0.0] * 4 + [1.0] * 6)  # the agent trains on 6 rows an epoch
    guard.on_train_begin(state)
    for epoch in (1, 2):
        state.epoch = epoch
        guard.on_epoch_begin(state)
        state.validation, state.validation_predictions = {"macro_f1": 0.9}, once
        guard.on_evaluate(state)
    assert [(r["epoch"], r["samples"], r["starved"][0]["plain_predicted"]) for r in guard.records] == [(2, 12, 6)]


def test_reference_scores_are_written_for_the_agent_s_run(tmp_path):
    examples = [autoft.Example(f"t{i}", "a") for i in range(4)]
    scores = iter([0.25, 0.5])
    predictions = iter([["a", "a", "b", "a"], []])
    seen = []
    state = TrainState(
        n_samples=3,
        encode=lambda rows: [f"f{e.text}" for e in rows],
        evaluate=lambda rows, features=None, loss_only=False: (
            seen.append(features) or ({"macro_f1": next(scores)}, next(predictions))
        ),
    )
    reference = ReferenceScores(examples, metric="macro_f1", greater_is_better=True)
    state.weights = np.array([1.0, 0.0, 2.0])  # (plain fine-tuning trains on every row; counted as given)
    for _ in range(2):
        reference.on_epoch_begin(state)
        reference.on_evaluate(state)
    assert seen[0] == ["ft0", "ft1", "ft2", "ft3"] and seen[1] is seen[0]  # encoded once
    reference.write_artifacts(tmp_path, [], [])
    assert read_reference(tmp_path) == {
        **_reference([0.25, 0.5], rows=2),
        "examples": 4,
        "predicted": [{"a": 3, "b": 1}, None],
        "what": read_reference(tmp_path)["what"],
    }
    assert read_reference(tmp_path / "elsewhere") is None


@pytest.mark.parametrize("level", [0, 1])
def test_masked_entities_follow_the_intervention(level):
    """NER's mask mode: the share of entities masked scales with the intervention too."""
    callback, labels = _noisy_valuation()
    callback.selection = callback.selection.model_copy(update={"mode": "mask", "correction": "off"})
    callback.valuation.selection = callback.selection
    callback.valuation.units.spans = [(0, 0)] * len(labels)  # one one-word entity per sentence
    state = TrainState(n_samples=len(labels), intervention=(1.0, 0.0)[level])
    state.epoch = 1
    callback.on_epoch_begin(state)
    assert callback.masked.sum() == (30 if level == 0 else 0)


def test_an_agent_with_nothing_to_act_on_trains_as_plain_fine_tuning(tmp_path, tiny_model_dir):
    """A random tiny encoder gives the noise estimate no evidence: the rate acted on is 0, so the agent's run is
    plain fine-tuning again, validated on the whole set, and scores what plain scores."""
    from autoft.autonomous import run
    from tests.conftest import synthetic_rows, tiny_config, write_csv

    files = {
        split: write_csv(tmp_path / f"{split}.csv", synthetic_rows(n, seed))
        for split, n, seed in (("train", 60, 0), ("validation", 20, 1), ("test", 20, 2))
    }
    comparison = run(tiny_config(tiny_model_dir, files, tmp_path / "out", epochs=2))
    noise = json.loads((tmp_path / "out" / "noise.json").read_text())
    assert noise["rate"] < 0.005 and noise["drop_fraction"] == 0.0
    assert comparison["idle"].startswith("no label noise found")
    assert "| the agent held back: no label noise found to act on |" in comparison["table"]
    decisions = [json.loads(line) for line in (tmp_path / "out" / "decisions.jsonl").read_text().splitlines()]
    assert [d["event"] for d in decisions if d.get("event") in ("idle", "back-off")] == ["idle"]
    metrics = {
        name: json.loads((tmp_path / "out" / name / "metrics.json").read_text()) for name in ("plain", "autonomous")
    }
    assert metrics["autonomous"]["sizes"]["validation"] == metrics["plain"]["sizes"]["validation"] == 20
    for split in ("validation", "test"):
        assert metrics["autonomous"][split]["macro_f1"] == pytest.approx(metrics["plain"][split]["macro_f1"])
    steps = {
        name: [
            r["loss"]
            for r in map(json.loads, (tmp_path / "out" / name / "metrics.jsonl").read_text().splitlines())
            if "loss" in r
        ]
        for name in ("plain", "autonomous")
    }
    assert steps["autonomous"] == steps["plain"]  # the same training, step for step (no bucket emphasis either)
    assert comparison["better"]["run"] == "plain" and comparison["better"]["compared_on"] == "each run's validation set"


def test_too_few_rows_called_wrong_is_nothing_to_act_on():
    """``drop_fraction: auto`` leaves nothing out when the rate acted on calls fewer than ``IDLE_ROWS`` rows wrong
    (24 of 300 at 8%), and acts when there are enough (240 of 3,000); a configured share is what the config says."""
    from autoft.selection.valuation import IDLE_ROWS, resolve_drop_fraction, too_little_noise

    drop, how = resolve_drop_fraction("auto", 0.08, rows=300)
    assert drop == 0.0 and f"fewer than {IDLE_ROWS}" in how and "about 24" in how
    assert resolve_drop_fraction("auto", 0.08, rows=3000)[0] == 0.08
    assert resolve_drop_fraction(0.1, 0.08, rows=300)[0] == 0.1
    assert too_little_noise(0.08, 300) and not too_little_noise(0.08, 3000) and too_little_noise(0.005, 10**6)
