"""How anything outside the loop — the data-selection agent above all — steers training: one callback
protocol in the style of transformers' ``TrainerCallback``.

Every event gets the same ``TrainState``. A callback reads it (epoch, step, the last validation
metrics) and writes to it what the loop should do: ``weights`` (one per training sample: 0 leaves the
sample out of the epoch's batches, other values scale its loss) and ``masked_words`` (NER: word
positions whose tags leave the loss while the rest of the sentence trains). What a callback needs of
the model it asks the state for — ``state.evaluate`` (metrics and predictions on any labelled
examples, e.g. the agent's own reward split), ``state.score`` (the model's label margins on training
rows), ``state.predict`` (class probabilities of any encoded features) — so the loop runs no pass on a
callback's behalf. The loop's own validation data chooses early stopping and the best epoch, and nothing
else. Unlabelled rows (``data.unlabeled``) follow the labelled ones (from ``n_labelled`` on): they train
only on the pseudo-labels a callback sets in ``pseudo_labels``.

Several callbacks run in order through :class:`CallbackList`.

Events, in order: ``on_train_begin``; per epoch ``on_epoch_begin`` (set weights / masks for the epoch),
``on_step_end`` after each optimisation step (sees the batch; new ``weights`` apply to the rest of the
epoch's losses), ``on_epoch_end`` (after the epoch's training steps), ``on_evaluate`` (after the loop's
validation); ``on_train_end``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autoft.training.snapshot import restore, snapshot

Evaluate = Callable[..., tuple[dict[str, Any], list[Any]]]
Encode = Callable[..., list[Any]]
Score = Callable[[np.ndarray], np.ndarray]
Predict = Callable[[list[Any]], list[np.ndarray]]
PredictRows = Callable[[np.ndarray], list[np.ndarray]]
"""What ``TrainState`` gives callbacks to ask of the model (the loop sets each; a callback casts away the None)."""


@dataclass
class StepOutput:
    """One optimisation step, as the loop saw it (no gradients attached)."""

    indices: np.ndarray  # [B] training rows of the batch
    losses: torch.Tensor  # [B] per-sample loss (mean per loss unit: token for NER)
    logits: torch.Tensor | None  # [B, C] or [B, T, C]; None only from several processes training a language model
    labels: torch.Tensor  # [B] or [B, T]


@dataclass
class TrainState:
    """What the loop knows, and what callbacks ask of it."""

    n_samples: int
    n_labelled: int | None = None
    """Rows from here on have no label (``None``: every row has one)."""
    epoch: int = 0
    step: int = 0
    learning_rate: float = 0.0
    """The rate of the next optimisation step (after warm-up and decay by the share of planned epochs done)."""
    loss: float | None = None
    """The last optimisation step's loss (the weighted mean the step minimised)."""
    search_rows: np.ndarray | None = None
    """Labelled rows the learning-rate range test (``learning_rate: auto``) trains on; ``None``: all of them. A
    callback may narrow it in ``on_train_begin`` (the agent: the rows it keeps first, so noisy labels do not
    choose the rate)."""
    weights: np.ndarray | None = None
    """[N] per-sample loss weights (0: left out); ``None``: every sample, weight 1. Read at each epoch's
    start (which samples are drawn) and after each step (the weights of the rest of the epoch)."""
    row_scale: np.ndarray | None = None
    """[N labelled] a fixed factor per training row that multiplies its loss across batches, not only within one
    (``weights`` are normalised within each batch, so a batch of equally weighted rows — e.g. rows of one
    length, grouped — trains as if unweighted); the loop divides it by its mean over the rows each epoch draws,
    so the step size stays that of an unscaled run. ``None``: 1 for every row. A callback sets it, usually in
    ``on_train_begin`` (a continual update's replayed rows, which stand for all the old data)."""
    masked_words: dict[int, list[int]] = field(default_factory=dict)
    """Per training row, word positions whose tags this epoch leaves out of the loss (NER)."""
    relabels: dict[int, int] = field(default_factory=dict)
    """Per training row, the class id it trains on this epoch instead of its given label (classification)."""
    retagged: dict[int, dict[int, str]] = field(default_factory=dict)
    """Per training row, word position -> the tag it trains on this epoch instead of its given one (NER)."""
    pseudo_labels: dict[int, tuple[int, float]] = field(default_factory=dict)
    """Per unlabelled row, (class id, loss weight) it trains on this epoch; unlabelled rows not here are left out."""
    label_transition: np.ndarray | None = None
    """[C, C] ``T[y, k]``, the probability that a sample of true class ``y`` was given label ``k``
    (classification). When a callback sets it, rows that train on their given label this epoch use the
    forward-corrected loss (``TaskAdapter.per_sample_loss``); relabelled and pseudo-labelled rows do not."""
    loss_penalty: Callable[[torch.nn.Module], torch.Tensor] | None = None
    """``loss_penalty(model)``: a scalar added to every training step's loss (e.g. EWC's or an L2 pull toward
    the weights a continual update started from); a callback sets it, usually in ``on_train_begin``."""
    logit_penalty: (
        Callable[[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None
    ) = None
    """``logit_penalty(batch, logits, labels, index)``: a scalar added to every training step's loss from the
    step's inputs (``input_ids``, ``attention_mask``, ...), its logits, labels and training-row indices (e.g.
    distillation from the model a continual update started from); a callback sets it, usually in
    ``on_train_begin``."""
    intervention: float = 1.0
    """How far a data-selection agent intervenes: 1 fully, 0 not at all (the rest of the run trains as plain
    fine-tuning would). A callback watching the agent's evidence lowers it (``autoft.selection.guard.BackOff``); the
    agent scales what it leaves out by it."""
    validation: dict[str, Any] | None = None
    """The loop's last validation metrics (the split that chooses early stopping and the best epoch)."""
    validation_predictions: list[Any] | None = None
    evaluate: Evaluate | None = None
    """``evaluate(examples, features=None)``: the current model's metrics and decoded predictions on
    labelled ``examples`` (features are encoded when not given)."""
    encode: Encode | None = None
    """``encode(examples, with_labels=True)``: the task adapter's features of ``examples`` (to encode once,
    evaluate often)."""
    score: Score | None = None
    """``score(rows)``: the current model's margin for the given label of each training row."""
    predict: Predict | None = None
    """``predict(features)``: the current model's class probabilities for each encoded feature."""
    predict_rows: PredictRows | None = None
    """``predict_rows(rows)``: the same for training rows (by index)."""
    model: torch.nn.Module | None = None
    """The model being trained, for a callback that must look inside it (a forward hook on its output layer:
    ``autoft.selection.alignment.AlignmentRewards``); callbacks do not run passes of it themselves."""

    @property
    def labelled(self) -> int:
        return self.n_samples if self.n_labelled is None else self.n_labelled

    def sample_weights(self) -> np.ndarray:
        """[N] the loss weight of every training row: ``weights`` (1 for every labelled row when no callback
        set them), then each unlabelled row's pseudo-label weight (0 without one)."""
        weights = np.zeros(self.n_samples)
        given = np.ones(self.labelled) if self.weights is None else np.asarray(self.weights, dtype=np.float64)
        weights[: len(given)] = given
        weights[self.labelled :] = 0.0
        for row, (_, weight) in self.pseudo_labels.items():
            weights[row] = weight
        return weights


class TrainerCallback:
    """Base class: every event does nothing. Override the ones you need.

    ``state_dict`` / ``load_state_dict`` let the loop checkpoint a run and resume it. By default they save and restore
    the attributes named in ``SAVED`` (``training.snapshot``: JSON, no pickle; an attribute holding an object, such
    as a policy, is restored in place); ``()`` for a callback whose state is all given, not learned. ``SAVED =
    None`` (the default) says the callback cannot be saved, and the loop then writes no checkpoints."""

    SAVED: tuple[str, ...] | None = None

    def state_dict(self) -> dict[str, Any] | None:
        return None if self.SAVED is None else snapshot(self, self.SAVED)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` gave."""
        restore(self, state)

    def on_train_begin(self, state: TrainState) -> None:
        """Before the training settings are resolved and the first epoch; may set ``state.search_rows``."""

    def on_epoch_begin(self, state: TrainState) -> None:
        """Set ``state.weights`` / ``state.relabels`` / ``state.masked_words`` for this epoch."""

    def on_step_end(self, state: TrainState, output: StepOutput) -> None:
        """After each optimisation step; may change ``state.weights`` for the rest of the epoch."""

    def on_epoch_end(self, state: TrainState) -> None:
        """After the epoch's training steps, before the loop's validation."""

    def on_evaluate(self, state: TrainState) -> None:
        """After the loop's validation (``state.validation``, ``state.validation_predictions``)."""

    def on_train_end(self, state: TrainState) -> None:
        """After the last epoch, once the best epoch's weights are restored (the model the run keeps)."""

    # What a callback adds to the run directory, which ``autoft.run.train`` asks of every callback once training
    # has ended. Each gives nothing by default.

    def resolved_selection(self) -> Any | None:
        """The selection settings it trained with, every ``auto`` resolved (the run's ``config.yaml``), or None."""
        return None

    def run_metrics(self) -> dict[str, Any]:
        """Entries it adds to the run's ``metrics.json`` (e.g. the agent's ``noise``)."""
        return {}

    def run_warnings(self) -> list[str]:
        """Warnings for the run's ``metrics.json`` (e.g. a class that lost more than half its rows)."""
        return []

    def decision_records(self) -> list[dict[str, Any]]:
        """Its decisions, which ``metrics.jsonl`` interleaves with the loop's steps and epochs."""
        return []

    def repairs(self) -> tuple[np.ndarray, dict[int, int]] | None:
        """The training rows it leaves out and the rows it relabels (row -> class id), which the run writes as
        ``corrected.<ext>``; None when it repairs nothing."""
        return None

    def write_artifacts(self, folder: Path, examples: list[Any], label_names: list[str]) -> None:
        """Write its own files into the run directory being written (``folder``)."""


class RowWeights(TrainerCallback):
    """Scales the loss of some training rows by ``factor`` (``TrainState.row_scale``): e.g. a continual update's
    replayed rows, which stand for all the old data they were drawn from. The factor holds whatever weights other
    callbacks set (a row they leave out stays out) and in every batch, however batches group the rows."""

    def __init__(self, rows: list[int] | np.ndarray, factor: float) -> None:
        self.rows = np.asarray(rows, dtype=np.int64)
        self.factor = factor

    SAVED = ()  # (its rows and factor are given, not learned)

    def on_train_begin(self, state: TrainState) -> None:
        scale = np.ones(state.labelled) if state.row_scale is None else np.asarray(state.row_scale, dtype=np.float64)
        scale = scale.copy()
        scale[self.rows] *= self.factor
        state.row_scale = scale


class CallbackList(TrainerCallback):
    """Several callbacks, each event passed to each in order (later ones see what earlier ones set)."""

    def __init__(self, callbacks: list[TrainerCallback]) -> None:
        self.callbacks = list(callbacks)

    def state_dict(self) -> dict[str, Any] | None:
        states = [c.state_dict() for c in self.callbacks]
        return None if any(s is None for s in states) else {"callbacks": states}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for callback, saved in zip(self.callbacks, state["callbacks"], strict=True):
            callback.load_state_dict(saved)

    def _each(self, event: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, event)(*args)

    def on_train_begin(self, state: TrainState) -> None:
        self._each("on_train_begin", state)

    def on_epoch_begin(self, state: TrainState) -> None:
        self._each("on_epoch_begin", state)

    def on_step_end(self, state: TrainState, output: StepOutput) -> None:
        self._each("on_step_end", state, output)

    def on_epoch_end(self, state: TrainState) -> None:
        self._each("on_epoch_end", state)

    def on_evaluate(self, state: TrainState) -> None:
        self._each("on_evaluate", state)

    def on_train_end(self, state: TrainState) -> None:
        self._each("on_train_end", state)

    def resolved_selection(self) -> Any | None:
        return next((s for s in (c.resolved_selection() for c in self.callbacks) if s is not None), None)

    def run_metrics(self) -> dict[str, Any]:
        return {k: v for c in self.callbacks for k, v in c.run_metrics().items()}

    def run_warnings(self) -> list[str]:
        return [w for c in self.callbacks for w in c.run_warnings()]

    def decision_records(self) -> list[dict[str, Any]]:
        return [r for c in self.callbacks for r in c.decision_records()]

    def repairs(self) -> tuple[np.ndarray, dict[int, int]] | None:
        return next((r for r in (c.repairs() for c in self.callbacks) if r is not None), None)

    def write_artifacts(self, folder: Path, examples: list[Any], label_names: list[str]) -> None:
        self._each("write_artifacts", folder, examples, label_names)


__all__ = ["CallbackList", "RowWeights", "StepOutput", "TrainState", "TrainerCallback"]
