import json

import numpy as np
import pytest
import yaml

import autoft
from autoft.errors import RunDirError
from autoft.training.callbacks import TrainerCallback
from tests.conftest import TOPICS, synthetic_rows, tiny_config, write_csv

FAST = {"epochs": 8, "learning_rate": 3e-3, "early_stopping_patience": None}


def test_classification_learns_and_writes_a_loadable_run(tiny_model_dir, classification_files, tmp_path):
    run = autoft.train(tiny_config(tiny_model_dir, classification_files, tmp_path / "run", **FAST))
    assert run.metrics["test"]["macro_f1"] >= 0.9
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "checksums.json",
        "config.yaml",
        "labels.json",
        "metrics.json",
        "metrics.jsonl",
        "model",
        "test_predictions.jsonl",
    ]
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
    config = tiny_config(
        tiny_model_dir,
        ner_files,
        tmp_path / "run",
        task="token-classification",
        epochs=10,
        learning_rate=5e-3,
        early_stopping_patience=None,
    )
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
    run = autoft.train(
        tiny_config(
            tiny_model_dir,
            classification_files,
            tmp_path / "run",
            epochs=8,
            learning_rate=5e-3,
            early_stopping_patience=1,
        )
    )
    history = [e["validation"]["macro_f1"] for e in run.metrics["epochs"]]
    best = run.metrics["best_epoch"]
    assert history[best - 1] == max(history)
    if run.metrics["stopped_early"]:
        assert len(history) == best + 1
    assert run.evaluate(classification_files["validation"])["macro_f1"] == pytest.approx(max(history))


class Recorder(TrainerCallback):
    """Keeps even-indexed samples only, and records what the loop shows it."""

    def __init__(self):
        self.observed, self.rewards, self.events = [], [], []

    def on_train_begin(self, state):
        self.events.append("train_begin")

    def on_epoch_begin(self, state):
        self.events.append(f"epoch_begin {state.epoch}")
        state.weights = np.where(np.arange(state.n_samples) % 2 == 0, 1.0, 0.0)

    def on_step_end(self, state, output):
        assert output.losses.shape == (len(output.indices),) and not output.losses.requires_grad
        self.observed.extend(output.indices.tolist())

    def on_epoch_end(self, state):
        self.events.append(f"epoch_end {state.epoch}")
        self.margins = state.score(np.arange(3))

    def on_evaluate(self, state):
        self.events.append(f"evaluate {state.epoch}")
        self.rewards.append(state.validation["macro_f1"])
        self.predictions = state.validation_predictions

    def on_train_end(self, state):
        self.events.append("train_end")


def test_callback_decides_which_samples_are_trained_on(tiny_model_dir, classification_files, tmp_path):
    recorder = Recorder()
    run = autoft.train(
        tiny_config(tiny_model_dir, classification_files, tmp_path / "run", epochs=2, early_stopping_patience=None),
        callback=recorder,
    )
    assert sorted(recorder.observed) == sorted(list(range(0, 90, 2)) * 2)
    assert recorder.rewards == [e["validation"]["macro_f1"] for e in run.metrics["epochs"]]
    assert all(e["samples"] == 45 for e in run.metrics["epochs"])
    assert len(recorder.predictions) == run.metrics["sizes"]["validation"]
    assert set(recorder.predictions) <= set(TOPICS)
    assert recorder.events == [
        "train_begin",
        "epoch_begin 1",
        "epoch_end 1",
        "evaluate 1",
        "epoch_begin 2",
        "epoch_end 2",
        "evaluate 2",
        "train_end",
    ]
    assert recorder.margins.shape == (3,) and np.isfinite(recorder.margins).all()


class MidEpoch(Recorder):
    """Every 2 steps: evaluates validation rows 0-4 through the state, then leaves odd samples' losses out."""

    def __init__(self, validation):
        super().__init__()
        self.validation = validation
        self.steps, self.batches = [], []

    def on_epoch_begin(self, state):
        state.weights = np.ones(state.n_samples)

    def on_step_end(self, state, output):
        if state.step % 2 == 0:
            _, predictions = state.evaluate(self.validation[:5])
            self.steps.append(state.step)
            self.batches.append(len(predictions))
            state.weights = np.where(np.arange(state.n_samples) % 2 == 0, 1.0, 0.0)


