"""ONNX export of every encoder task: onnxruntime's logits equal PyTorch's to 1e-4 on real inputs of other batch
and sequence sizes than the exporter traced, and ``predict --backend onnx`` gives the same predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import autoft
from autoft.cli import main
from autoft.errors import ConfigError
from autoft.training.inference import predict_probabilities
from tests.conftest import synthetic_rows, tiny_config, write_conll, write_csv
from tests.tasks.test_qa import toy_questions
from tests.tasks.test_relation import write_semeval


def _classification(folder):
    return {
        split: write_csv(folder / f"{split}.csv", synthetic_rows(n, seed))
        for split, n, seed in (("train", 48, 0), ("validation", 16, 1), ("test", 24, 2))
    }


def _ner(folder):
    return {
        split: write_conll(folder / f"{split}.conll", copies)
        for split, copies in (("train", 4), ("validation", 1), ("test", 2))
    }


def _relation(folder):
    rows = [
        ("the <e1>fire</e1> caused the <e2>smoke</e2> in the old town", "Cause-Effect(e1,e2)"),
        ("the <e1>smoke</e1> came from the <e2>fire</e2>", "Cause-Effect(e2,e1)"),
        ("the <e1>cup</e1> on the <e2>table</e2>", "Other"),
    ] * 8
    return {split: write_semeval(folder / f"{split}.txt", rows) for split in ("train", "validation", "test")}


def _qa(folder):
    files = {}
    for split, n, seed in (("train", 24, 0), ("validation", 8, 1), ("test", 12, 2)):
        files[split] = folder / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps(r) + "\n" for r in toy_questions(n, seed)))
    return files


TASKS = {
    "classification": _classification,
    "token-classification": _ner,
    "relation-extraction": _relation,
    "question-answering": _qa,
}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_onnx_logits_and_predictions_match_pytorch(task, tmp_path, tiny_model_dir):
    run = autoft.train(
        tiny_config(tiny_model_dir, TASKS[task](tmp_path), tmp_path / "run", task=task, epochs=1, max_length=48)
    )
    assert main(["export", str(run.path), "--format", "onnx"]) == 0
    assert (run.path / "onnx" / "model.onnx").is_file()
    run = autoft.load(run.path)
    from autoft.data.splits import read_file

    test = read_file(run.config.data.test, run.config.data, task=task, fmt="auto")
    features = run.adapter.encode(test, with_labels=False)
    onnx = run.onnx_forward()
    for size in (1, 5, len(features)):  # other batch sizes (and so other padded lengths) than the trace's 2
        batch = run.adapter.collate_indexed([dict(f, index=i) for i, f in enumerate(features[:size])])
        batch = {k: v for k, v in batch.items() if k not in ("index", "labels")}
        with torch.no_grad():
            expected = run.adapter.forward(run.model.eval(), batch).numpy()
        got = onnx(batch).numpy()
        assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-4, np.abs(got - expected).max()
    key = {
        "classification": "label",
        "relation-extraction": "label",
        "token-classification": "tags",
        "question-answering": "answer",
    }[task]
    assert [p[key] for p in run.predict(test, backend="onnx")] == [p[key] for p in run.predict(test)]
    torch_probabilities, _ = predict_probabilities(run.model, run.adapter, features, batch_size=8)
    onnx_probabilities, _ = predict_probabilities(run.model, run.adapter, features, batch_size=8, forward=onnx)
    for a, b in zip(torch_probabilities, onnx_probabilities):
        if isinstance(a, dict):
            assert a["answer"] == b["answer"] and abs(a["score"] - b["score"]) < 1e-4
        else:
            assert np.abs(np.asarray(a) - np.asarray(b)).max() < 1e-4


def test_predict_backend_onnx_from_the_command_line_and_what_is_refused(tmp_path, tiny_model_dir, tiny_gpt2, capsys):
    run = autoft.train(tiny_config(tiny_model_dir, _classification(tmp_path), tmp_path / "run", epochs=1, peft="lora"))
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(text for text, _ in synthetic_rows(6, 5)) + "\n")
    assert main(["predict", str(run.path), "--input", str(texts), "--backend", "onnx"]) == 2
    assert "no ONNX model" in capsys.readouterr().err
    assert main(["export", str(run.path), "--format", "onnx"]) == 0  # a LoRA run: its adapters folded in
    capsys.readouterr()
    assert main(["predict", str(run.path), "--input", str(texts), "--backend", "onnx"]) == 0
    via_onnx = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert main(["predict", str(run.path), "--input", str(texts)]) == 0
    via_torch = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [p["label"] for p in via_onnx] == [p["label"] for p in via_torch]
    for a, b in zip(via_onnx, via_torch):
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-4)
    rows = [{"prompt": "say a", "response": "a"}] * 8
    data = tmp_path / "gen.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    generative = autoft.train(
        {
            "task": "generation",
            "model": str(tiny_gpt2),
            "output_dir": str(tmp_path / "gen"),
            "data": {"train": str(data), "validation": str(data)},
            "training": {"epochs": 1, "batch_size": 8, "progress": False},
        }
    )
    with pytest.raises(ConfigError, match="ONNX export is for encoder tasks"):
        generative.export(format="onnx")


def test_export_of_a_missing_or_half_written_run_is_one_line_exit_2(tmp_path, tiny_model_dir, capsys):
    assert main(["export", str(tmp_path / "nowhere"), "--format", "onnx"]) == 2
    assert "not an autoft run directory" in capsys.readouterr().err
    run = autoft.train(tiny_config(tiny_model_dir, _classification(tmp_path), tmp_path / "run", epochs=1))
    (run.path / "checksums.json").unlink()  # (written last: a run cut short has none)
    (run.path / "labels.json").write_text('{"task": "classification", "lab')
    assert main(["export", str(run.path), "--format", "onnx"]) == 2
    err = capsys.readouterr().err
    assert "damaged or half-written" in err and len(err.strip().splitlines()) == 1
    assert not (run.path / "onnx").exists()
