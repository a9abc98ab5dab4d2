"""multi-label-classification: loading label sets, the sigmoid loss, per-label thresholds, metrics, a whole run."""

import json
import random

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

import autoft
from autoft.cli import main
from autoft.data.loading import Example, load_examples
from autoft.errors import DataError
from autoft.modeling.load import resolve_model_name
from autoft.tasks.multilabel import BIAS_LIMIT, MultiLabelAdapter
from tests.conftest import TOPICS, tiny_config, write_csv

LABEL_WORDS = {
    **TOPICS,
    "music": ["guitar", "song", "band", "piano", "concert", "drum", "album", "singer"],
    "weather": ["rain", "snow", "storm", "wind", "cloud", "sunny", "cold", "thunder"],
    "travel": ["flight", "hotel", "airport", "ticket", "beach", "trip", "passport", "train"],
}


@pytest.fixture(scope="module")
def adapter():
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_name("default"))
    return MultiLabelAdapter(["food", "sport", "tech"], tokenizer, max_length=16)


def topic_rows(n, seed):
    """Twelve-word texts mixing the words of up to three topics; their label set is exactly those topics."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        topics = sorted(rng.sample(sorted(TOPICS), k=i % 4))
        words = [w for t in topics for w in rng.choices(TOPICS[t], k=3)]
        words += rng.choices(["the", "a", "and", "of", "today"], k=12 - len(words))  # the length tells nothing
        rng.shuffle(words)
        rows.append((" ".join(words), "|".join(topics)))
    return rows


def test_label_sets_load_from_a_delimiter_a_json_list_or_an_empty_cell(tmp_path):
    csv_path = write_csv(tmp_path / "t.csv", [("a", "sport|tech"), ("b", ""), ("c", "tech | sport | tech")])
    examples = load_examples(csv_path, task="multi-label-classification")
    assert [e.label for e in examples] == [["sport", "tech"], [], ["sport", "tech"]]
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text('{"text": "a", "label": ["x", "y"]}\n{"text": "b", "label": "x;y"}\n{"text": "c", "label": []}\n')
    assert [e.label for e in load_examples(jsonl, task="multi-label-classification", label_delimiter=";")] == [
        ["x", "y"],
        ["x", "y"],
        [],
    ]
    from autoft.data.writing import write_examples

    written = write_examples(tmp_path / "back", examples)  # label sets go back as JSON lists
    assert written.suffix == ".jsonl"
    assert load_examples(written, task="multi-label-classification") == [
        Example(e.text, e.label, f"{written}:{i}", "back") for i, e in enumerate(examples, 1)
    ]
    for bad, message in [
        ('{"text": "a", "label": [1.5]}', "must list labels"),
        ('{"text": "a", "label": "x||y"}', "empty label"),
    ]:
        (tmp_path / "bad.jsonl").write_text(bad + "\n")
        with pytest.raises(DataError, match=rf"bad.jsonl:1: .*{message}"):
            load_examples(tmp_path / "bad.jsonl", task="multi-label-classification")


def test_loss_thresholds_and_metrics(adapter):
    features = adapter.encode([Example("pizza goal", ["food", "sport"]), Example("nothing", [])])
    assert [f["labels"] for f in features] == [[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    batch = adapter.collate(features)
    logits = torch.tensor([[9.0, 9.0, -9.0], [-9.0, -9.0, -9.0]])
    losses, units = adapter.per_sample_loss(logits, batch["labels"])
    assert losses.max() < 1e-3 and units.tolist() == [1.0, 1.0]
    assert adapter.per_sample_loss(-logits, batch["labels"])[0].min() > 5
    probabilities = [np.array([0.9, 0.3, 0.1]), np.array([0.2, 0.2, 0.6])]
    assert [adapter.decode(p) for p in probabilities] == [["food"], ["tech"]]
    gold = [Example("a", ["food", "sport"]), Example("b", ["sport"])]
    tuned = adapter.tune_decision(probabilities, gold)["thresholds"]
    # food: 0.5 already perfect; sport: both positives at 0.3 and 0.2 need a threshold <= 0.2; tech never occurs
    assert tuned["food"] == 0.5 and tuned["sport"] <= 0.2 and tuned["tech"] == 0.5
    assert [adapter.decode(p) for p in probabilities] == [["food", "sport"], ["sport", "tech"]]
    metrics = adapter.metrics(gold, [["food", "sport"], ["sport", "tech"]])
    assert metrics["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1))  # tp 3, fp 1, fn 0
    assert metrics["subset_accuracy"] == 0.5
    assert metrics["macro_f1"] == pytest.approx((1 + 1 + 0) / 3)
    adapter.decision = {"thresholds": {label: 0.5 for label in adapter.labels}}


def test_a_multi_label_run_learns_label_sets_and_keeps_its_thresholds(tiny_model_dir, tmp_path, capsys):
    files = {
        "train": write_csv(tmp_path / "train.csv", topic_rows(480, 0)),
        "validation": write_csv(tmp_path / "val.csv", topic_rows(40, 1)),
        "test": write_csv(tmp_path / "test.csv", topic_rows(40, 2)),
    }
    run = autoft.train(
        tiny_config(
            tiny_model_dir,
            files,
            tmp_path / "run",
            task="multi-label-classification",
            epochs=8,
            learning_rate=3e-3,
            batch_size=16,
        )
    )
    assert run.metrics["test"]["micro_f1"] > 0.85, run.metrics["test"]
    saved = json.loads((tmp_path / "run" / "labels.json").read_text())
    assert saved["labels"] == ["food", "sport", "tech"] and set(saved["decision"]["thresholds"]) == set(saved["labels"])
    loaded = autoft.load(tmp_path / "run")
    texts = [
        "pizza the cheese a goal of match and soup the team a",
        "software the chip a and code of the a today and",
        "the a and of today the a and of today the a",
    ]
    assert loaded.predict(texts) == run.predict(texts) and loaded.adapter.decision == run.adapter.decision
    assert loaded.predict(texts)[2]["labels"] == []  # no topic word, no label
    assert loaded.evaluate(files["test"])["micro_f1"] == pytest.approx(run.metrics["test"]["micro_f1"])
    assert main(["evaluate", str(tmp_path / "run"), "--data", str(files["test"])]) == 0
    assert "micro_f1" in capsys.readouterr().out
    # The agent does not value label sets yet: a clear error, not a crash.
    config = tiny_config(tiny_model_dir, files, tmp_path / "agent", task="multi-label-classification")
    config["selection"] = {"policy": "exp3"}
    with pytest.raises(autoft.errors.ConfigError, match="not available for multi-label-classification"):
        autoft.train(config)


def sparse_rows(n, seed, rate=0.15):
    """Twelve-word texts; each of six labels is present with probability ``rate`` (most texts have none), three of
    its words in the text when it is."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        labels = sorted(label for label in LABEL_WORDS if rng.random() < rate)
        words = [w for label in labels for w in rng.choices(LABEL_WORDS[label], k=3)]
        words += rng.choices(["the", "a", "and", "of", "today"], k=max(12 - len(words), 0))
        rng.shuffle(words)
        rows.append((" ".join(words), "|".join(labels)))
    return rows


