"""Dense, per-sample rewards from the clean validation set: after every optimisation step, each training row of the
batch is rewarded by how its gradient on the output layer aligns with the gradient of a validation mini-batch's loss
(learning to reweight, Ren et al. ICML 2018, on the last layer alone, where it costs one small matrix product).

For a softmax output layer ``W`` fed ``h``, a row's loss gradient is ``(p - y) h^T``; the validation mini-batch's is
``G = mean_v (p_v - y_v) h_v^T``. The reward of row i is the projection ``(p_i - y_i)^T G h_i / ||G||``: positive when
a step on the row also lowers the validation loss, negative when it pulls against the clean labels, as a wrong label
does. ``G`` is measured again every ``every`` steps on ``reward_batch`` of the agent's reward rows (never the rows that
choose early stopping). The policy (``GradientAlignment``) learns each row's value from its rewards.

The output layer's input is read with a forward hook (``TrainState.model``); classification and relation extraction
(one label per row) are rewarded, other tasks are not (their policy keeps its prior).
"""

from __future__ import annotations

import logging
from typing import Any, cast

import numpy as np
import torch

from autoft.data.loading import Example
from autoft.errors import ConfigError
from autoft.modeling.heads import output_layer
from autoft.training.callbacks import Encode, Predict, StepOutput, TrainerCallback, TrainState
from autoft.training.inference import in_feature_order

log = logging.getLogger(__name__)
EVERY = 20
"""Steps between two measurements of the validation gradient when ``selection.update_every`` is not a number."""


class AlignmentRewards(TrainerCallback):
    """Rewards ``policy.update_samples`` with each trained row's alignment with the validation gradient."""

    SAVED = ("rewards_given", "_gradient")

    def __init__(
        self,
        policy: Any,
        reward_examples: list[Example],
        label_ids: dict[str, int],
        *,
        every: int = EVERY,
        batch: int = 128,
        seed: int = 0,
    ) -> None:
        self.policy = policy
        size = min(batch, len(reward_examples))
        rows = np.sort(np.random.default_rng(seed).choice(len(reward_examples), size, replace=False))
        self.examples = [reward_examples[i] for i in rows]
        self.labels = np.array([label_ids[cast(str, e.label)] for e in self.examples])
        self.every = every
        self.rewards_given = 0
        self._features: list[Any] | None = None
        self._captured: list[torch.Tensor] | None = None  # a list only while ``_measure`` runs its pass
        self._step_input: torch.Tensor | None = None
        self._gradient: np.ndarray | None = None  # G / ||G||, [C, D]
        self._hook: Any = None
        self._relabelled = np.array([], dtype=np.int64)

    def _capture(self, module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        """A training step's input of the output layer (train mode) replaces the last; the batches of the validation
        mini-batch's pass (eval mode, while ``_measure`` runs) are collected; other passes are not kept."""
        if module.training:
            self._step_input = inputs[0].detach().float().cpu()
        elif self._captured is not None:
            self._captured.append(inputs[0].detach().float().cpu())

    def on_train_begin(self, state: TrainState) -> None:
        if state.model is None or self._hook is not None:
            return
        try:
            self._hook = output_layer(state.model).register_forward_hook(self._capture)
        except ConfigError as error:  # no output layer over the labels: nothing to reward with
            log.info("alignment rewards off: %s", error)

    def on_epoch_begin(self, state: TrainState) -> None:
        # rewarded for their given label only
        self._relabelled = np.array([*state.relabels, *state.pseudo_labels], dtype=np.int64)

    def _measure(self, state: TrainState) -> None:
        """``G`` on the validation mini-batch, from one forward pass (the hook sees its batches by length)."""
        if self._features is None:
            self._features = cast(Encode, state.encode)(self.examples)
        self._captured = []
        try:
            probabilities = np.stack(cast(Predict, state.predict)(self._features))
            h = in_feature_order(torch.cat(self._captured).numpy(), self._features)
        finally:
            self._captured = None
        error = probabilities.copy()
        error[np.arange(len(error)), self.labels] -= 1.0
        gradient = error.T @ h / len(h)
        norm = float(np.linalg.norm(gradient))
        self._gradient = gradient / norm if norm > 0 else None

    def on_step_end(self, state: TrainState, output: StepOutput) -> None:
        h, self._step_input = self._step_input, None
        if h is None or output.logits is None or output.logits.ndim != 2 or len(h) != len(output.indices):
            return  # (no hook, a task without one label per row, or a step that was not one forward pass)
        if self._gradient is None or (state.step - 1) % self.every == 0:
            self._measure(state)
            if self._gradient is None:
                return
        logits = output.logits.float().cpu()
        error = torch.softmax(logits, dim=-1).numpy()
        labels = output.labels.cpu().numpy()
        error[np.arange(len(error)), labels] -= 1.0
        rewards = np.einsum("bc,cd,bd->b", error, self._gradient, h.numpy())
        indices = np.asarray(output.indices)
        mine = (indices < len(self.policy.prior_)) & ~np.isin(indices, self._relabelled)  # (not pseudo-labelled rows)
        if mine.any():
            self.policy.update_samples(indices[mine], rewards[mine])
            self.rewards_given += int(mine.sum())

    def on_train_end(self, state: TrainState) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        log.info("alignment rewards: %d, over %d rows", self.rewards_given, int((self.policy.reward_count_ > 0).sum()))


__all__ = ["AlignmentRewards"]
