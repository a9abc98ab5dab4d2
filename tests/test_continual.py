"""autoft update: replay, weight penalties, head growth, lineage, the promotion gate and the lock."""

import json
import logging
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import autoft
from autoft.cli import main
from autoft.continual import _child_config, choose_replay, history, latest, lineage_data, lineage_lock, update
from autoft.data.loading import Example
from autoft.errors import RunDirError
from tests.conftest import TOPICS, synthetic_rows, tiny_config, write_conll, write_csv

MUSIC = ["guitar", "song", "band", "concert", "album", "drum", "singer", "piano"]


def music_rows(n, seed):
    rng = random.Random(seed)
    return [(" ".join(rng.choices(MUSIC, k=6) + rng.choices(["the", "a", "today"], k=3)), "music") for _ in range(n)]


@pytest.fixture()
def parent(tiny_model_dir, classification_files, tmp_path):
    autoft.train(tiny_config(tiny_model_dir, classification_files, tmp_path / "parent", epochs=8, learning_rate=2e-3))
    return tmp_path / "parent"


def _snapshot(folder):
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob("*")}


def test_replay_never_takes_a_flagged_sample_and_keeps_to_the_budget():
    value = np.array([5.0, 9.0, 1.0, 8.0, 7.0, 3.0])
    flagged = np.array([False, True, False, False, False, False])
    np.testing.assert_array_equal(choose_replay(value, flagged, 3, "value", 0), [0, 3, 4])  # the best unflagged
    for seed in range(5):
        drawn = choose_replay(value, flagged, 3, "random", seed)
        assert len(drawn) == 3 and 1 not in drawn
    assert len(choose_replay(value, flagged, 99, "value", 0)) == 5  # never more than the unflagged
    assert len(choose_replay(value, flagged, 0, "value", 0)) == 0


def test_weight_penalty_is_zero_at_the_previous_weights_and_pulls_back_toward_them():
    from autoft.training.regularizers import WeightPenalty, trainable_weights

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    reference = trainable_weights(model)
    fisher = {name: torch.full_like(w, 2.0) for name, w in reference.items()}
    for penalty in (WeightPenalty(reference, 1.0), WeightPenalty(reference, 1.0, fisher)):
        assert float(penalty.penalty(model).detach()) == 0.0
    with torch.no_grad():
        model[0].weight += 0.1
    l2, ewc = WeightPenalty(reference, 1.0).penalty(model), WeightPenalty(reference, 1.0, fisher).penalty(model)
    assert l2.item() == pytest.approx(0.5 * 12 * 0.01, rel=1e-5) and ewc.item() == pytest.approx(2 * l2.item())
    ewc.backward()
    assert torch.all(model[0].weight.grad > 0)  # descending the penalty moves the weights back


def test_the_fisher_diagonal_is_normalised_and_a_grown_head_is_pulled_on_its_old_rows(tiny_model_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from autoft.modeling.heads import grow_head
    from autoft.tasks.classification import ClassificationAdapter
    from autoft.training.regularizers import WeightPenalty, fisher_diagonal, trainable_weights

    labels = ["food", "sport", "tech"]
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_model_dir, num_labels=3, id2label=dict(enumerate(labels))
    )
    adapter = ClassificationAdapter(labels, AutoTokenizer.from_pretrained(tiny_model_dir), max_length=32)
    features = adapter.encode([Example(t, label) for t, label in synthetic_rows(24, 0)])
    fisher = fisher_diagonal(model, adapter, features, batch_size=8)
    total = sum(float(f.sum()) for f in fisher.values())
    assert total / sum(f.numel() for f in fisher.values()) == pytest.approx(1.0, rel=1e-4)
    penalty = WeightPenalty(trainable_weights(model), 1.0, fisher)
    grow_head(model, [*labels, "music"])
    assert penalty.penalty(model).item() == 0.0  # the new row is free, the old ones unchanged
    # NER features carry word bookkeeping beside the model's inputs
    from transformers import AutoModelForTokenClassification

    from autoft.tasks.ner import TokenClassificationAdapter
    from tests.conftest import NER_SENTENCES

    tags = ["O", "B-LOC", "B-ORG", "B-PER", "I-LOC", "I-PER"]
    ner = TokenClassificationAdapter(tags, AutoTokenizer.from_pretrained(tiny_model_dir), max_length=32)
    tagger = AutoModelForTokenClassification.from_pretrained(tiny_model_dir, num_labels=len(tags))
    features = ner.encode([Example(text.split(), t) for text, t in NER_SENTENCES])
    fisher = fisher_diagonal(tagger, ner, features, batch_size=2)
    assert sum(float(f.sum()) for f in fisher.values()) > 0


