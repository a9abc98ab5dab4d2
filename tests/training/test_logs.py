"""metrics.jsonl (always) and TensorBoard event files (training.logging: tensorboard) hold every step and epoch."""

import json

import pytest

import autoft
from autoft.errors import ConfigError
from tests.conftest import tiny_config


def test_every_step_and_epoch_is_logged_and_tensorboard_holds_the_same_scalars(
    tmp_path, tiny_model_dir, classification_files
):
    config = tiny_config(tiny_model_dir, classification_files, tmp_path / "run", epochs=2, logging="tensorboard")
    config["selection"] = {"policy": "random", "drop_fraction": 0.2}
    run = autoft.train(config)
    lines = [json.loads(line) for line in (run.path / "metrics.jsonl").open()]
    steps = [r for r in lines if r["type"] == "step"]
    epochs = [r for r in lines if r["type"] == "epoch"]
    assert [r["step"] for r in steps] == list(range(1, len(steps) + 1)) and len(steps) == 2 * 9  # 72 rows / 8 twice
    assert [r["epoch"] for r in epochs] == [1, 2]
    for record, epoch in zip(epochs, run.metrics["epochs"]):
        assert record["validation"]["macro_f1"] == pytest.approx(epoch["validation"]["macro_f1"])
        assert record["train_loss"] == pytest.approx(epoch["train_loss"], rel=1e-6)
    assert any(r["type"] == "agent" and r.get("event") == "select" for r in lines)  # the agent's decisions too
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run.path / "tensorboard"))
    events.Reload()
    losses = [e.value for e in events.Scalars("train/loss")]
    assert losses == pytest.approx([r["loss"] for r in steps], rel=1e-6)
    assert [e.value for e in events.Scalars("validation/macro_f1")] == pytest.approx(
        [r["validation"]["macro_f1"] for r in epochs], rel=1e-6
    )


def test_tensorboard_without_its_package_is_a_config_error(tmp_path, tiny_model_dir, classification_files, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(ConfigError, match="pip install tensorboard"):
        autoft.train(tiny_config(tiny_model_dir, classification_files, tmp_path / "run", logging="tensorboard"))
    assert not (tmp_path / "run").exists()


def test_mlflow_gets_the_params_the_scalars_and_the_run_directory(tmp_path, tiny_model_dir, classification_files):
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    run = autoft.train(
        tiny_config(
            tiny_model_dir,
            classification_files,
            tmp_path / "run",
            epochs=2,
            logging="mlflow",
            mlflow_uri=uri,
            mlflow_experiment="tests",
        )
    )
    client = MlflowClient(uri)
    [logged] = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert logged.info.status == "FINISHED" and logged.info.run_name == "run"
    assert logged.data.params["training.learning_rate"] == str(run.config.training.learning_rate)
    assert logged.data.metrics["test.macro_f1"] == pytest.approx(run.metrics["test"]["macro_f1"])
    history = client.get_metric_history(logged.info.run_id, "validation.macro_f1")
    assert [m.value for m in history] == pytest.approx([e["validation"]["macro_f1"] for e in run.metrics["epochs"]])
    assert {"metrics.json", "metrics.jsonl", "model"} <= {a.path for a in client.list_artifacts(logged.info.run_id)}
