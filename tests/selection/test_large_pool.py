"""A pool above selection.fit_rows: streamed into the feature store, valued on a seeded sample, the values carried
to every row by a model of the sample's values; a second valuation encodes nothing."""

from __future__ import annotations

import csv
import json

import numpy as np
import yaml

from autoft.cli import main
from autoft.selection import embeddings
from tests.conftest import TOPICS, synthetic_rows, write_csv

NAMES = tuple(TOPICS)


def _pool(tmp_path, n=3000, seed=3):
    rng = np.random.default_rng(seed)
    rows, flipped = [], []
    for text, label in synthetic_rows(n, seed):
        wrong = rng.random() < 0.2
        rows.append((text, NAMES[(NAMES.index(label) + 1 + rng.integers(2)) % 3] if wrong else label))
        flipped.append(wrong)
    return write_csv(tmp_path / "pool.csv", rows), np.array(flipped)


def test_a_pool_above_fit_rows_is_valued_row_by_row_in_file_order(tmp_path, tiny_model_dir, capsys, monkeypatch):
    pool, flipped = _pool(tmp_path)
    config = {
        "task": "classification",
        "model": str(tiny_model_dir),
        "output_dir": str(tmp_path / "values"),
        "data": {"train": str(pool), "validation": str(write_csv(tmp_path / "val.csv", synthetic_rows(150, 9)))},
        "training": {"max_length": 32, "progress": False},
        "selection": {"policy": "exp3", "fit_rows": 600},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["value", str(path), "--no-progress", "--show", "5"]) == 0
    printed = capsys.readouterr().out
    assert "3000 samples valued" in printed
    rows = list(csv.DictReader((tmp_path / "values" / "data_values.csv").open()))
    assert [int(r["row_id"]) for r in rows] == list(range(3000))  # file order
    assert [r["origin"] for r in rows[:2]] == [f"{pool}:2", f"{pool}:3"]
    by = np.array([r["valued_by"] for r in rows])
    assert (by == "offline phase").sum() == 600 and (by == "value model").sum() == 2400
    flagged = np.array([r["flagged"] == "True" for r in rows])
    carried = by == "value model"
    # The rows valued through the value model are flagged as well as the sample's: mostly the flipped ones.
    assert flipped[flagged & carried].mean() > 0.6 and flagged[flipped & carried].mean() > 0.6
    noise = json.loads((tmp_path / "values" / "noise.json").read_text())
    assert noise["rows"] == 3000 and abs(noise["rate"] - flipped.mean()) < 0.1
    assert noise["value_model"]["held_out_spearman"] > 0.5
    lowest = [line for line in printed.splitlines() if line.startswith("  ")][:5]
    assert len(lowest) == 5 and round(min(float(r["value"]) for r in rows), 3) == float(lowest[0].split()[0])

    # Valued again: every feature comes from the store; the encoder is never loaded.
    def refuse(*args, **kwargs):
        raise AssertionError("the encoder was loaded although every text is stored")

    monkeypatch.setattr(embeddings, "Encoder", refuse)
    assert main(["value", str(path), "--no-progress"]) == 0
    again = list(csv.DictReader((tmp_path / "values" / "data_values.csv").open()))
    assert [r["value"] for r in again] == [r["value"] for r in rows]
