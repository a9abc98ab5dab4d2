"""Scoring a model on labelled examples, and what callbacks may ask of the model while it trains."""

from __future__ import annotations

from typing import Any, Literal, overload

import numpy as np
import torch

from autoft.config import TrainingConfig
from autoft.data.loading import Example
from autoft.tasks.base import Feature, TaskAdapter
from autoft.tasks.text_metrics import perplexity
from autoft.training.inference import predict_probabilities


@overload
def evaluate(
    model: torch.nn.Module,
    adapter: TaskAdapter,
    examples: list[Example],
    features: list[Feature],
    *,
    batch_size: int,
    progress: bool = ...,
    description: str = ...,
    return_predictions: Literal[False] = ...,
    loss_only: bool = ...,
    tune_decision: bool = ...,
) -> dict[str, Any]: ...
@overload
def evaluate(
    model: torch.nn.Module,
    adapter: TaskAdapter,
    examples: list[Example],
    features: list[Feature],
    *,
    batch_size: int,
    progress: bool = ...,
    description: str = ...,
    return_predictions: Literal[True],
    loss_only: bool = ...,
    tune_decision: bool = ...,
) -> tuple[dict[str, Any], list[Any]]: ...
def evaluate(
    model: torch.nn.Module,
    adapter: TaskAdapter,
    examples: list[Example],
    features: list[Feature],
    *,
    batch_size: int,
    progress: bool = False,
    description: str = "evaluate",
    return_predictions: bool = False,
    loss_only: bool = False,
    tune_decision: bool = False,
) -> dict[str, Any] | tuple[dict[str, Any], list[Any]]:
    """Metrics (and mean loss) of ``model`` on labelled ``examples``; with ``return_predictions``, also
    the decoded prediction of each example. ``loss_only``: the loss (and its perplexity) without predicting.
    ``tune_decision``: the adapter's decision settings (multi-label thresholds) are first tuned on these examples'
    probabilities, then the predictions are decoded with them."""
    probabilities, loss = predict_probabilities(
        model,
        adapter,
        features,
        batch_size=batch_size,
        progress=progress,
        description=description,
        with_loss=True,
        outputs=not loss_only,
    )
    if tune_decision and not loss_only:
        adapter.tune_decision(probabilities, examples)
    predictions = [None if p is None else adapter.decode(p) for p in probabilities]
    metrics = {} if loss_only else adapter.metrics(examples, predictions)
    metrics["loss"] = loss
    if adapter.validate_by_loss and loss is not None:
        metrics["perplexity"] = perplexity(loss)
    return (metrics, predictions) if return_predictions else metrics


class ModelAccess:
    """What callbacks may ask of the model as it trains (``TrainState.evaluate``, ``score``, ``predict``,
    ``predict_rows``): each reads the model as it is when called. ``train_features`` is every training row,
    unlabelled ones included once the loop appends them."""

    def __init__(
        self,
        model: torch.nn.Module,
        adapter: TaskAdapter,
        train_features: list[Feature],
        config: TrainingConfig,
        *,
        show: bool,
    ):
        self.model, self.adapter, self.train_features = model, adapter, train_features
        self.batch_size, self.show = config.eval_batch_size, show

    def evaluate(self, examples: list[Example], features: list[Feature] | None = None, *, loss_only: bool = False):
        return evaluate(
            self.model,
            self.adapter,
            examples,
            self.adapter.encode(examples) if features is None else features,
            batch_size=self.batch_size,
            return_predictions=True,
            loss_only=loss_only,
        )

    def score(self, rows: np.ndarray) -> np.ndarray:
        scored = [self.train_features[i] for i in np.asarray(rows, dtype=np.int64)]
        probabilities, _ = predict_probabilities(
            self.model, self.adapter, scored, batch_size=self.batch_size, progress=self.show, description="score"
        )
        return np.array([self.adapter.label_margin(p, f) for p, f in zip(probabilities, scored)])

    def predict(self, features: list[Feature]) -> list[np.ndarray]:
        return predict_probabilities(
            self.model, self.adapter, features, batch_size=self.batch_size, progress=self.show, description="predict"
        )[0]

    def predict_rows(self, rows: np.ndarray) -> list[np.ndarray]:
        return self.predict([self.train_features[i] for i in np.asarray(rows, dtype=np.int64)])


__all__ = ["ModelAccess", "evaluate"]
