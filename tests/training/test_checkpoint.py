"""Crash and resume: a run interrupted after an epoch's checkpoint, during a checkpoint's write, or by kill -9 at
any moment resumes to exactly the metrics of an uninterrupted run (CPU, same seed)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import yaml

import autoft
import autoft.training.checkpoint as checkpoint_module
import autoft.training.loop as loop_module
from tests.conftest import tiny_config

SETTINGS = {"epochs": 6, "learning_rate": 3e-3, "early_stopping_patience": None}


def _scores(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return (
        [(e["epoch"], e["train_loss"], e["validation"]) for e in metrics["epochs"]],
        metrics["test"],
        metrics["best_epoch"],
        (run_dir / "test_predictions.jsonl").read_text(),
    )


@pytest.fixture()
def uninterrupted(tmp_path, tiny_model_dir, classification_files):
    run = autoft.train(tiny_config(tiny_model_dir, classification_files, tmp_path / "whole", **SETTINGS))
    assert not (tmp_path / ".whole.checkpoint").exists()  # removed once the run is written
    return _scores(run.path)


def test_an_interrupted_run_resumes_to_the_same_metrics(
    tmp_path, tiny_model_dir, classification_files, uninterrupted, monkeypatch
):
    real = loop_module.save_checkpoint

    def crash_after_epoch_3(path, **kwargs):
        real(path, **kwargs)
        if kwargs["state"]["epoch"] == 3:
            raise KeyboardInterrupt  # the process dies right after a checkpoint

    monkeypatch.setattr(loop_module, "save_checkpoint", crash_after_epoch_3)
    config = tiny_config(tiny_model_dir, classification_files, tmp_path / "run", **SETTINGS)
    with pytest.raises(KeyboardInterrupt):
        autoft.train(config)
    assert not (tmp_path / "run").exists() and (tmp_path / ".run.checkpoint" / "state.json").is_file()
    monkeypatch.setattr(loop_module, "save_checkpoint", real)
    run = autoft.train(config, resume=True)
    assert _scores(run.path) == uninterrupted
    assert not (tmp_path / ".run.checkpoint").exists()


def test_a_crash_while_writing_a_checkpoint_leaves_the_previous_one(
    tmp_path, tiny_model_dir, classification_files, uninterrupted, monkeypatch
):
    real_save = checkpoint_module.save_file
    calls = {"n": 0}

    def fail_in_epoch_4(tensors, path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 6:  # epochs 1-3 wrote model + best each; epoch 4's first file is half-written, then death
            with open(path, "wb") as stream:
                stream.write(b"half")
            raise KeyboardInterrupt
        return real_save(tensors, path, *args, **kwargs)

    monkeypatch.setattr(checkpoint_module, "save_file", fail_in_epoch_4)
    config = tiny_config(tiny_model_dir, classification_files, tmp_path / "run", **SETTINGS)
    with pytest.raises(KeyboardInterrupt):
        autoft.train(config)
    saved = json.loads((tmp_path / ".run.checkpoint" / "state.json").read_text())
    assert saved["epoch"] == 3 and not list(tmp_path.glob(".run.checkpoint.tmp-*"))
    monkeypatch.setattr(checkpoint_module, "save_file", real_save)
    assert _scores(autoft.train(config, resume=True).path) == uninterrupted


def test_kill_9_at_random_moments_then_resume(tmp_path, tiny_model_dir, classification_files, uninterrupted):
    """The CLI killed with SIGKILL at several moments of a run (whatever it was doing: a step, a validation, a
    checkpoint's write, within an epoch or at its end: checkpoints every 2 steps) resumes with `autoft train --resume` to the uninterrupted run's metrics."""
    tried = matched = 0
    for k, delay in enumerate((0.0, 0.15, 0.3, 0.5)):
        out = tmp_path / f"killed{k}"
        config = tiny_config(tiny_model_dir, classification_files, out, checkpoint_every=2, **SETTINGS)
        path = tmp_path / f"killed{k}.yaml"
        path.write_text(yaml.safe_dump(config))
        checkpoint = tmp_path / f".killed{k}.checkpoint"
        process = subprocess.Popen(
            [sys.executable, "-m", "autoft.cli", "-q", "train", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 120
        while not checkpoint.exists() and process.poll() is None and time.time() < deadline:
            time.sleep(0.005)
        time.sleep(delay)
        if process.poll() is not None:  # finished before the kill: not a kill point
            continue
        process.send_signal(signal.SIGKILL)
        process.wait()
        tried += 1
        resumed = subprocess.run(
            [sys.executable, "-m", "autoft.cli", "-q", "train", str(path), "--resume"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        matched += _scores(out) == uninterrupted
    print(f"kill points tried {tried}, matched {matched}")
    assert tried >= 1 and matched == tried, (tried, matched)
