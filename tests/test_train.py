import json

import numpy as np
import pytest

import autoft
from autoft.errors import RunDirError
from autoft.training.selection import SampleSelector
from tests.conftest import TOPICS, tiny_config

FAST = {"epochs": 8, "learning_rate": 3e-3, "early_stopping_patience": None}


def test_classification_learns_and_writes_a_loadable_run(tiny_model_dir, classification_files, tmp_path):
    run = autoft.train(tiny_config(tiny_model_dir, classification_files, tmp_path / "run", **FAST))
    assert run.metrics["test"]["macro_f1"] >= 0.9
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.yaml", "labels.json", "metrics.json", "model"]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 8 and metrics["best_epoch"] >= 1
    assert {"accuracy", "macro_f1", "report", "loss"} <= set(metrics["test"])
    assert not list(tmp_path.glob(".run.tmp-*"))

    # Plain transformers loads the model without autoft.
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "run" / "model")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "run" / "model")
    assert model.config.id2label == {0: "food", 1: "sport", 2: "tech"}
    logits = model(**tokenizer(["pizza soup cheese bread"], return_tensors="pt")).logits
    assert model.config.id2label[int(logits.argmax())] == "food"

    again = autoft.load(tmp_path / "run")
    texts = ["goal match team coach", "software chip code data"]
    assert [p["label"] for p in again.predict(texts)] == ["sport", "tech"]
    assert again.predict(texts) == run.predict(texts)
    assert again.evaluate(classification_files["test"])["macro_f1"] == pytest.approx(run.metrics["test"]["macro_f1"])


def test_ner_learns(tiny_model_dir, ner_files, tmp_path):
    config = tiny_config(tiny_model_dir, ner_files, tmp_path / "run", task="token-classification",
                         epochs=10, learning_rate=5e-3, early_stopping_patience=None)
    run = autoft.train(config)
    assert run.metrics["test"]["f1"] >= 0.8
    (record,) = run.predict(["Alice lives in Paris"])
    assert ("PER", "Alice") in [(e["type"], e["text"]) for e in record["entities"]]


def test_same_seed_same_result(tiny_model_dir, classification_files, tmp_path):
    a = autoft.train(tiny_config(tiny_model_dir, classification_files, tmp_path / "a", epochs=2))
    b = autoft.train(tiny_config(tiny_model_dir, classification_files, tmp_path / "b", epochs=2))
    c = autoft.train(tiny_config(tiny_model_dir, classification_files, tmp_path / "c", epochs=2, seed=1))
    losses = lambda run: [e["train_loss"] for e in run.metrics["epochs"]]
    assert losses(a) == losses(b)
    assert losses(a) != losses(c)


def test_early_stopping_restores_best_epoch(tiny_model_dir, classification_files, tmp_path):
    # A learning rate this high diverges: validation peaks early, and training stops after `patience`.
    run = autoft.train(tiny_config(tiny_model_dir, classification_files, tmp_path / "run", epochs=8,
                                   learning_rate=5e-3, early_stopping_patience=1))
    history = [e["validation"]["macro_f1"] for e in run.metrics["epochs"]]
    best = run.metrics["best_epoch"]
    assert history[best - 1] == max(history)
    if run.metrics["stopped_early"]:
        assert len(history) == best + 1
    assert run.evaluate(classification_files["validation"])["macro_f1"] == pytest.approx(max(history))


class Recorder(SampleSelector):
    """Keeps even-indexed samples only, and records what the loop shows it."""

    def __init__(self):
        self.observed, self.rewards = [], []

    def begin_epoch(self, epoch, n_samples):
        return np.where(np.arange(n_samples) % 2 == 0, 1.0, 0.0)

    def observe(self, indices, losses, logits, labels):
        assert losses.shape == (len(indices),) and not losses.requires_grad
        self.observed.extend(indices.tolist())

    def end_epoch(self, epoch, validation, predictions=None):
        self.rewards.append(validation["macro_f1"])
        self.predictions = predictions


def test_selector_decides_which_samples_are_trained_on(tiny_model_dir, classification_files, tmp_path):
    recorder = Recorder()
    run = autoft.train(tiny_config(tiny_model_dir, classification_files, tmp_path / "run", epochs=2,
                                   early_stopping_patience=None), selector=recorder)
    assert sorted(recorder.observed) == sorted(list(range(0, 90, 2)) * 2)
    assert recorder.rewards == [e["validation"]["macro_f1"] for e in run.metrics["epochs"]]
    assert all(e["samples"] == 45 for e in run.metrics["epochs"])
    assert len(recorder.predictions) == run.metrics["sizes"]["validation"]
    assert set(recorder.predictions) <= set(TOPICS)


class MidEpoch(Recorder):
    """Asks for a reward every 2 steps on validation rows 0-4, then stops training on odd samples' losses."""

    update_every = 2

    def __init__(self):
        super().__init__()
        self.steps, self.batches = [], []

    def begin_epoch(self, epoch, n_samples):
        return np.ones(n_samples)

    def validation_rows(self, n_validation):
        return np.arange(5)

    def step_reward(self, step, validation, predictions):
        self.steps.append(step)
        self.batches.append(len(predictions))
        return np.where(np.arange(90) % 2 == 0, 1.0, 0.0)


def test_mid_epoch_rewards_on_a_validation_mini_batch(tiny_model_dir, classification_files, tmp_path):
    selector = MidEpoch()
    autoft.train(tiny_config(tiny_model_dir, classification_files, tmp_path / "run", epochs=1, batch_size=8),
                 selector=selector)
    assert selector.steps == list(range(2, 13, 2))  # 90 samples / 8 = 12 steps
    assert set(selector.batches) == {5}


class Constant(SampleSelector):
    def __init__(self, value):
        self.value = value

    def begin_epoch(self, epoch, n_samples):
        return np.full(n_samples, self.value)


def test_loss_weights_are_normalised(tiny_model_dir, classification_files, tmp_path):
    base = tiny_config(tiny_model_dir, classification_files, tmp_path / "a", epochs=1)
    one = autoft.train(base, selector=Constant(1.0))
    three = autoft.train({**base, "output_dir": str(tmp_path / "b")}, selector=Constant(3.0))
    assert one.metrics["epochs"][0]["train_loss"] == pytest.approx(three.metrics["epochs"][0]["train_loss"], rel=1e-5)


def test_existing_output_dir_needs_overwrite(tiny_model_dir, classification_files, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("x")
    config = tiny_config(tiny_model_dir, classification_files, tmp_path / "run", epochs=1)
    with pytest.raises(RunDirError, match="not empty"):
        autoft.train(config)
    assert (tmp_path / "run" / "keep.txt").exists()
    autoft.train(config, overwrite=True)
    assert not (tmp_path / "run" / "keep.txt").exists() and (tmp_path / "run" / "model").is_dir()


class Crash(SampleSelector):
    def observe(self, indices, losses, logits, labels):
        raise RuntimeError("boom")


def test_a_failed_run_leaves_nothing(tiny_model_dir, classification_files, tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        autoft.train(tiny_config(tiny_model_dir, classification_files, tmp_path / "run", epochs=1), selector=Crash())
    assert not (tmp_path / "run").exists()
    assert not list(tmp_path.glob(".run*"))
