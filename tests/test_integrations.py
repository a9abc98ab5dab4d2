"""examples/trainer_callback.py: a plain transformers.Trainer script with autoft's agent attached trains only on
the samples the agent keeps, rewards it at each evaluation and writes data_values.csv."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "trainer_callback.py"


def test_the_trainer_example_leaves_the_flagged_samples_out(tmp_path, tiny_model_dir, capsys):
    spec = importlib.util.spec_from_file_location("trainer_callback", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    # (a random tiny encoder gives the noise estimate no evidence, so its lower bound is 0: the share is given)
    result = example.main(
        [
            "--model",
            str(tiny_model_dir),
            "--train-size",
            "120",
            "--epochs",
            "2",
            "--drop-fraction",
            "0.25",
            "--output-dir",
            str(tmp_path / "out"),
        ]
    )
    select, flipped = result["select"], np.array(result["flipped"])
    assert "the agent left out" in capsys.readouterr().out
    n, left_out = len(flipped), round(select.drop_fraction * len(flipped))
    assert left_out == 30
    epochs = select.sampler.epochs
    assert len(epochs) == 2
    for order in epochs:  # each epoch drew exactly the kept samples, each once
        assert len(order) == len(set(order.tolist())) == n - left_out
    assert not set(epochs[-1].tolist()) & set(select.flagged().tolist())
    rewards = [d for d in select.decisions if d.get("event") == "reward"]
    assert len(rewards) == 1  # two evaluations: the first sets the bar
    rows = list(csv.DictReader((tmp_path / "out" / "data_values.csv").open()))
    assert len(rows) == n and sum(r["flagged"] == "True" for r in rows) == left_out
    assert {int(r["row_id"]) for r in rows if r["flagged"] == "True"} == set(select.flagged().tolist())
