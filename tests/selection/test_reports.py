"""data_values.csv: every column described, and model_label filled for every row a model pass scored."""

import csv

import autoft
from autoft.selection.reports import DATA_VALUE_COLUMNS, DATA_VALUE_MEANINGS
from tests.conftest import tiny_config

LABELS = ["food", "sport", "tech"]


def test_every_column_of_data_values_has_a_meaning():
    assert list(DATA_VALUE_MEANINGS) == DATA_VALUE_COLUMNS
    assert all(len(meaning) > 20 for meaning in DATA_VALUE_MEANINGS.values())


def test_every_row_of_an_agent_run_has_the_models_label_left_out_rows_too(tiny_model_dir, noisy_files, tmp_path):
    """A row the agent leaves out of every epoch is never in a training step; the model labels it as training
    ends, so model_label is empty for none (it was for most dropped rows)."""
    files, _ = noisy_files
    config = tiny_config(tiny_model_dir, files, tmp_path / "run", epochs=1, learning_rate=3e-3)
    config["selection"] = {"policy": "small-loss", "drop_fraction": 0.3}
    run = autoft.train(config)
    with open(tmp_path / "run" / "data_values.csv", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    dropped = [r for r in rows if r["action"] == "drop"]
    assert len(dropped) == 45 and all(r["model_label"] in LABELS for r in rows)
    texts = [r["text"] for r in dropped]  # one epoch: the model as training ended is the run's model
    assert [p["label"] for p in run.predict(texts)] == [r["model_label"] for r in dropped]
