import io
import json
import subprocess
import sys

import pytest
import yaml

from autoft.cli import main
from tests.conftest import tiny_config, write_csv

FAST = {"epochs": 8, "learning_rate": 3e-3, "early_stopping_patience": None}


def write_config(tmp_path, config):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def fails_cleanly(argv, capsys, pattern):
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("autoft: error: ") and "Traceback" not in "\n".join(err)
    assert pytest.importorskip("re").search(pattern, err[-1]), err[-1]


def test_help_for_every_command():
    for argv in ([], ["train"], ["evaluate"], ["predict"], ["demo"]):
        result = subprocess.run([sys.executable, "-m", "autoft.cli", *argv, "--help"], capture_output=True, text=True, check=False)
        assert result.returncode == 0
        assert "usage: autoft" in result.stdout


def test_bad_input_exits_2_with_one_line(tiny_model_dir, classification_files, tmp_path, capsys):
    config = tiny_config(tiny_model_dir, classification_files, tmp_path / "run")
    path = write_config(tmp_path, config)
    fails_cleanly(["train", str(path), "--set", "training.epochz=1"], capsys, r"training.epochz: unknown field")
    fails_cleanly(["train", str(path), "--set", "data.train=missing.csv"], capsys, r"missing.csv: file not found")
    bad = write_csv(tmp_path / "bad.csv", [("fine", "sport"), ("", "tech")])
    fails_cleanly(["train", str(path), "--set", f"data.train={bad}"], capsys, r"bad.csv:3: empty text")
    unseen = write_csv(tmp_path / "unseen.csv", [("fine", "politics")])
    fails_cleanly(["train", str(path), "--set", f"data.test={unseen}"], capsys,
                  r"unseen.csv:2: test label 'politics' never occurs")
    fails_cleanly(["train", str(path), "--set", "data.label_column=topic"], capsys, r"missing column 'topic'")
    fails_cleanly(["train", str(path), "--set", f"model={tmp_path}/no-model"], capsys, r"folder not found")
    assert not (tmp_path / "run").exists()
    fails_cleanly(["evaluate", str(tmp_path / "run"), "--data", str(bad)], capsys, "not an autoft run directory")


def test_real_entry_point_has_no_traceback(tmp_path):
    (tmp_path / "c.yaml").write_text("data: {train: x.csv}\nbogus: 1\n")
    result = subprocess.run([sys.executable, "-m", "autoft.cli", "train", str(tmp_path / "c.yaml")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == f"autoft: error: {tmp_path / 'c.yaml'}: bogus: unknown field"


def test_train_evaluate_predict(tiny_model_dir, classification_files, tmp_path, capsys, monkeypatch):
    config = tiny_config(tiny_model_dir, classification_files, tmp_path / "run", **FAST)
    path = write_config(tmp_path, config)
    assert main(["train", str(path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "run: " in out and "test" in out and "macro_f1" in out

    assert main(["evaluate", str(tmp_path / "run"), "--data", str(classification_files["test"]),
                 "--output", str(tmp_path / "eval.json"), "--no-progress"]) == 0
    capsys.readouterr()
    assert json.loads((tmp_path / "eval.json").read_text())["macro_f1"] >= 0.9

    monkeypatch.setattr(sys, "stdin", io.StringIO("goal match team coach\n\npizza soup cheese\n"))
    assert main(["predict", str(tmp_path / "run")]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["label"] for r in lines] == ["sport", "food"]
    assert set(lines[0]["probabilities"]) == {"food", "sport", "tech"}
    assert sum(lines[0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)

    assert main(["predict", str(tmp_path / "run"), "--input", str(classification_files["test"]),
                 "--output", str(tmp_path / "pred.jsonl")]) == 0
    assert len((tmp_path / "pred.jsonl").read_text().splitlines()) == 30

    # A second train into the same directory is refused without --overwrite.
    fails_cleanly(["train", str(path)], capsys, "not empty")


def test_ner_predict_writes_entity_spans(tiny_model_dir, ner_files, tmp_path, capsys, monkeypatch):
    config = tiny_config(tiny_model_dir, ner_files, tmp_path / "run", task="token-classification",
                         epochs=10, learning_rate=5e-3, early_stopping_patience=None)
    assert main(["train", str(write_config(tmp_path, config)), "--no-progress"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdin", io.StringIO("Bob works at Google\n"))
    assert main(["predict", str(tmp_path / "run")]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for entity in record["entities"]:
        assert record["text"][entity["start"] : entity["end"]] == entity["text"]
    assert ("PER", "Bob") in [(e["type"], e["text"]) for e in record["entities"]]
