"""Two-process training on CPU (torchrun, gloo): each process trains on its half of the batches, both train on
the main process's selection, and only the main process writes the run."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.conftest import tiny_config


@pytest.mark.slow
def test_two_processes_train_one_selection_and_write_one_run(tmp_path, tiny_model_dir, classification_files):
    torchrun = shutil.which("torchrun") or str(__import__("pathlib").Path(sys.executable).parent / "torchrun")
    config = tiny_config(tiny_model_dir, classification_files, tmp_path / "run", epochs=2)
    config["selection"] = {"policy": "exp3", "drop_fraction": 0.25}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [torchrun, "--nproc_per_node", "2", "-m", "autoft.cli", "train", str(path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run: ") == 1  # one report
    epochs = [line for line in done.stderr.splitlines() if " epoch 1: " in line]
    assert len(epochs) == 2  # both processes trained
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    kept = 90 - round(0.25 * 90)
    assert all(abs(e["samples"] - kept / 2) <= 8 for e in metrics["epochs"])  # about half each (whole batches of 8)
    assert len({line.split("validation macro_f1 ")[1].split()[0] for line in epochs}) == 1  # the same weights
    assert (tmp_path / "run" / "checksums.json").is_file() and not list(tmp_path.glob(".run.tmp-*"))
    decisions = [json.loads(line) for line in (tmp_path / "run" / "decisions.jsonl").open()]
    selects = [d for d in decisions if d.get("event") == "select"]
    # (plus what the class floor brought back or relabelled into a class that lost more than half its rows)
    floor = [
        sum(c["taken_back"] + c["relabelled_in"] for c in d["classes"])
        for d in decisions
        if d.get("event") == "class-floor" and d["epoch"] == 1
    ]
    assert [d["kept"] for d in selects] == [kept + sum(floor[-1:])] * 2
    # Each step's outputs reach the agent from both processes: it saw the model's label of every row it kept.
    rows = list(csv.DictReader((tmp_path / "run" / "data_values.csv").open()))
    assert all(r["model_label"] for r in rows if r["flagged"] == "False")


@pytest.mark.slow
def test_two_processes_train_ner_with_the_agent_seeing_every_shards_steps(tmp_path, tiny_model_dir, ner_files):
    """NER with the agent on two processes: each step's token logits and labels (of different lengths per process)
    are gathered and padded for the agent, and both processes train the same weights."""
    torchrun = shutil.which("torchrun") or str(__import__("pathlib").Path(sys.executable).parent / "torchrun")
    config = tiny_config(tiny_model_dir, ner_files, tmp_path / "run", task="token-classification", epochs=2)
    config["selection"] = {"policy": "exp3", "drop_fraction": 0.2, "mode": "sample"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [torchrun, "--nproc_per_node", "2", "-m", "autoft.cli", "train", str(path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    epochs = [line for line in done.stderr.splitlines() if " epoch 2: " in line]
    assert len(epochs) == 2 and len({line.split("validation ")[1].split()[1] for line in epochs}) == 1