def test_callbacks_evaluate_mid_epoch_through_the_state(tiny_model_dir, classification_files, tmp_path):
    from autoft.data.loading import load_examples

    selector = MidEpoch(load_examples(classification_files["validation"], task="classification"))
    autoft.train(
        tiny_config(
            tiny_model_dir, classification_files, tmp_path / "run", epochs=1, batch_size=8, group_by_length=False
        ),
        callback=selector,
    )
    assert selector.steps == list(range(2, 13, 2))  # 90 samples / 8 = 12 steps
    assert set(selector.batches) == {5}


class ZeroAfterFirstStep(TrainerCallback):
    def __init__(self):
        self.steps = 0

    def on_step_end(self, state, output):
        self.steps += 1
        state.weights = np.zeros(state.n_samples)


def test_batches_whose_weights_are_all_zero_are_skipped(tiny_model_dir, classification_files, tmp_path):
    callback = ZeroAfterFirstStep()
    run = autoft.train(
        tiny_config(tiny_model_dir, classification_files, tmp_path / "run", epochs=1, batch_size=8), callback=callback
    )
    assert callback.steps == 1 and run.metrics["epochs"][0]["samples"] == 8


class Constant(TrainerCallback):
    def __init__(self, value):
        self.value = value

    def on_epoch_begin(self, state):
        state.weights = np.full(state.n_samples, self.value)


def test_loss_weights_are_normalised(tiny_model_dir, classification_files, tmp_path):
    base = tiny_config(tiny_model_dir, classification_files, tmp_path / "a", epochs=1)
    one = autoft.train(base, callback=Constant(1.0))
    three = autoft.train({**base, "output_dir": str(tmp_path / "b")}, callback=Constant(3.0))
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


class Crash(TrainerCallback):
    def on_step_end(self, state, output):
        raise RuntimeError("boom")


