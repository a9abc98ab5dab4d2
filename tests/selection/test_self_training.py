"""Self-training on unlabelled texts: known answers for the thresholds and the admission rule, then a run."""

from __future__ import annotations

import json

import numpy as np
import pytest

import autoft
from autoft.data.loading import Example
from autoft.selection.self_training import Exp3Arms, SelfTrainingCallback, precision_thresholds
from autoft.training.callbacks import TrainState
from tests.conftest import synthetic_rows, tiny_config, write_csv


def test_precision_thresholds_are_the_lowest_confidence_that_reaches_the_target_per_class():
    # Class 0: right at 0.9 and 0.8, wrong at 0.7, right at 0.6 ... ; class 1 predicted too rarely.
    confidence = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.99, 0.3])
    predicted = np.array([0, 0, 0, 0, 0, 0, 1, 0])
    correct = np.array([1, 1, 1, 0, 1, 0, 1, 0], dtype=bool)
    thresholds = precision_thresholds(confidence, predicted, correct, 2, target=0.9)
    assert thresholds[0] == pytest.approx(0.8)  # 3/3 above 0.8; 3/4 at 0.7 and 4/5 at 0.6 miss 0.9
    # Class 1 has one prediction: it takes the threshold over all classes (4/4 down to 0.8 of all rows).
    assert thresholds[1] == pytest.approx(0.8)
    assert precision_thresholds(confidence, predicted, correct, 2, target=0.8)[0] == pytest.approx(0.6)
    assert np.isinf(precision_thresholds(confidence, predicted, np.zeros(8, dtype=bool), 2, target=0.9)).all()


def scripted_state(n_labelled: int, unlabeled_probs: list[np.ndarray], reward_probs: np.ndarray, score: float):
    """A TrainState whose model predictions are scripted: the unlabelled rows' per epoch, the reward part's."""
    calls = {"predict": 0}

    def predict_rows(rows):
        assert list(rows) == list(range(n_labelled, n_labelled + len(unlabeled_probs[0])))  # the pool's rows
        out = unlabeled_probs[min(calls["predict"], len(unlabeled_probs) - 1)]
        calls["predict"] += 1
        return list(out)

    return TrainState(
        n_samples=n_labelled + len(unlabeled_probs[0]),
        n_labelled=n_labelled,
        predict=lambda features: list(reward_probs),
        predict_rows=predict_rows,
        encode=lambda examples: [f"r{i}" for i in range(len(examples))],
        evaluate=lambda examples, features: ({"macro_f1": score}, None),
    )


def test_the_agent_admits_only_consistent_confident_pseudo_labels_in_the_labelled_class_proportions():
    # Six unlabelled texts. After epochs 1 and 2: texts 0 and 3 are class 0 both times (confident), text 1
    # flips class (inconsistent), text 2 is class 1 but not confident enough, texts 4 and 5 are class 1.
    epoch1 = np.array([[0.97, 0.03], [0.96, 0.04], [0.4, 0.6], [0.98, 0.02], [0.1, 0.9], [0.1, 0.9]])
    epoch2 = np.array([[0.98, 0.02], [0.05, 0.95], [0.45, 0.55], [0.99, 0.01], [0.03, 0.97], [0.04, 0.96]])
    # The validation part: class-0 predictions are right at 0.95 and wrong at 0.7; class-1 ones right at 0.8.
    reward = np.array([[0.95, 0.05]] * 6 + [[0.7, 0.3]] * 4 + [[0.2, 0.8]] * 6)
    reward_labels = ["a"] * 6 + ["b"] * 4 + ["b"] * 6
    reward_examples = [Example(f"v{i}", label) for i, label in enumerate(reward_labels)]
    callback = SelfTrainingCallback(
        [Example(f"t{i}", None) for i in range(6)],
        n_classes=2,
        labelled_classes=np.array([0, 0, 1, 1]),
        reward_examples=reward_examples,
        label_ids={"a": 0, "b": 1},
        primary_metric="macro_f1",
    )
    state = scripted_state(4, [epoch1, epoch2], reward, 0.5)
    state.epoch = 1
    callback.on_epoch_begin(state)
    assert state.pseudo_labels == {}  # nothing predicted yet
    callback.on_epoch_end(state)
    state.epoch = 2
    callback.on_epoch_begin(state)
    assert state.pseudo_labels == {}  # one epoch of predictions: nothing is consistent yet
    callback.on_epoch_end(state)
    state.epoch = 3
    callback.on_epoch_begin(state)
    # Texts 0, 3, 4, 5 (rows 4, 7, 8, 9) are consistent and above their class's threshold (0.95 / 0.8 on
    # the validation part); text 1 flipped; text 2's class-1 confidence 0.55 is below 0.8.
    assert set(state.pseudo_labels) == {4, 7, 8, 9}
    assert state.pseudo_labels[4] == (0, pytest.approx(0.98)) and state.pseudo_labels[8] == (1, pytest.approx(0.97))
    weights = state.sample_weights()
    assert weights.tolist() == [
        1,
        1,
        1,
        1,
        pytest.approx(0.98),
        0,
        0,
        pytest.approx(0.99),
        pytest.approx(0.97),
        pytest.approx(0.96),
    ]
    # In the labelled proportions: with 3 of 4 labelled rows in class 0, class 1 gets a quarter of what
    # is admitted, the more confident of its two texts.
    callback.class_share = np.array([0.75, 0.25])
    callback.on_epoch_begin(state)
    assert set(state.pseudo_labels) == {4, 7, 8}
    # A labelled class the pool has no candidate of does not stop the others being admitted.
    callback.n_classes, callback.class_share = 3, np.array([0.5, 0.25, 0.25])
    callback.thresholds = np.append(callback.thresholds, 0.5)
    callback.on_epoch_begin(state)
    assert set(state.pseudo_labels) == {4, 7, 8, 9}


