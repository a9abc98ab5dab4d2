"""The real packaged MiniLM on a few hundred samples of ../shared/data (skipped when that folder is absent)."""

import pytest

import autoft
from benchmarks.public_data import materialise
from tests.conftest import require_shared

pytestmark = pytest.mark.integration


def test_minilm_tweeteval_emotion(tmp_path):
    require_shared("tweeteval_emotion")
    files = materialise("tweeteval_emotion", tmp_path / "data", limits={"train": 400, "validation": 150, "test": 300})
    run = autoft.train(
        {
            "task": "classification",
            "model": "default",
            "data": files,
            "training": {"epochs": 3, "learning_rate": 1e-4, "batch_size": 16, "max_length": 48, "progress": False},
            "output_dir": str(tmp_path / "run"),
        }
    )
    test = run.metrics["test"]
    reloaded = autoft.load(tmp_path / "run").evaluate(files["test"])
    assert reloaded["macro_f1"] == pytest.approx(test["macro_f1"])
    # Four classes, the largest ~40% of test: a fine-tuned MiniLM must beat the majority class clearly.
    assert test["accuracy"] >= 0.5 and test["macro_f1"] >= 0.35, test
    record = run.predict(["I am so happy today, best day ever!"])[0]
    assert record["label"] in ("joy", "optimism")


def test_minilm_btc_ner(tmp_path):
    require_shared("btc_ner")
    files = materialise("btc_ner", tmp_path / "data", limits={"train": 1000, "validation": 150, "test": 300})
    run = autoft.train(
        {
            "task": "token-classification",
            "model": "default",
            "data": files,
            "training": {"epochs": 3, "learning_rate": 3e-4, "batch_size": 16, "max_length": 48, "progress": False},
            "output_dir": str(tmp_path / "run"),
        }
    )
    assert run.metrics["test"]["f1"] >= 0.2, run.metrics["test"]
    record = run.predict(["Barack Obama met Angela Merkel in Berlin on Monday"])[0]
    for entity in record["entities"]:
        assert record["text"][entity["start"] : entity["end"]] == entity["text"]


def test_minilm_defaults_learn_small_real_data(tmp_path):
    """No training settings at all: on 400 tweets the old fixed defaults (5e-5, 3 epochs) never left the
    majority class (macro-F1 ≈ 0.15); auto must find a rate and run long enough to learn."""
    require_shared("tweeteval_emotion")
    files = materialise("tweeteval_emotion", tmp_path / "data", limits={"train": 400, "validation": 150, "test": 300})
    run = autoft.train({"data": files, "training": {"progress": False}, "output_dir": str(tmp_path / "run")})
    chosen = run.metrics["training"]
    assert 1e-5 <= chosen["learning_rate"] <= 5e-4 and chosen["epochs"] == 8 and chosen["batch_size"] == 32
    assert run.metrics["test"]["macro_f1"] >= 0.45, run.metrics["test"]