def test_a_failed_run_leaves_nothing(tiny_model_dir, classification_files, tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        autoft.train(tiny_config(tiny_model_dir, classification_files, tmp_path / "run", epochs=1), callback=Crash())
    assert not (tmp_path / "run").exists()
    assert not list(tmp_path.glob(".run*"))


def test_metric_or_loss_goes_on_while_the_model_learns_and_metric_only_stops(
    tiny_model_dir, classification_files, tmp_path
):
    # At this rate the predictions stay on one class for a few epochs while the validation loss falls: the
    # metric alone would call that a plateau.
    base = {"epochs": 20, "learning_rate": 2e-4, "early_stopping_patience": 2}
    metric = autoft.train(
        tiny_config(tiny_model_dir, classification_files, tmp_path / "a", early_stopping_on="metric", **base)
    )
    both = autoft.train(tiny_config(tiny_model_dir, classification_files, tmp_path / "b", **base))
    assert metric.metrics["stopped_early"] and len(metric.metrics["epochs"]) < 6
    assert metric.metrics["test"]["macro_f1"] < 0.5
    assert len(both.metrics["epochs"]) > 10 and both.metrics["test"]["macro_f1"] >= 0.9
    history = both.metrics["epochs"]
    for e, epoch in enumerate(history[:-2], start=1):  # each epoch but the last `patience` improved something
        past = history[: e - 1]
        if past:
            assert epoch["validation"]["macro_f1"] > max(p["validation"]["macro_f1"] for p in past) or epoch[
                "validation"
            ]["loss"] < min(p["validation"]["loss"] for p in past), e


def test_auto_epochs_stop_on_a_plateau(tiny_model_dir, classification_files, tmp_path):
    config = tiny_config(
        tiny_model_dir,
        classification_files,
        tmp_path / "run",
        epochs="auto",
        learning_rate=1e-9,
        early_stopping_patience="auto",
    )
    run = autoft.train(config)
    planned, patience = run.metrics["training"]["epochs"], run.metrics["training"]["early_stopping_patience"]
    assert planned == 12 and patience == 2  # 90 rows: small data gets many passes
    assert run.metrics["stopped_early"] and len(run.metrics["epochs"]) == 1 + patience


def test_a_run_with_no_training_section_resolves_and_records_every_auto(tiny_model_dir, classification_files, tmp_path):
    config = {
        "model": str(tiny_model_dir),
        "data": {k: str(v) for k, v in classification_files.items()},
        "output_dir": str(tmp_path / "run"),
    }
    run = autoft.train(config)
    written = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["training"]
    assert written["batch_size"] == 32 and written["epochs"] == 12 and written["early_stopping_patience"] == 2
    assert 1e-5 <= written["learning_rate"] <= 5e-4
    assert written == run.metrics["training"] and run.config.training.learning_rate == written["learning_rate"]
    plan = json.loads((tmp_path / "run" / "training_plan.json").read_text())
    assert set(plan["choices"]) == {
        "batch_size",
        "epochs",
        "early_stopping_patience",
        "learning_rate",
        "head_learning_rate",
        "max_length",
    }
    assert written["max_length"] == 128  # the task's default
    search = plan["lr_search"]
    assert len(search["learning_rates"]) == len(search["losses"]) > 10
    # The head trains at the searched rate, the pretrained weights at it or under the ceiling of 36 planned steps.
    assert search["chosen"] == written["head_learning_rate"]
    assert written["learning_rate"] == pytest.approx(min(search["chosen"], 2.5e-3 / 6))
    assert run.metrics["auto"]["learning_rate"]["value"] == written["learning_rate"]
    # The written config repeats the run without searching again.
    again = autoft.train(str(tmp_path / "run" / "config.yaml"), overrides=[f"output_dir={tmp_path / 'again'}"])
    assert again.metrics["auto"] == {} and again.metrics["training"] == written
    assert not (tmp_path / "again" / "training_plan.json").exists()


def test_skipped_rows_are_counted_and_listed_in_the_run_directory(tiny_model_dir, tmp_path):
    from tests.conftest import synthetic_rows, write_csv

    rows = synthetic_rows(150, 0)
    rows[4] = ("   ", rows[4][1])
    files = {
        "train": write_csv(tmp_path / "train.csv", rows),
        "validation": write_csv(tmp_path / "val.csv", synthetic_rows(30, 1)),
    }
    config = tiny_config(tiny_model_dir, files, tmp_path / "run", epochs=1)
    with pytest.raises(autoft.AutoftError, match=r"train.csv:6: empty text"):
        autoft.train(config)
    config["data"]["on_bad_rows"] = "skip"
    run = autoft.train(config)
    assert run.metrics["skipped_rows"] == 1 and run.metrics["sizes"]["train"] == 149
    assert (tmp_path / "run" / "skipped_rows.txt").read_text() == f"{files['train']}:6: empty text in column 'text'\n"


class Relabel(TrainerCallback):
    """Trains rows 0-9 on label id 0 whatever their given label; records the labels the loop used."""

    def __init__(self):
        self.seen = {}

    def on_epoch_begin(self, state):
        state.relabels = dict.fromkeys(range(10), 0)

    def on_step_end(self, state, output):
        self.seen.update(zip(output.indices.tolist(), output.labels.tolist()))


def test_relabels_change_the_labels_the_loop_trains_on(tiny_model_dir, classification_files, tmp_path):
    callback = Relabel()
    run = autoft.train(tiny_config(tiny_model_dir, classification_files, tmp_path / "run", epochs=1), callback=callback)
    assert all(callback.seen[i] == 0 for i in range(10))
    assert {callback.seen[i] for i in range(10, 90)} == {0, 1, 2}  # the rest keep their given labels
    assert run.metrics["epochs"][0]["samples"] == 90


class Transition(TrainerCallback):
    """Sets one label-transition matrix for every epoch."""

    def __init__(self, matrix):
        self.matrix = matrix

    def on_epoch_begin(self, state):
        state.label_transition = self.matrix


def test_forward_correction_learns_the_true_classes_from_systematically_flipped_labels(tiny_model_dir, tmp_path):
    # Every training label is moved to the next class (food -> sport -> tech -> food); validation and test
    # are clean. Told the transition, the model learns the true classes; plain training learns the flip.
    flip = {"food": "sport", "sport": "tech", "tech": "food"}
    files = {
        "train": write_csv(tmp_path / "train.csv", [(t, flip[y]) for t, y in synthetic_rows(90, 0)]),
        "validation": write_csv(tmp_path / "val.csv", synthetic_rows(30, 1)),
        "test": write_csv(tmp_path / "test.csv", synthetic_rows(30, 2)),
    }
    transition = np.full((3, 3), 0.05)  # T[true, given]; ids in label order: food 0, sport 1, tech 2
    for true, given in flip.items():
        transition[sorted(flip).index(true), sorted(flip).index(given)] = 0.9
    corrected = autoft.train(
        tiny_config(tiny_model_dir, files, tmp_path / "corrected", **FAST), callback=Transition(transition)
    )
    plain = autoft.train(tiny_config(tiny_model_dir, files, tmp_path / "plain", **FAST))
    assert corrected.metrics["test"]["macro_f1"] >= 0.9
    assert plain.metrics["test"]["macro_f1"] <= 0.2


class KeepHalf(TrainerCallback):
    """Leaves every other sample out and records the learning rate after each step."""

    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_epoch_begin(self, state):
        state.weights = (np.arange(state.n_samples) % 2 == 0).astype(float)

    def on_step_end(self, state, output):
        self.rates.append(state.learning_rate)


def test_the_schedule_follows_the_planned_epochs_when_a_callback_leaves_samples_out(
    tiny_model_dir, classification_files, tmp_path
):
    # 90 samples, batch 8: 12 steps an epoch planned, 6 taken with half left out. The rate must still warm
    # up over the first tenth of the run and decay to zero at its end (not stop halfway down).
    callback = KeepHalf()
    autoft.train(
        tiny_config(
            tiny_model_dir,
            classification_files,
            tmp_path / "run",
            epochs=3,
            learning_rate=1e-3,
            early_stopping_patience=None,
        ),
        callback=callback,
    )
    assert len(callback.rates) == 3 * 6
    assert max(callback.rates) == pytest.approx(1e-3, rel=0.1)
    assert callback.rates[-1] == pytest.approx(0.0, abs=1e-9)
    assert callback.rates[0] < callback.rates[1] and callback.rates[2] > callback.rates[-2]


class BadEpoch(TrainerCallback):
    """Teaches one epoch a wrong label (class 0 for every sample), so validation falls; records each step's rate
    and, at each epoch's start, the validation metric of the weights the epoch starts from."""

    def __init__(self, validation, bad: set[int]) -> None:
        self.validation, self.bad = validation, bad
        self.rates: dict[int, list[float]] = {}
        self.start: dict[int, float] = {}

    def on_epoch_begin(self, state):
        self.start[state.epoch] = state.evaluate(self.validation)[0]["macro_f1"]
        if state.epoch in self.bad:
            state.relabels = dict.fromkeys(range(state.n_samples), 0)

    def on_step_end(self, state, output):
        self.rates.setdefault(state.epoch, []).append(state.learning_rate)


@pytest.mark.parametrize("on_plateau", ["rollback", "continue"])
def test_after_an_epoch_that_made_validation_worse_the_loop_goes_back_to_the_best_weights_at_half_the_rate(
    tiny_model_dir, classification_files, tmp_path, on_plateau
):
    from autoft.data.loading import load_examples

    validation = load_examples(classification_files["validation"], task="classification")
    callback = BadEpoch(validation, bad={3})
    run = autoft.train(
        tiny_config(
            tiny_model_dir,
            classification_files,
            tmp_path / "run",
            epochs=6,
            learning_rate=5e-3,
            warmup_ratio=0.0,
            early_stopping_patience=None,
            early_stopping_on="metric",
            on_plateau=on_plateau,
        ),
        callback=callback,
    )
    history = [e["validation"]["macro_f1"] for e in run.metrics["epochs"]]
    assert history[2] < max(history[:2]) - 0.3, history  # the bad epoch made validation fall
    planned = [5e-3 * (1 - ((epoch - 1) * 12 + 1) / (6 * 12)) for epoch in range(1, 7)]  # each epoch's first rate
    if on_plateau == "continue":
        assert run.metrics["rollbacks"] == []
        assert callback.start[4] == pytest.approx(history[2])  # epoch 4 goes on from the bad epoch's weights
        assert [callback.rates[e][0] for e in range(1, 7)] == pytest.approx(planned, rel=1e-6)
        return
    assert run.metrics["rollbacks"][0] == 3
    assert callback.start[4] == pytest.approx(max(history[:2]))  # back to the best weights, not the bad epoch's
    assert history[3] >= max(history[:2]) - 0.05
    halvings = [sum(1 for r in run.metrics["rollbacks"] if r < epoch) for epoch in range(1, 7)]
    assert halvings[3] == 1
    assert [callback.rates[e][0] for e in range(1, 7)] == pytest.approx(
        [rate * 0.5**h for rate, h in zip(planned, halvings)], rel=1e-6
    )
    assert run.metrics["best_epoch"] != 3


def test_the_loop_goes_back_to_a_best_epoch_once(tiny_model_dir, classification_files, tmp_path):
    from autoft.data.loading import load_examples

    # Two bad epochs in a row: the first sends the loop back to epoch 2 at half the rate; the second falls below
    # epoch 2 again, and the loop goes on from there (the fall is then noise or the end of learning).
    callback = BadEpoch(load_examples(classification_files["validation"], task="classification"), bad={3, 4})
    run = autoft.train(
        tiny_config(
            tiny_model_dir,
            classification_files,
            tmp_path / "run",
            epochs=6,
            learning_rate=5e-3,
            warmup_ratio=0.0,
            early_stopping_patience=None,
            early_stopping_on="metric",
            on_plateau="rollback",
        ),
        callback=callback,
    )
    history = [e["validation"]["macro_f1"] for e in run.metrics["epochs"]]
    assert history[2] < history[1] and history[3] < history[1], history
    assert run.metrics["rollbacks"][0] == 3 and 4 not in run.metrics["rollbacks"]
    assert callback.start[5] == pytest.approx(history[3])


class SearchFirstRows(TrainerCallback):
    def on_train_begin(self, state):
        state.search_rows = np.arange(30)


def test_the_range_test_trains_on_the_rows_a_callback_chose(
    tiny_model_dir, classification_files, tmp_path, monkeypatch
):
    from autoft.training import plan

    searched, original = [], plan.range_test

    def recording(model, adapter, features, *args, **kwargs):
        searched.append([list(f["input_ids"]) for f in features])
        return original(model, adapter, features, *args, **kwargs)

    monkeypatch.setattr(plan, "range_test", recording)
    # Six epochs: a plan large enough for a range test (24 steps of 4 rows are a fifth of 6 x 90 rows).
    config = tiny_config(tiny_model_dir, classification_files, tmp_path / "a", learning_rate="auto", epochs=6)
    autoft.train(config, callback=SearchFirstRows())
    plain = autoft.train(
        tiny_config(tiny_model_dir, classification_files, tmp_path / "b", learning_rate="auto", epochs=6)
    )
    chosen, every = searched
    assert len(chosen) == 30 and chosen == every[:30] and len(every) == 90
    run_plan = json.loads((tmp_path / "a" / "training_plan.json").read_text())
    assert "of the 30 a callback chose" in run_plan["choices"]["learning_rate"]["how"]
    assert "callback" not in plain.metrics["auto"]["learning_rate"]["how"]
