"""An epoch as the callbacks shape it: their choice of samples (``choose_samples``), the epoch's view of the rows
(relabels, pseudo-labels, retagged and masked words: ``epoch_view``), the rows it draws (``drawn_rows``), each row's
loss scale across batches (``loss_scales``) and one batch's weighted loss (``step_loss``). The loop
(:mod:`autoft.training.loop`) runs them."""

from __future__ import annotations

from typing import cast

import numpy as np
import torch
from accelerate import Accelerator

from autoft.tasks.base import Feature, TaskAdapter
from autoft.training.callbacks import StepOutput, TrainerCallback, TrainState
from autoft.training.processes import main_process_choice


def choose_samples(state: TrainState, callback: TrainerCallback, accelerator: Accelerator) -> None:
    """The callbacks' choice for an epoch (weights, relabels, masks, pseudo-labels, loss correction); with several
    processes, the main process's for all (the agents agree, by seed)."""
    state.weights, state.masked_words, state.relabels, state.pseudo_labels = None, {}, {}, {}
    state.retagged = {}
    state.label_transition = None
    callback.on_epoch_begin(state)
    state.weights, state.relabels, state.masked_words, state.pseudo_labels = main_process_choice(
        accelerator, (state.weights, state.relabels, state.masked_words, state.pseudo_labels)
    )


def epoch_view(
    adapter: TaskAdapter,
    train_features: list[Feature],
    epoch_features: list[Feature],
    state: TrainState,
    n_labelled: int,
    device: torch.device,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Fills ``epoch_features`` with this epoch's view of the rows (relabels, pseudo-labels, retagged and masked
    words); returns the forward correction's transition and the rows that train on their given label under it."""
    epoch_features[:] = train_features
    for i, label in [*state.relabels.items(), *((i, c) for i, (c, _) in state.pseudo_labels.items())]:
        epoch_features[i] = adapter.relabel(train_features[i], label)
    for i, tags in state.retagged.items():
        epoch_features[i] = adapter.retag_words(epoch_features[i], tags)
    for i, words in state.masked_words.items():
        epoch_features[i] = adapter.mask_words(epoch_features[i], words)
    if state.label_transition is None:
        return None, None
    transition = torch.as_tensor(state.label_transition, dtype=torch.float32, device=device)
    given = torch.zeros(len(train_features), dtype=torch.bool, device=device)
    given[:n_labelled] = True
    given[[*state.relabels, *state.pseudo_labels]] = False
    return transition, given


def _row_scale(state: TrainState, n: int) -> np.ndarray:
    """[n] ``TrainState.row_scale``, 1 for the rows it does not cover (unlabelled rows) or when unset."""
    scale = np.ones(n)
    if state.row_scale is not None:
        scale[: len(state.row_scale)] = state.row_scale
    return scale


def drawn_rows(state: TrainState) -> np.ndarray:
    """The rows an epoch draws: weight above 0 (``TrainState.sample_weights``) and a loss scale above 0."""
    weights = state.sample_weights()
    return np.flatnonzero(weights * _row_scale(state, len(weights)) > 0)


def loss_scales(state: TrainState, pool: np.ndarray, device: torch.device) -> torch.Tensor | None:
    """[N] each row's ``row_scale`` over its mean, weighted by the rows' weights, among the ``pool`` the epoch
    draws: the step size of an unscaled run, shared out by the scale across batches. None when nothing is
    scaled."""
    if state.row_scale is None:
        return None
    weights = state.sample_weights()
    scale, drawn = _row_scale(state, len(weights)), weights[pool]
    mean = float((scale[pool] * drawn).sum() / drawn.sum()) if drawn.sum() > 0 else 1.0
    return torch.as_tensor(scale / mean, dtype=torch.float32, device=device)


def step_loss(
    model: torch.nn.Module,
    adapter: TaskAdapter,
    batch: dict[str, torch.Tensor],
    labels: torch.Tensor,
    w: torch.Tensor,
    scale: torch.Tensor | None,
    state: TrainState,
    correction: tuple[torch.Tensor | None, torch.Tensor | None],
    index: torch.Tensor,
    unwrapped: torch.nn.Module,
) -> tuple[torch.Tensor, StepOutput]:
    """One batch's weighted loss (forward-corrected where the epoch says so, each row's loss times its ``scale``,
    with the callbacks' penalties) and what the callbacks see of the step."""
    transition, given = correction
    logits = adapter.forward(model, batch, labels)
    losses, units = adapter.per_sample_loss(logits, labels)
    if transition is not None:
        corrected, _ = adapter.per_sample_loss(logits, labels, transition)
        losses = torch.where(cast(torch.Tensor, given)[index], corrected, losses)  # set with transition
    weighted = w * losses if scale is None else scale * w * losses  # (scale: across batches, not within one)
    loss = weighted.sum() / (w * units).sum().clamp_min(1e-8)
    if state.loss_penalty is not None:
        loss = loss + state.loss_penalty(unwrapped)
    if state.logit_penalty is not None:
        loss = loss + state.logit_penalty(batch, logits, labels, index)
    return loss, StepOutput(index.cpu().numpy(), (losses / units.clamp_min(1)).detach(), logits.detach(), labels)