def test_threshold_self_training_admits_every_confident_pseudo_label_from_the_second_epoch():
    probs = np.array([[0.95, 0.05], [0.3, 0.7], [0.1, 0.9]])
    callback = SelfTrainingCallback(
        [Example(f"t{i}", None) for i in range(3)],
        n_classes=2,
        mode="threshold",
        threshold=0.9,
        labelled_classes=np.array([0, 1]),
        label_ids={"a": 0, "b": 1},
        primary_metric="macro_f1",
    )
    state = scripted_state(2, [probs], np.zeros((0, 2)), 0.0)
    state.epoch = 1
    callback.on_epoch_begin(state)
    assert state.pseudo_labels == {}
    callback.on_epoch_end(state)
    callback.on_epoch_begin(state)
    assert state.pseudo_labels == {2: (0, pytest.approx(0.95)), 4: (1, pytest.approx(0.9))}


def test_exp3_arms_learn_the_arm_that_pays():
    bandit = Exp3Arms(3, gamma=0.1, eta=0.5, seed=0)
    for _ in range(60):
        arm = bandit.draw()
        bandit.update(arm, 1.0 if arm == 2 else -1.0)
    assert bandit.probabilities().argmax() == 2 and bandit.probabilities()[2] > 0.8


def test_a_run_learns_from_unlabelled_texts_and_reports_its_pseudo_labels(tiny_model_dir, tmp_path):
    rows = synthetic_rows(300, 5)
    files = {
        "train": write_csv(tmp_path / "train.csv", rows[:30]),
        "validation": write_csv(tmp_path / "val.csv", synthetic_rows(60, 1)),
        "test": write_csv(tmp_path / "test.csv", synthetic_rows(60, 2)),
    }
    (tmp_path / "pool.txt").write_text("\n".join(text for text, _ in rows[30:]) + "\n", encoding="utf-8")
    config = tiny_config(
        tiny_model_dir, files, tmp_path / "run", epochs=6, learning_rate=3e-3, early_stopping_patience=None
    )
    config["data"]["unlabeled"] = str(tmp_path / "pool.txt")
    run = autoft.train(config)
    report = json.loads((tmp_path / "run" / "self_training.json").read_text())
    assert report["mode"] == "agent" and report["unlabeled"] == 270
    admitted = report["admitted"]
    assert len(admitted) > 20  # the separable pool is learned from...
    truth = {text: label for text, label in rows[30:]}
    right = np.mean([truth[a["text"]] == a["pseudo_label"] for a in admitted])
    assert right > 0.9  # ...with pseudo-labels that are nearly all right
    assert run.metrics["sizes"]["unlabeled"] == 270 and run.metrics["self_training"]["admitted_last_epoch"] == len(
        admitted
    )
    # Plain fine-tuning never sees the pool: self_training off trains on the 30 labelled rows only.
    config["selection"] = {"self_training": "off"}
    config["output_dir"] = str(tmp_path / "plain")
    plain = autoft.train(config)
    assert plain.metrics["epochs"][0]["samples"] == 30 and not (tmp_path / "plain" / "self_training.json").exists()
    assert sum(e["samples"] for e in run.metrics["epochs"]) > sum(e["samples"] for e in plain.metrics["epochs"])


def test_unlabelled_data_is_refused_for_tasks_other_than_classification(tiny_model_dir, ner_files, tmp_path):
    (tmp_path / "pool.txt").write_text("Alice went home\n", encoding="utf-8")
    config = tiny_config(tiny_model_dir, ner_files, tmp_path / "run", task="token-classification")
    config["data"]["unlabeled"] = str(tmp_path / "pool.txt")
    with pytest.raises(autoft.errors.DataError, match="data.unlabeled: .*classification only"):
        autoft.train(config)


def test_unlabel_trains_a_left_out_sample_on_the_models_own_consistent_label(tiny_model_dir, noisy_files, tmp_path):
    """``selection.flagged: unlabel``: samples the agent leaves out come back with the model's own label once
    it is confident and the same two epochs running; with noisy labels those own labels are mostly right."""
    import csv

    files, flipped = noisy_files
    config = tiny_config(
        tiny_model_dir, files, tmp_path / "run", epochs=6, learning_rate=3e-3, early_stopping_patience=None
    )
    config["selection"] = {"policy": "small-loss", "flagged": "unlabel", "self_training_threshold": 0.5}
    autoft.train(config)
    with (tmp_path / "run" / "data_values.csv").open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    unlabelled = [r for r in rows if r["action"] == "unlabel"]
    decisions = [json.loads(line) for line in (tmp_path / "run" / "decisions.jsonl").read_text().splitlines()]
    selects = [d for d in decisions if d.get("event") == "select"]
    assert [d["unlabelled"] for d in selects[:2]] == [0, 0]  # own labels need two epochs of predictions
    assert unlabelled and selects[-1]["unlabelled"] == len(unlabelled)
    # the own labels are mostly right (5 of 7 here): the model learned the topics from the clean majority
    true_labels = [label for _, label in synthetic_rows(150, 0)]
    assert all(r["flagged"] == "False" and r["model_label"] for r in unlabelled)
    assert np.mean([r["model_label"] == true_labels[int(r["row_id"])] for r in unlabelled]) >= 0.7
    assert any(int(r["row_id"]) in flipped and r["model_label"] != r["given_label"] for r in unlabelled)