def test_weight_aligning_gives_the_new_rows_the_old_rows_mean_norm_and_auto_keeps_the_best(tiny_model_dir):
    from transformers import AutoModelForSequenceClassification

    from autoft.continual.aligning import HeadAligning
    from autoft.modeling.heads import _head, align_new_rows, grow_head
    from autoft.training.callbacks import TrainState

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2)
    grow_head(model, ["LABEL_0", "LABEL_1", "new"], seed=0)
    layer = _head(model)[2]
    with torch.no_grad():
        layer.weight[2] = layer.weight[:2].mean(0) * 5  # trained on the new label's data: a long row
        layer.bias[2] = 3.0
    trained = {name: value.detach().clone() for name, value in layer.named_parameters()}
    gamma = align_new_rows(model, 2, bias=True)
    norms = layer.weight.norm(dim=1)
    assert float(norms[2]) == pytest.approx(float(norms[:2].mean()), rel=1e-5) and gamma < 1
    assert float(layer.bias[2]) == pytest.approx(float(layer.bias[:2].mean()), abs=1e-6)

    def evaluate_preferring(aligned_scores_higher):
        def evaluate(examples, features=None):
            aligned = float(layer.weight[2].norm()) < float(trained["weight"][2].norm()) - 1e-6
            return {"macro_f1": 0.5 + (0.1 if aligned and aligned_scores_higher else 0.0)}, []

        return evaluate

    # auto: the candidate validation prefers, the head left set to it; a tie keeps the fewer changes (norms and
    # norms+bias score alike here, so norms; nothing better than as trained: off).
    for aligned_scores_higher, chosen in ((True, "norms"), (False, "off")):
        with torch.no_grad():
            for name, value in layer.named_parameters():
                value.copy_(trained[name])
        callback = HeadAligning(model, 2, [], mode="auto", metric="macro_f1")
        callback.on_train_end(TrainState(n_samples=1, evaluate=evaluate_preferring(aligned_scores_higher)))
        assert callback.record["chosen"] == chosen and set(callback.record["validation"]) == {
            "off",
            "norms",
            "norms+bias",
        }
        assert (float(layer.weight[2].norm()) < float(trained["weight"][2].norm())) == (chosen == "norms")
        assert float(layer.bias[2]) == 3.0  # the bias moved in neither
        assert callback.run_metrics()["align"]["chosen"] == chosen
        assert (callback.record["scale"] == 1.0) == (chosen == "off")  # the scale applied, 1 when none was


def test_head_growth_keeps_the_old_label_ids(tiny_model_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from autoft.modeling.heads import grow_head

    labels = ["food", "sport", "tech"]
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_model_dir, num_labels=3, id2label=dict(enumerate(labels))
    ).eval()
    inputs = AutoTokenizer.from_pretrained(tiny_model_dir)(["pizza and cheese"], return_tensors="pt")
    with torch.no_grad():
        before = model(**inputs).logits
        grow_head(model, [*labels, "music"])
        after = model(**inputs).logits
    assert after.shape == (1, 4)
    torch.testing.assert_close(after[:, :3], before)
    assert model.config.id2label == {0: "food", 1: "sport", 2: "tech", 3: "music"}
    assert model.config.label2id["music"] == 3


def test_update_learns_a_new_label_keeps_the_old_and_records_the_lineage(parent, tmp_path):
    new = write_csv(tmp_path / "new.csv", music_rows(30, 0) + synthetic_rows(6, 5))
    new_val = write_csv(tmp_path / "new_val.csv", music_rows(8, 1) + synthetic_rows(6, 6))
    # As if the parent's agent had left ten samples out: replay must never pick them.
    old_rows = synthetic_rows(90, 0)
    train_csv = str(Path(autoft.load(parent).config.data.train))
    flagged_texts = {old_rows[i][0] for i in range(10)}
    write_csv(
        parent / "data_values.csv",
        [(f"{train_csv}:{i + 2}", str(i < 10)) for i in range(90)],
        header=("origin", "flagged"),
    )
    before = _snapshot(parent)
    result = update(
        parent,
        new,
        validation=new_val,
        output=tmp_path / "child",
        overrides=[
            "continual.replay_budget=0.2",
            "continual.method=ewc",
            "continual.gate=null",
            "continual.distill=0",
            "training.epochs=auto",
        ],
    )  # (the parent's explicit 8 would stay)
    child = result.run
    assert child.labels == ["food", "sport", "tech", "music"]  # old ids first, unchanged
    assert autoft.load(tmp_path / "child").labels == child.labels
    replayed = (tmp_path / "child" / "replay.csv").read_text().splitlines()
    assert len(replayed) - 1 == round(0.2 * 90) and replayed[0] == "text,label"
    assert not flagged_texts & {line.split(",")[0] for line in replayed[1:]}
    train, validation, runs = lineage_data(tmp_path / "child")  # each run's own data, not what it replayed
    assert (len(train), len(validation)) == (90 + 36, 30 + 14) and runs == [
        parent.resolve(),
        (tmp_path / "child").resolve(),
    ]
    record = json.loads((tmp_path / "child" / "lineage.json").read_text())
    assert record["parent"] == str(parent.resolve()) and record["root"] == str(parent.resolve())
    assert record["new_labels"] == ["music"] and record["method"] == "ewc" and record["promoted"]
    # Each replayed sample weighs the square root of the old samples it stands for (90 old, 18 replayed).
    assert record["replay"]["weight"] == pytest.approx(5**0.5) and record["distill"] == 0
    # The new label's head row was aligned with the old ones, or not, by what scored best on validation.
    align = record["align"]
    assert align["mode"] == "auto" and set(align["validation"]) == {"off", "norms", "norms+bias"}
    assert align["validation"][align["chosen"]] == max(align["validation"].values()) and align["rows"] == 30 + 14
    assert record["scores"]["old_validation"]["parent"] is not None
    assert record["scores"]["new_validation"]["update"] is not None
    assert child.predict(["guitar song band concert album"])[0]["label"] == "music"
    assert latest(parent) == (tmp_path / "child").resolve()
    assert [entry["run"] for entry in history(tmp_path / "child")] == [
        str(parent.resolve()),
        str((tmp_path / "child").resolve()),
    ]
    # The parent's own files are untouched (the lineage's root gains only its lineage files).
    after = {
        p: t for p, t in _snapshot(parent).items() if p.parts[0] not in ("lineage.jsonl", "latest", ".update.lock")
    }
    assert after == before
    # A second update, from the lineage's latest, joins the same lineage, named after the root by default.
    assert (
        main(
            [
                "update",
                str(parent),
                "--latest",
                "--data",
                str(new),
                "--validation",
                str(new_val),
                "--set",
                "continual.replay_by=random",
            ]
        )
        == 0
    )
    assert len(history(parent)) == 3
    record = json.loads((tmp_path / "parent-update-2" / "lineage.json").read_text())
    assert record["parent"] == str((tmp_path / "child").resolve())


