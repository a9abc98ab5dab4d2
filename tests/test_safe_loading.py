"""Safe loading: weights from safetensors only unless --trust-pickle, and a run whose files changed after it was
written is refused."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModel

import autoft
from autoft.cli import main
from autoft.errors import ModelLoadError, RunDirError
from autoft.modeling.load import TRUST_PICKLE, load_model
from tests.conftest import tiny_config


@pytest.fixture()
def pickled_model(tmp_path, tiny_model_dir):
    """The tiny BERT saved as a pickle (pytorch_model.bin) instead of safetensors."""
    folder = tmp_path / "pickled"
    folder.mkdir()
    model = AutoModel.from_pretrained(tiny_model_dir)
    model.config.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (tiny_model_dir / name).exists():
            (folder / name).write_bytes((tiny_model_dir / name).read_bytes())
    return folder


def test_pickled_weights_need_trust_pickle(pickled_model, monkeypatch):
    monkeypatch.delenv(TRUST_PICKLE, raising=False)
    with pytest.raises(ModelLoadError, match="pickle.*--trust-pickle"):
        load_model(str(pickled_model), AutoModel)
    monkeypatch.setenv(TRUST_PICKLE, "1")
    assert load_model(str(pickled_model), AutoModel).config.hidden_size == 64


def test_the_cli_refuses_a_pickled_model_in_one_line_and_trust_pickle_lets_it_train(
    tmp_path, pickled_model, classification_files, capsys, monkeypatch
):
    import yaml

    monkeypatch.delenv(TRUST_PICKLE, raising=False)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_config(pickled_model, classification_files, tmp_path / "run", epochs=1)))
    assert main(["train", str(config)]) == 2
    err = capsys.readouterr().err
    assert "--trust-pickle" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
    assert main(["--trust-pickle", "train", str(config)]) == 0
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()  # what autoft writes is safetensors


def test_a_run_whose_files_changed_is_refused(tmp_path, tiny_model_dir, classification_files, capsys):
    run = autoft.train(tiny_config(tiny_model_dir, classification_files, tmp_path / "run", epochs=1))
    recorded = json.loads((run.path / "checksums.json").read_text())
    assert {"config.yaml", "labels.json", "metrics.json", "model/model.safetensors"} <= set(recorded)
    autoft.load(run.path)  # untouched: loads
    (run.path / "report.html").write_text("added later")  # files added after the run are not checked
    autoft.load(run.path)
    weights = run.path / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(RunDirError, match="model/model.safetensors changed after the run was written"):
        autoft.load(run.path)
    assert main(["predict", str(run.path), "--input", str(classification_files["test"])]) == 2
    assert "refusing to load it" in capsys.readouterr().err


def test_read_jsonl_skips_only_a_cut_last_line(tmp_path):
    """A killed writer leaves its last line cut short (skipped); a bad line before it means a damaged file: an
    error naming file and line, not records silently lost."""
    from autoft.errors import DataError
    from autoft.io import read_jsonl

    path = tmp_path / "log.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n{"a": ', encoding="utf-8")
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    path.write_text('{"a": 1}\n{"a": \n{"a": 3}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"log.jsonl:2: not a JSON record"):
        read_jsonl(path)
    assert read_jsonl(tmp_path / "absent.jsonl") == []