def test_the_initial_bias_is_each_labels_clipped_log_odds(adapter):
    examples = [Example("x", ["food"])] * 3 + [Example("y", ["food", "sport"])] + [Example("z", [])] * 6
    prior = np.array([4 + 1, 1 + 1, 0 + 1]) / (10 + 2)  # food, sport, tech; smoothed
    np.testing.assert_allclose(adapter.initial_bias(examples), np.log(prior / (1 - prior)))
    many = [Example("z", [])] * 5000 + [Example("x", ["food", "sport", "tech"])] * 5000
    assert adapter.initial_bias(many).tolist() == pytest.approx([0, 0, 0], abs=1e-3)
    assert adapter.initial_bias([Example("z", [])] * 5000).tolist() == [-BIAS_LIMIT] * 3  # clipped
    assert adapter.training_scale() == 2 * super(MultiLabelAdapter, adapter).training_scale()


@pytest.fixture(scope="module")
def untrained_cli_run(tiny_model_dir, tmp_path_factory):
    """``autoft train`` (the CLI) on sparse label sets at a learning rate too small to learn anything: the model as
    initialised. Returns (folder, files, the printed table)."""
    import contextlib
    import io

    import yaml

    tmp = tmp_path_factory.mktemp("untrained")
    files = {
        "train": write_csv(tmp / "train.csv", sparse_rows(96, 0)),
        "validation": write_csv(tmp / "val.csv", sparse_rows(48, 1)),
        "test": write_csv(tmp / "test.csv", sparse_rows(48, 2)),
    }
    config = tiny_config(
        tiny_model_dir,
        files,
        tmp / "run",
        task="multi-label-classification",
        epochs=1,
        learning_rate=1e-9,
        batch_size=16,
    )
    (tmp / "config.yaml").write_text(yaml.safe_dump(config))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["train", str(tmp / "config.yaml")]) == 0
    return tmp / "run", files, out.getvalue()