def test_the_gate_keeps_latest_on_the_parent_when_the_update_is_worse(parent, tmp_path, capsys):
    new = write_csv(tmp_path / "new.csv", [(text, "tech") for text, _ in synthetic_rows(30, 3)])  # all one label
    code = main(
        [
            "update",
            str(parent),
            "--data",
            str(new),
            "--output",
            str(tmp_path / "bad"),
            "--set",
            "continual.replay_budget=0",
            "--set",
            "training.learning_rate=0.01",
            "--set",
            "training.epochs=3",
            "--set",
            "continual.gate=0.01",
        ]
    )
    assert code == 0
    record = json.loads((tmp_path / "bad" / "lineage.json").read_text())
    assert not record["promoted"] and "old_validation" in record["gate"]["why"]
    assert latest(parent) == parent.resolve()  # the parent stays the lineage's latest
    assert (tmp_path / "bad" / "model").exists()  # the candidate is kept for inspection
    out = capsys.readouterr().out
    assert "NOT promoted" in out
    assert main(["lineage", str(tmp_path / "bad")]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("*") and "NOT PROMOTED" in table[1]


def test_two_updates_cannot_both_hold_the_lineage_lock(parent, tmp_path):
    new = write_csv(tmp_path / "new.csv", music_rows(10, 0))
    with lineage_lock(parent):
        with pytest.raises(RunDirError, match="another autoft update of this lineage is running"), lineage_lock(parent):
            pass
        with pytest.raises(RunDirError, match="another autoft update"):
            update(parent, new, output=tmp_path / "child")
    assert not (tmp_path / "child").exists()


def test_an_unlabelled_update_learns_from_the_parents_pseudo_labels_from_the_first_epoch(parent, tmp_path, capsys):
    # What `autoft serve --collect` keeps: daily JSON lines of served inputs with what the server said.
    collected = tmp_path / "collected"
    collected.mkdir()
    for day, seed in (("2026-12-01", 7), ("2026-12-02", 8)):
        (collected / f"served-{day}.jsonl").write_text(
            "".join(
                json.dumps({"text": text, "served": {"prediction": {"label": "x"}}}) + "\n"
                for text, _ in synthetic_rows(24, seed)
            )
        )
    before = lineage_data(parent)
    code = main(
        [
            "update",
            str(parent),
            "--unlabeled",
            str(collected),
            "--output",
            str(tmp_path / "child"),
            "--set",
            "continual.replay_budget=0.3",
            "--set",
            "training.epochs=2",
            "--set",
            "continual.gate=null",
        ]
    )
    assert code == 0 and "promoted" in capsys.readouterr().out
    child = tmp_path / "child"
    record = json.loads((child / "lineage.json").read_text())
    assert record["unlabeled"]["texts"] == 48 and record["unlabeled"]["mode"] == "agent"
    assert record["data"]["train"] == [] and record["data"]["unlabeled"] == [str(collected.resolve())]
    assert record["scores"]["new_validation"]["rows"] == 0  # validated on the lineage's data alone
    assert record["scores"]["old_validation"]["update"] is not None
    # The parent's pseudo-labels train from the first epoch: the parent is a finished model, consistent already.
    admits = [d for d in json.loads((child / "self_training.json").read_text())["decisions"] if d["event"] == "admit"]
    assert admits[0]["epoch"] == 1 and admits[0]["admitted"] > 0 and admits[0]["target_precision"] is not None
    # The pool, the replay and the lineage validation stay with the run, named by its config...
    config = autoft.load(child).config
    assert Path(config.data.unlabeled) == (child / "unlabeled.jsonl").resolve()
    assert Path(config.data.validation) == (child / "validation.csv").resolve()
    assert [Path(f).name for f in config.data.train_files] == ["replay.csv"]
    assert len((child / "unlabeled.jsonl").read_text().splitlines()) == 48
    # ... and the lineage learned no new labelled data from it.
    after = lineage_data(child)
    assert [len(x) for x in after[:2]] == [len(x) for x in before[:2]]


def test_an_unlabelled_update_needs_texts_and_replayed_labels(parent, tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(text for text, _ in synthetic_rows(6, 9)) + "\n")
    cases = [
        (["update", str(parent)], "give new labelled data, unlabelled texts (--unlabeled), or both"),
        (["update", str(parent), "--unlabeled", str(tmp_path / "missing")], "--unlabeled: "),
        (
            ["update", str(parent), "--unlabeled", str(texts), "--set", "continual.replay_budget=0"],
            "continual.replay_budget is 0",
        ),
    ]
    for argv, message in cases:
        assert main([*argv, "--output", str(tmp_path / "out")]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
        assert not (tmp_path / "out").exists()


def test_bad_input_is_one_line_exit_2_and_leaves_the_parent_untouched(parent, tmp_path, capsys):
    before = _snapshot(parent)
    empty = tmp_path / "empty.csv"
    empty.write_text("text,label\n")
    wrong_column = write_csv(tmp_path / "wrong.csv", music_rows(5, 0), header=("text", "category"))
    half = tmp_path / "half"
    half.mkdir()
    (half / "config.yaml").write_text((parent / "config.yaml").read_text())
    cases = [
        (["update", str(parent), "--data", str(empty)], "no examples found"),
        (["update", str(parent), "--data", str(wrong_column)], "label"),
        (["update", str(parent), "--data", str(tmp_path / "missing.csv")], "not found"),
        (["update", str(parent), "--data", str(write_conll(tmp_path / "ner.conll"))], "token classification data"),
        (["update", str(half), "--data", str(wrong_column)], "not a finished autoft run directory"),
        (["update", str(tmp_path / "nowhere"), "--data", str(empty)], "not a finished autoft run directory"),
    ]
    for argv, message in cases:
        assert main([*argv, "--output", str(tmp_path / "out")]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
        assert not (tmp_path / "out").exists()
    after = {p: t for p, t in _snapshot(parent).items() if p.parts[0] != ".update.lock"}
    assert after == before


def test_update_of_a_lora_run_continues_its_adapter(tiny_model_dir, classification_files, tmp_path):
    autoft.train(
        tiny_config(
            tiny_model_dir, classification_files, tmp_path / "parent", peft="lora", learning_rate=1e-2, epochs=2
        )
    )
    new = write_csv(tmp_path / "new.csv", synthetic_rows(30, 9))
    result = update(tmp_path / "parent", new, output=tmp_path / "child")
    assert result.run.is_peft and (tmp_path / "child" / "model" / "adapter_config.json").exists()
    assert result.record["distill"] == 0.0  # distill auto: no new label, no distillation
    loaded = autoft.load(tmp_path / "child")
    assert loaded.predict(["pizza cheese soup"]) == result.run.predict(["pizza cheese soup"])
    assert sorted(TOPICS) == loaded.labels


def test_replay_by_class_gives_every_old_class_its_share_and_never_a_flagged_sample():
    groups = np.array(["a"] * 10 + ["b"] * 4 + ["c"] * 2)
    value = np.arange(16, dtype=float)
    flagged = np.zeros(16, dtype=bool)
    flagged[[15, 13]] = True  # c's best and b's best
    chosen = choose_replay(value, flagged, 5, "value", 0, groups)
    counts = {g: int((groups[chosen] == g).sum()) for g in "abc"}
    assert counts == {"a": 3, "b": 1, "c": 1} and not flagged[chosen].any()
    np.testing.assert_array_equal(chosen, [7, 8, 9, 12, 14])  # the best unflagged of each class
    for seed in range(3):
        drawn = choose_replay(value, flagged, 5, "random", seed, groups)
        assert {g: int((groups[drawn] == g).sum()) for g in "abc"} == counts and not flagged[drawn].any()
    assert len(choose_replay(value, flagged, 2, "value", 0, groups)) == 2  # fewer than classes: the biggest first
    assert len(choose_replay(value, flagged, 99, "value", 0, groups)) == 14


def test_herding_picks_exemplars_whose_mean_matches_their_class_in_proportion():
    from autoft.continual.replay import herding

    rng = np.random.default_rng(0)
    a = np.array([1.0, 0.0]) + 0.01 * rng.standard_normal((6, 2))  # two thirds of the class
    b = np.array([0.0, 1.0]) + 0.01 * rng.standard_normal((3, 2))  # a third
    features = np.concatenate([a, b])
    chosen = herding(features, 3)
    assert len(set(chosen.tolist())) == 3
    assert int((chosen < 6).sum()) == 2  # two of the big mode, one of the small: the class's make-up
    assert len(herding(features, 99)) == 9  # never more than there are
    # The highest "value" (here: the first coordinate) would have taken three of the big mode and none of the other.
    groups = np.array(["x"] * 9 + ["y"] * 3)
    both = np.concatenate([features, rng.standard_normal((3, 2))])
    picked = choose_replay(both, np.zeros(12, dtype=bool), 4, "herding", 0, groups)
    assert int((picked < 6).sum()) == 2 and int((picked >= 9).sum()) == 1


def test_layer_inputs_are_what_the_output_layer_receives_in_the_features_order(parent):
    from autoft.modeling.heads import output_layer
    from autoft.training.inference import layer_inputs

    run = autoft.load(parent)
    texts = ["pizza cheese soup with bread and more words than the others", "goal", "laptop screen keyboard"]
    features = run.adapter.encode([autoft.data.loading.Example(text=t, label="food") for t in texts])
    got = layer_inputs(run.model, output_layer(run.model), run.adapter, features)
    run.model.eval()
    with torch.no_grad():
        for row, feature in zip(got, features):  # one at a time: no padding, no reordering
            batch = run.adapter.collate([feature])
            batch.pop("labels", None)
            pooled = run.model.base_model(**batch).pooler_output[0]
            np.testing.assert_allclose(row, pooled.numpy(), atol=1e-5)


def test_an_update_can_replay_the_exemplars_that_represent_each_class(parent, tmp_path):
    new = write_csv(tmp_path / "new.csv", music_rows(20, 0))
    result = update(
        parent,
        new,
        output=tmp_path / "child",
        overrides=["continual.replay_by=herding", "continual.replay_budget=0.2", "continual.gate=null"],
    )
    record = result.record["replay"]
    assert record["by"] == "herding" and "herding" in record["how"] and record["samples"] == round(0.2 * 90)
    replayed = (tmp_path / "child" / "replay.csv").read_text().splitlines()[1:]
    assert {line.rsplit(",", 1)[1] for line in replayed} == {"food", "sport", "tech"}  # every old class


def test_an_auto_replay_budget_replays_as_many_old_samples_as_the_update_brings_new_ones(parent, tmp_path):
    from autoft.continual.replay import replay_count

    assert replay_count("auto", 90, 20) == 20
    assert replay_count("auto", 90, 3) == 9  # at least a tenth of the old data
    assert replay_count("auto", 10, 50) == 10  # at most all of it
    assert replay_count(0.2, 90, 5) == 18  # a share: of the old data, whatever comes new
    new = write_csv(tmp_path / "new.csv", music_rows(20, 0))
    result = update(parent, new, output=tmp_path / "child", overrides=["continual.replay_budget=auto"])
    record = result.record["replay"]
    assert (record["budget"], record["samples"], record["of"]) == ("auto", 20, 90)
    assert record["weight"] == pytest.approx((90 / 20) ** 0.5)
    assert len((tmp_path / "child" / "replay.csv").read_text().splitlines()) == 1 + 20


def test_a_replayed_sample_weighs_the_root_all_or_a_set_number_of_the_old_samples_it_stands_for(parent, tmp_path):
    from autoft.config import ContinualConfig
    from autoft.continual.replay import replay_weight

    assert replay_weight("auto", 90, 10) == pytest.approx(3.0)
    assert replay_weight("full", 90, 10) == pytest.approx(9.0)
    assert replay_weight(2.5, 90, 10) == 2.5
    assert ContinualConfig(replay_weight=" Full ").replay_weight == "full"
    with pytest.raises(ValueError, match="or 'full'"):
        ContinualConfig(replay_weight="all")
    new = write_csv(tmp_path / "new.csv", music_rows(20, 0))
    result = update(parent, new, output=tmp_path / "child", overrides=["continual.replay_weight=full"])
    record = result.record["replay"]
    assert record["weight"] == pytest.approx(record["of"] / record["samples"])


def test_row_weights_scale_the_rows_loss_whatever_weights_the_callbacks_set():
    from autoft.training.callbacks import CallbackList, RowWeights, TrainerCallback, TrainState
    from autoft.training.epoch import drawn_rows, loss_scales

    class LeaveOut(TrainerCallback):  # an agent: its weights, re-set every epoch (or step), are its own
        def on_epoch_begin(self, state):
            state.weights = np.array([1.0, 0.0, 1.0, 1.0])

    state = TrainState(n_samples=4)
    callbacks = CallbackList([LeaveOut(), RowWeights([1, 3], 5.0), RowWeights([3], 2.0)])
    callbacks.on_train_begin(state)
    callbacks.on_epoch_begin(state)
    np.testing.assert_array_equal(state.row_scale, [1, 5, 1, 10])
    np.testing.assert_array_equal(state.weights, [1, 0, 1, 1])
    pool = drawn_rows(state)
    np.testing.assert_array_equal(pool, [0, 2, 3])  # a left-out row stays out
    scales = loss_scales(state, pool, torch.device("cpu")).numpy()
    np.testing.assert_allclose(scales, np.array([1, 5, 1, 10]) / 4)  # over their mean among the rows drawn
    state.row_scale = np.array([1.0, 1.0, 0.0, 1.0])
    np.testing.assert_array_equal(drawn_rows(state), [0, 3])  # a scale of 0 leaves a row out too


def _trained_tensors(task: str, model: Path, data: Path, out: Path, factor: float | None) -> dict[str, torch.Tensor]:
    """The tensors a tiny run saves, its first four rows' loss scaled by ``factor`` (None: no callback), one row a
    batch: no batch mixes scaled rows with others, as length-grouped batches of two tasks' rows seldom do."""
    from safetensors.torch import load_file

    from autoft.training.callbacks import RowWeights
    from tests.families import FAMILIES

    family = FAMILIES[task]
    data.mkdir(exist_ok=True)
    files = family.write(data).files
    config = {**tiny_config(model, files, out, task, batch_size=1), **family.settings}
    autoft.train(config, callbacks=[] if factor is None else [RowWeights([0, 1, 2, 3], factor)])
    return {name: t for f in sorted((out / "model").glob("*.safetensors")) for name, t in load_file(f).items()}


@pytest.mark.parametrize("task", ["classification", "generation"])
def test_a_row_scale_weighs_in_batches_that_hold_only_scaled_rows(task, tmp_path, request):
    """A continual update's replayed rows weigh ``continual.replay_weight`` times the new rows' also where a batch
    holds replayed rows alone (a generative update's, grouped by length): before, a batch's weights were
    normalised within it, and the generative stream's updates trained as if unweighted."""
    from tests.families import FAMILIES

    model = request.getfixturevalue(FAMILIES[task].model)
    runs = {
        factor: _trained_tensors(task, model, tmp_path / "data", tmp_path / f"run-{factor}", factor)
        for factor in (None, 1.0, 10.0)
    }
    assert runs[None].keys() == runs[10.0].keys() and runs[None]
    assert all(torch.equal(runs[None][name], runs[1.0][name]) for name in runs[None])  # a factor of 1 is none
    assert any(not torch.allclose(runs[1.0][name], runs[10.0][name]) for name in runs[None])


def test_distillation_is_zero_against_the_teacher_and_counts_only_its_labels_and_tagged_tokens():
    from types import SimpleNamespace

    from autoft.training.regularizers import Distillation

    class Fixed(torch.nn.Module):  # a "model" whose logits are a parameter, whatever the batch
        def __init__(self, logits):
            super().__init__()
            self.logits = torch.nn.Parameter(logits.clone())

        def forward(self, **batch):
            return SimpleNamespace(logits=self.logits)

    torch.manual_seed(0)
    old = torch.randn(4, 3)
    distill = Distillation(Fixed(old), strength=1.0)
    rows = torch.arange(4)
    grown = torch.cat([old, torch.randn(4, 2)], dim=1)  # two new labels: not the teacher's business
    assert distill.penalty({}, grown, torch.zeros(4), rows).item() == pytest.approx(0.0, abs=1e-6)
    moved = grown.clone().requires_grad_(True)
    penalty = distill.penalty({}, moved + torch.tensor([3.0, 0, 0, 0, 0]), torch.zeros(4), rows)
    assert penalty.item() > 0.1
    penalty.backward()
    assert moved.grad[:, 3:].abs().sum() == 0  # the new labels' logits are free
    # on some rows alone (a continual update's replayed samples): the others' outputs are free, the batch's mean
    replayed = Distillation(Fixed(old), strength=1.0, rows=[7, 9])
    index = torch.tensor([9, 2, 7, 5])  # the batch's training rows: the first and third are replayed
    shifted = grown.clone()
    shifted[[1, 3]] += torch.randn(2, 5) * 5
    assert replayed.penalty({}, shifted, torch.zeros(4), index).item() == pytest.approx(0.0, abs=1e-6)
    shifted[0, 0] += 3
    alone = replayed.penalty({}, shifted, torch.zeros(4), index).item()
    assert alone > 0.1
    assert distill.penalty({}, shifted, torch.zeros(4), rows).item() > alone  # every row counts there
    assert replayed.penalty({}, shifted, torch.zeros(4), torch.tensor([1, 2, 3, 4])).item() == 0.0
    tokens = torch.randn(2, 5, 3)  # NER: only tagged positions (label != -100) count
    distill = Distillation(Fixed(tokens), strength=1.0)
    labels = torch.tensor([[0, 1, -100, -100, -100], [2, -100, -100, -100, -100]])
    student = tokens.clone()
    student[:, 2:] += torch.randn(2, 3, 3) * 5  # differs only where nothing is tagged...
    student[1, 1] += 5  # ...and at an untagged sub-word
    assert distill.penalty({}, student, labels, torch.arange(2)).item() == pytest.approx(0.0, abs=1e-6)
    student[0, 0, 0] += 3
    assert distill.penalty({}, student, labels, torch.arange(2)).item() > 0
    sentence = Distillation(Fixed(tokens), strength=1.0, rows=[1])  # the second sentence alone
    assert sentence.penalty({}, student, labels, torch.arange(2)).item() == pytest.approx(0.0, abs=1e-6)


def test_an_update_can_distil_on_its_replayed_samples_alone(parent, tmp_path, caplog):
    new = write_csv(tmp_path / "new.csv", music_rows(20, 0))
    with caplog.at_level(logging.INFO, logger="autoft"):
        result = update(parent, new, output=tmp_path / "child", overrides=["continual.distill_on=replayed"])
    assert result.record["distill"] == 0.25  # a new label: auto distils, at its lightest with 20 rows
    counted = re.search(r"distillation on the (\d+) replayed samples alone", caplog.text)
    assert counted and 15 <= int(counted[1]) <= 20  # the 20 replayed, less any a validation split took
    assert result.run.labels[-1] == "music"


def test_distillation_weight_auto_follows_the_rows_each_new_label_brings():
    from types import SimpleNamespace

    from autoft.continual.updates import _distill_weight

    def rows(per_label: int, labels: list[str]) -> list[Example]:
        return [Example(f"{label} {i}", label) for label in labels for i in range(per_label)]

    def weight(setting: float | str, new: list[Example], added: list[str]) -> float:
        return _distill_weight(SimpleNamespace(distill=setting, distill_on="all"), added, [], new)

    old = rows(50, ["a"])  # rows of a label the parent knows do not count
    assert weight(0.5, rows(3, ["x"]), ["x"]) == 0.5  # a number is what it says
    assert weight("auto", old, []) == 0.0  # no new label: nothing to protect the old ones from
    answers = [Example("the old oak", [{"text": "oak", "start": 8}], query="where?")]
    assert weight("auto", answers, []) == 0.0  # answers: no labels, none counted
    assert weight("auto", old + rows(3, ["x", "y"]), ["x", "y"]) == 1.0  # few rows each: full strength
    assert weight("auto", old + rows(8, ["x", "y"]), ["x", "y"]) == 1.0
    assert weight("auto", old + rows(12, ["x", "y"]), ["x", "y"]) == pytest.approx((8 / 12) ** 2)
    assert weight("auto", old + rows(16, ["x", "y"]), ["x", "y"]) == pytest.approx(0.25)
    assert weight("auto", old + rows(64, ["x", "y"]), ["x", "y"]) == 0.25  # no lighter than measured
    tagged = [Example("a b", ["B-new", "O"])] * 16  # token tasks: a sentence that holds a new tag counts
    assert weight("auto", tagged, ["B-new"]) == pytest.approx(0.25)


def test_distilling_on_the_replayed_samples_without_replay_warns_and_records_none(parent, tmp_path, caplog):
    new = write_csv(tmp_path / "new.csv", music_rows(20, 0))
    overrides = ["continual.distill_on=replayed", "continual.replay_budget=0"]
    with caplog.at_level(logging.INFO, logger="autoft"):
        result = update(parent, new, output=tmp_path / "child", overrides=overrides)
    assert "replays no old samples: no distillation" in caplog.text
    assert "distillation on the" not in caplog.text
    assert result.record["distill"] == 0.0 and result.record["replay"]["samples"] == 0


def test_lora_per_task_stacks_an_adapter_per_update_and_grows_the_head(
    tiny_model_dir, classification_files, tmp_path, capsys
):
    from autoft.modeling.parameter_efficient import STACK

    autoft.train(
        tiny_config(
            tiny_model_dir, classification_files, tmp_path / "parent", peft="lora", learning_rate=1e-2, epochs=2
        )
    )
    new = write_csv(tmp_path / "new.csv", music_rows(30, 0) + synthetic_rows(6, 5))
    method = ["continual.method=lora-per-task", "continual.gate=null", "training.epochs=auto"]
    result = update(tmp_path / "parent", new, output=tmp_path / "child", overrides=method)
    child = result.run
    assert child.labels == [*sorted(TOPICS), "music"] and child.is_peft
    assert result.record["distill"] == 0.25  # distill auto: a new label (30 rows) competes with the old ones
    stack = json.loads((tmp_path / "child" / "model" / STACK).read_text())["adapters"]
    assert stack == [{"folder": "stack/0", "labels": sorted(TOPICS)}]
    assert (tmp_path / "child" / "model" / "stack" / "0" / "adapter_model.safetensors").exists()
    texts = ["guitar song band concert", "pizza cheese soup", "goal match team"]
    loaded = autoft.load(tmp_path / "child")
    assert loaded.predict(texts) == child.predict(texts)  # the stack folds back as it trained
    merged = autoft.load(tmp_path / "child").export(tmp_path / "merged", merge=True)
    from transformers import AutoModelForSequenceClassification

    plain = AutoModelForSequenceClassification.from_pretrained(merged).eval()
    inputs = loaded.adapter.tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        torch.testing.assert_close(plain(**inputs).logits, loaded.model(**inputs).logits, atol=1e-5, rtol=1e-5)
    # Only the new adapter and the head train: the parent's adapters are folded into the frozen base.
    parent_lora = {k: v for k, v in autoft.load(tmp_path / "parent").model.state_dict().items() if "lora_" in k}
    trained = {k: v for k, v in loaded.model.state_dict().items() if "lora_" in k}
    assert parent_lora.keys() == trained.keys() and any(not torch.equal(parent_lora[k], trained[k]) for k in trained)
    # A second update stacks both earlier adapters, each with the labels it was trained for.
    second = update(tmp_path / "child", new, output=tmp_path / "grandchild", overrides=method).run
    stack = json.loads((tmp_path / "grandchild" / "model" / STACK).read_text())["adapters"]
    assert [entry["labels"] for entry in stack] == [sorted(TOPICS), [*sorted(TOPICS), "music"]]
    assert autoft.load(tmp_path / "grandchild").predict(texts) == second.predict(texts)
    # A fully fine-tuned parent has no adapter to stack on: one line, exit 2.
    autoft.train(tiny_config(tiny_model_dir, classification_files, tmp_path / "full"))
    assert main(["update", str(tmp_path / "full"), "--data", str(new), "--set", "continual.method=lora-per-task"]) == 2
    assert "lora-per-task needs a parent trained with training.peft lora" in capsys.readouterr().err


def test_an_interrupted_update_resumes_to_the_uninterrupted_update(parent, tmp_path, monkeypatch):
    """`update --resume`: the update's loop (replayed rows weighted, EWC, distillation: a new label) checkpoints like any run, and a crash
    after an epoch resumes to the same model."""
    import autoft.training.loop as loop_module

    new = write_csv(tmp_path / "new.csv", music_rows(30, 0) + synthetic_rows(6, 5))
    new_val = write_csv(tmp_path / "new_val.csv", music_rows(8, 1) + synthetic_rows(6, 6))
    settings = [
        "continual.gate=null",
        "continual.method=ewc",
        "training.epochs=3",
        "training.early_stopping_patience=null",
    ]
    whole = update(parent, new, validation=new_val, output=tmp_path / "whole", overrides=settings).run.metrics
    real = loop_module.save_checkpoint

    def crash(path, **kwargs):
        real(path, **kwargs)
        if kwargs["state"]["epoch"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop_module, "save_checkpoint", crash)
    with pytest.raises(KeyboardInterrupt):
        update(parent, new, validation=new_val, output=tmp_path / "child", overrides=settings)
    assert (tmp_path / ".child.checkpoint" / "state.json").is_file()
    monkeypatch.setattr(loop_module, "save_checkpoint", real)
    resumed = update(
        parent, new, validation=new_val, output=tmp_path / "child", overrides=settings, resume=True
    ).run.metrics
    assert [(e["train_loss"], e["validation"]) for e in resumed["epochs"]] == [
        (e["train_loss"], e["validation"]) for e in whole["epochs"]
    ]
    assert resumed["test"] == whole["test"]


def test_an_update_keeps_what_the_parent_set_and_decides_afresh_what_auto_chose(parent, tmp_path, caplog):
    """training.epochs: 8 in the parent's config stays 8; its patience, which auto chose for the parent's data, is
    auto again; both said in the log. A drop fraction the config set stays, an estimated one is auto again."""
    run = autoft.load(parent)
    assert "epochs" not in run.metrics["auto"] and "early_stopping_patience" in run.metrics["auto"]
    with caplog.at_level(logging.INFO, logger="autoft.continual"):
        config = _child_config(run, ["new.csv"], None, tmp_path / "child", None)
    assert config.training.epochs == 8 and config.training.early_stopping_patience == "auto"
    said = "\n".join(r.getMessage() for r in caplog.records)
    assert "kept as the parent's config set them: training.epochs: 8" in said
    assert f"training.early_stopping_patience (the parent's {run.config.training.early_stopping_patience})" in said
    assert _child_config(run, ["new.csv"], None, tmp_path / "child", ["training.epochs=auto"]).training.epochs == "auto"
    run.metrics["auto"]["epochs"] = {"value": 8, "how": "auto"}  # as if auto had chosen the 8
    assert _child_config(run, ["new.csv"], None, tmp_path / "child", None).training.epochs == "auto"

    run.config = run.config.model_copy(
        update={"selection": run.config.selection.model_copy(update={"policy": "small-loss", "drop_fraction": 0.3})}
    )
    for how, expected in (
        ("set to 0.3 in the config (the estimated noise rate 12.0%)", 0.3),
        ("auto: the estimated noise rate 30.0%", "auto"),
    ):
        (parent / "decisions.jsonl").write_text(json.dumps({"event": "noise-estimate", "how": how}) + "\n")
        assert _child_config(run, ["new.csv"], None, tmp_path / "child", None).selection.drop_fraction == expected
