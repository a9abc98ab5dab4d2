"""Crash and resume with the agent: its online state (the policy's learned arrays and random generators, the
training dynamics, its decisions) is checkpointed with the loop's, so an interrupted agent run — `train`, `run`
or killed with SIGKILL in any phase, the offline valuation included — resumes to the uninterrupted run's
metrics, data values and decisions (CPU, same seed)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import yaml

import autoft
import autoft.training.loop as loop_module
from tests.conftest import TOPICS, synthetic_rows, tiny_config, write_csv

SETTINGS = {"epochs": 4, "learning_rate": 3e-3, "early_stopping_patience": None}
LABELS = tuple(TOPICS)


@pytest.fixture()
def noisy_classification(tmp_path):
    rows = synthetic_rows(90, 0)
    rows = [
        (text, LABELS[(LABELS.index(label) + 1) % 3] if i % 5 == 0 else label) for i, (text, label) in enumerate(rows)
    ]  # a fifth of the labels wrong
    return {
        "train": write_csv(tmp_path / "train.csv", rows),
        "validation": write_csv(tmp_path / "val.csv", synthetic_rows(40, 1)),
        "test": write_csv(tmp_path / "test.csv", synthetic_rows(30, 2)),
    }


@pytest.fixture(scope="module")
def dropout_model_dir(tmp_path_factory):
    """A tiny BERT with dropout, as real models have: a resumed run then matches only if the random state does."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from autoft.modeling.load import resolve_model_name

    path = tmp_path_factory.mktemp("tiny-bert-dropout")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_name("default"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=256,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _outcome(run_dir):
    """What must not change with an interruption: the epochs, scores, data values and the agent's decisions."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    decisions = (
        [json.loads(line) for line in (run_dir / "decisions.jsonl").open()]
        if (run_dir / "decisions.jsonl").exists()
        else None
    )
    extra = (run_dir / "self_training.json").read_text() if (run_dir / "self_training.json").exists() else None
    return (
        [(e["epoch"], e["train_loss"], e["samples"], e["validation"]) for e in metrics["epochs"]],
        metrics["test"],
        metrics["best_epoch"],
        (run_dir / "data_values.csv").read_text() if (run_dir / "data_values.csv").exists() else None,
        decisions,
        extra,
    )


def _crash_after_epoch(monkeypatch, epoch):
    real = loop_module.save_checkpoint

    def crash(path, **kwargs):
        real(path, **kwargs)
        if kwargs["state"]["epoch"] == epoch:
            raise KeyboardInterrupt  # the process dies right after this checkpoint

    monkeypatch.setattr(loop_module, "save_checkpoint", crash)
    return real


@pytest.mark.parametrize(
    "selection",
    [
        {"policy": "exp3"},
        {"policy": "reinforce", "update_every": 3},
        {"policy": "q-learning", "rescore": "model"},
        {"policy": "small-loss", "flagged": "unlabel", "self_training_threshold": 0.5},
        {"policy": "none", "self_training": "agent"},
        {"policy": "alignment", "update_every": 5},
    ],
    ids=["exp3", "reinforce-steps", "q-learning-rescore", "unlabel", "self-training", "alignment"],
)
def test_an_agent_run_resumes_to_the_uninterrupted_run(
    tmp_path, tiny_model_dir, noisy_classification, selection, monkeypatch
):
    files = dict(noisy_classification)
    if selection.get("self_training"):
        (tmp_path / "pool.txt").write_text("\n".join(t for t, _ in synthetic_rows(60, 7)) + "\n")
        files["unlabeled"] = tmp_path / "pool.txt"
    config = tiny_config(tiny_model_dir, files, tmp_path / "whole", **SETTINGS)
    config["selection"] = selection
    whole = _outcome(autoft.train(config).path)
    assert not (tmp_path / ".whole.checkpoint").exists()

    config["output_dir"] = str(tmp_path / "run")
    real = _crash_after_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        autoft.train(config)
    saved = json.loads((tmp_path / ".run.checkpoint" / "state.json").read_text())
    assert saved["epoch"] == 2 and saved["callbacks"]  # the agent's state is in the checkpoint
    monkeypatch.setattr(loop_module, "save_checkpoint", real)
    assert _outcome(autoft.train(config, resume=True).path) == whole


def test_ner_with_masked_entities_resumes_to_the_uninterrupted_run(tmp_path, tiny_model_dir, ner_files, monkeypatch):
    config = tiny_config(tiny_model_dir, ner_files, tmp_path / "whole", task="token-classification", **SETTINGS)
    config["selection"] = {"policy": "exp3", "drop_fraction": 0.2}
    whole = _outcome(autoft.train(config).path)
    config["output_dir"] = str(tmp_path / "run")
    real = _crash_after_epoch(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        autoft.train(config)
    monkeypatch.setattr(loop_module, "save_checkpoint", real)
    assert _outcome(autoft.train(config, resume=True).path) == whole


def test_resume_with_nothing_to_resume_from_starts_from_the_beginning(tmp_path, tiny_model_dir, noisy_classification):
    config = tiny_config(tiny_model_dir, noisy_classification, tmp_path / "whole", **SETTINGS)
    config["selection"] = {"policy": "exp3"}
    whole = _outcome(autoft.train(config).path)
    config["output_dir"] = str(tmp_path / "run")
    assert _outcome(autoft.train(config, resume=True).path) == whole


def _comparison(out):
    comparison = json.loads((out / "comparison.json").read_text())
    return (
        {k: comparison[k] for k in ("plain", "autonomous")} | {"policy": comparison["policy"]},
        _outcome(out / "autonomous"),
        _outcome(out / "plain")[:3],
        (out / "data_values.csv").read_text(),
    )


def _strip_seconds(value):
    """The scores without the wall-clock fields, which differ from run to run."""
    if isinstance(value, dict):
        return {k: _strip_seconds(v) for k, v in value.items() if "seconds" not in k}
    if isinstance(value, (list, tuple)):
        return type(value)(_strip_seconds(v) for v in value)
    return value


@pytest.mark.slow
def test_autoft_run_killed_in_every_phase_resumes_to_the_same_comparison(
    tmp_path, tiny_model_dir, noisy_classification
):
    """`autoft run` (plain, then the agent) killed with SIGKILL while plain fine-tuning trains, in the agent's
    offline phase (the plain run finished, no agent checkpoint yet) and while the agent trains, resumes with
    `autoft run --resume` to the uninterrupted comparison, data values and decisions."""

    def config_file(name):
        config = tiny_config(tiny_model_dir, noisy_classification, tmp_path / name, **SETTINGS)
        config["selection"] = {"policy": "exp3"}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    command = [sys.executable, "-m", "autoft.cli", "-q", "run"]
    done = subprocess.run([*command, str(config_file("whole"))], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    whole = _strip_seconds(_comparison(tmp_path / "whole"))
    assert not list(tmp_path.glob(".whole.*"))

    def plain_training(work):
        return (work / ".plain.checkpoint").exists()

    def offline_phase(work):
        return (work / "plain" / "checksums.json").exists()

    def agent_training(work):
        return (work / ".autonomous.checkpoint").exists()

    tried, matched = [], 0
    for k, (phase, ready, delay) in enumerate(
        [
            ("plain training", plain_training, 0.1),
            ("agent offline phase", offline_phase, 0.0),
            ("agent training", agent_training, 0.0),
            ("agent training", agent_training, 0.3),
        ]
    ):
        name = f"killed{k}"
        work = tmp_path / f".{name}.work"
        process = subprocess.Popen(
            [*command, str(config_file(name))], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.time() + 300
        while not ready(work) and process.poll() is None and time.time() < deadline:
            time.sleep(0.002)
        time.sleep(delay)
        if process.poll() is not None:
            continue  # finished before the kill: not a kill point
        in_offline_phase = offline_phase(work) and not agent_training(work)
        process.send_signal(signal.SIGKILL)
        process.wait()
        if phase == "agent offline phase":
            assert in_offline_phase, "the kill missed the offline phase"
        tried.append(phase)
        resumed = subprocess.run(
            [*command, str(config_file(name)), "--resume"], capture_output=True, text=True, check=False
        )
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        matched += _strip_seconds(_comparison(tmp_path / name)) == whole
        assert not work.exists()
    print(f"kill points tried {len(tried)} ({', '.join(tried)}), matched {matched}")
    assert len(tried) >= 3 and matched == len(tried), (tried, matched)


@pytest.mark.parametrize(
    "selection", [{"policy": "exp3"}, {"policy": "reinforce", "update_every": 4}], ids=["exp3", "reinforce-steps"]
)
def test_checkpoints_within_an_epoch_resume_to_the_uninterrupted_run(
    tmp_path, dropout_model_dir, noisy_classification, selection, monkeypatch
):
    """With training.checkpoint_every: 3 the loop also checkpoints within epochs (the epoch's selection, the batches
    done, the agent's state at that step); a crash after any of them resumes to the uninterrupted run."""
    config = tiny_config(dropout_model_dir, noisy_classification, tmp_path / "whole", checkpoint_every=3, **SETTINGS)
    config["selection"] = selection
    whole = _outcome(autoft.train(config).path)
    real, within = loop_module.save_checkpoint, []
    for crash_at in (1, 4, 6):  # the n-th checkpoint written: within epoch 1, within later epochs, at an epoch's end
        calls = {"n": 0}

        def crash(path, calls=calls, crash_at=crash_at, **kwargs):
            real(path, **kwargs)
            calls["n"] += 1
            if calls["n"] == crash_at:
                calls["state"] = kwargs["state"]
                raise KeyboardInterrupt

        monkeypatch.setattr(loop_module, "save_checkpoint", crash)
        config["output_dir"] = str(tmp_path / f"run{crash_at}")
        with pytest.raises(KeyboardInterrupt):
            autoft.train(config)
        monkeypatch.setattr(loop_module, "save_checkpoint", real)
        assert _outcome(autoft.train(config, resume=True).path) == whole, calls["state"].get("in_epoch", "epoch end")
        within.append("in_epoch" in calls["state"])
    assert any(within) and not all(within)  # crashes after checkpoints within an epoch and at an epoch's end