def test_a_new_head_starts_at_the_base_rates(untrained_cli_run):
    folder, _files, _ = untrained_cli_run
    steps = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    first = next(s["loss"] for s in steps if s["type"] == "step")
    rates = np.mean(
        [[label in labels.split("|") for label in sorted(LABEL_WORDS)] for _, labels in sparse_rows(96, 0)], axis=0
    )
    entropy = float(np.mean(-rates * np.log(rates) - (1 - rates) * np.log(1 - rates)))
    assert first < 0.55 < np.log(2) and first == pytest.approx(entropy, abs=0.1), (first, entropy)  # one batch of 16
    run = autoft.load(folder)  # as initialised, at the thresholds it had before tuning: each label says no
    run.adapter.decision = json.loads((folder / "metrics.json").read_text())["decision"]["epochs"]
    predicted = [len(p["labels"]) for p in run.predict([t for t, _ in sparse_rows(48, 3)])]
    gold = np.mean([len(labels.split("|")) if labels else 0 for _, labels in sparse_rows(48, 3)])
    assert max(predicted) < len(LABEL_WORDS) and np.mean(predicted) <= gold, (predicted, gold)


def test_train_and_evaluate_score_validation_at_the_same_tuned_thresholds(untrained_cli_run, capsys):
    folder, files, table = untrained_cli_run
    metrics = json.loads((folder / "metrics.json").read_text())
    thresholds = json.loads((folder / "labels.json").read_text())["decision"]
    assert metrics["decision"]["tuned"] == thresholds and metrics["decision"]["used_by"] == ["validation", "test"]
    assert set(metrics["decision"]["epochs"]["thresholds"].values()) == {0.5}  # what each epoch's validation used
    assert main(["evaluate", str(folder), "--data", str(files["validation"])]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    for key in ("micro_f1", "macro_f1", "subset_accuracy", "loss"):
        assert metrics["validation"][key] == pytest.approx(evaluated[key], abs=1e-6), key
    row = next(line.split() for line in table.splitlines() if line.startswith("validation"))
    assert row[1] == f"{evaluated['micro_f1']:.4f}"  # the CLI table's validation micro-F1
    # The model learned nothing: for these sparse labels the only thresholds that beat 0.5 on F1 say yes to every
    # text, which is no decision for a label most texts lack, so every threshold stays at 0.5 (before, the tuned
    # thresholds predicted nearly every label).
    assert set(thresholds["thresholds"].values()) == {0.5}
