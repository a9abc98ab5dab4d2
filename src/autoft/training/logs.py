"""Experiment logs: every optimisation step and epoch as a record (``metrics.jsonl`` in the run directory), gathered by
a ``TrainerCallback``; the same scalars as TensorBoard event files (``training.logging: tensorboard``) or an MLflow
run with the config and the run directory (``training.logging: mlflow``)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from autoft.errors import ConfigError
from autoft.training.callbacks import StepOutput, TrainerCallback, TrainState

log = logging.getLogger(__name__)


class MetricsLog(TrainerCallback):
    """Records ``{"type": "step", step, epoch, loss, learning_rate, seconds}`` after each optimisation step and
    ``{"type": "epoch", epoch, step, train_loss, validation: {...}, seconds}`` after each validation."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.started = time.perf_counter()
        self._epoch_loss, self._epoch_seen = 0.0, 0

    def state_dict(self) -> dict[str, Any]:
        return {"records": self.records, "seconds": time.perf_counter() - self.started}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.records = list(state["records"])
        self.started = time.perf_counter() - state["seconds"]

    def on_epoch_begin(self, state: TrainState) -> None:
        self._epoch_loss, self._epoch_seen = 0.0, 0

    def on_step_end(self, state: TrainState, output: StepOutput) -> None:
        if state.loss is None:
            return
        self._epoch_loss += state.loss * len(output.indices)
        self._epoch_seen += len(output.indices)
        self.records.append(
            {
                "type": "step",
                "step": state.step,
                "epoch": state.epoch,
                "loss": state.loss,
                "learning_rate": state.learning_rate,
                "seconds": round(time.perf_counter() - self.started, 3),
            }
        )

    def on_evaluate(self, state: TrainState) -> None:
        validation = {k: v for k, v in (state.validation or {}).items() if not isinstance(v, dict)}
        train_loss = self._epoch_loss / self._epoch_seen if self._epoch_seen else None
        self.records.append(
            {
                "type": "epoch",
                "epoch": state.epoch,
                "step": state.step,
                "train_loss": train_loss,
                "validation": validation,
                "seconds": round(time.perf_counter() - self.started, 3),
            }
        )

    def scalars(self) -> list[tuple[str, float, int]]:
        """``(tag, value, step)`` of every number recorded: per step ``train/loss`` and ``train/learning_rate``,
        per epoch ``epoch/train_loss`` and ``validation/<metric>``."""
        out = []
        for record in self.records:
            if record["type"] == "step":
                out += [
                    ("train/loss", record["loss"], record["step"]),
                    ("train/learning_rate", record["learning_rate"], record["step"]),
                ]
            else:
                if record["train_loss"] is not None:
                    out.append(("epoch/train_loss", record["train_loss"], record["epoch"]))
                out += [
                    (f"validation/{k}", v, record["epoch"])
                    for k, v in record["validation"].items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)
                ]
        return out

    def lines(self, decisions: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """The records, then one ``{"type": "agent", ...}`` line per agent decision."""
        return [*self.records, *({"type": "agent", **d} for d in decisions or [])]


def write_tensorboard(folder: str | Path, scalars: list[tuple[str, float, int]]) -> None:
    """TensorBoard event files of ``scalars`` in ``folder`` (``torch.utils.tensorboard``, which needs the
    ``tensorboard`` package)."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(folder))
    try:
        for tag, value, step in scalars:
            writer.add_scalar(tag, value, step)
    finally:
        writer.close()


def _flat(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flat(f"{prefix}.{key}" if prefix else str(key), inner))
        return out
    return {prefix: value}


PACKAGES = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow-skinny")}
"""``training.logging`` -> (the module it imports, the package that provides it)."""


def check_logging(kind: str) -> None:
    """``ConfigError`` now, before any training, when ``training.logging: kind`` needs a package that is missing."""
    import importlib.util

    if kind in PACKAGES and importlib.util.find_spec(PACKAGES[kind][0]) is None:
        module, package = PACKAGES[kind]
        raise ConfigError(f"training.logging: {kind} needs the {module} package: pip install {package}")


def log_to_mlflow(
    folder: str | Path,
    settings: Any,
    *,
    config: dict[str, Any],
    scalars: list[tuple[str, float, int]],
    final: dict[str, dict[str, Any] | None],
) -> str | None:
    """One MLflow run named after ``folder``: ``config`` (flattened) as params, ``scalars`` and the numbers of
    ``final`` (``{prefix: metrics}``) as metrics, ``folder`` as artifacts, in ``settings.mlflow_experiment`` at
    ``settings.mlflow_uri`` (default ``$MLFLOW_TRACKING_URI``, else ``./mlruns``: MLflow's file store, which this
    explicit choice allows). The run directory is complete before this: a tracking failure is logged, not raised.
    Returns the MLflow run id (None after a failure)."""
    import os

    import mlflow

    uri = settings.mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI") or Path("mlruns").resolve().as_uri()
    if uri.startswith("file:") or "://" not in uri:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    numbers = {
        f"{prefix}.{k}": v
        for prefix, metrics in final.items()
        for k, v in (metrics or {}).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    try:
        client = mlflow.tracking.MlflowClient(uri)
        found = client.get_experiment_by_name(settings.mlflow_experiment)
        experiment_id = (
            found.experiment_id if found is not None else client.create_experiment(settings.mlflow_experiment)
        )
        run = client.create_run(experiment_id, run_name=Path(folder).name)
    except Exception as error:  # noqa: BLE001 - the run is written; a tracking server's failure must not undo it
        log.error("MLflow logging failed (the run directory is complete): %s", error)
        return None
    try:
        params = [mlflow.entities.Param(k, str(v)[:6000]) for k, v in _flat("", config).items()]
        metrics = [mlflow.entities.Metric(tag.replace("/", "."), float(value), 0, step) for tag, value, step in scalars]
        metrics += [mlflow.entities.Metric(name, float(value), 0, 0) for name, value in numbers.items()]
        for start in range(0, max(len(params), len(metrics)), 100):  # MLflow's batch limits
            client.log_batch(run.info.run_id, params=params[start : start + 100], metrics=metrics[start : start + 100])
        client.log_artifacts(run.info.run_id, str(folder))
    except Exception as error:  # noqa: BLE001 - as above
        client.set_terminated(run.info.run_id, "FAILED")
        log.error("MLflow logging failed (the run directory is complete): %s", error)
        return None
    client.set_terminated(run.info.run_id)
    log.info("logged to MLflow: experiment %s, run %s", settings.mlflow_experiment, run.info.run_id)
    return run.info.run_id


__all__ = ["MetricsLog", "check_logging", "log_to_mlflow", "write_tensorboard"]
