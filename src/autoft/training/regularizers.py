"""Penalties that keep a model close to an earlier one while it learns new data (``continual.*``).

Toward its weights (``continual.method``):

``l2``: ``strength / 2 * sum (w - w_old)^2``. ``ewc`` (Kirkpatrick et al., 2017): the same, each weight's term
scaled by its diagonal Fisher information on the old data (how much the old task's likelihood depends on it),
normalised to mean 1 so ``strength`` means the same for both. A weight whose tensor grew (a task head widened
for new labels) is pulled on its old rows only.

Toward its outputs (``continual.distill``, :class:`Distillation`): learning without forgetting (Li & Hoiem,
2017) — on every training batch, the KL divergence from the earlier model's temperature-softened predictions
over its own labels to the model's on the same labels, so the old labels keep the scores (and the relations
between them) the earlier model gave, on new inputs as well as replayed ones.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from autoft.tasks.base import Feature, TaskAdapter
from autoft.tasks.ner import IGNORE
from autoft.training.callbacks import TrainerCallback, TrainState


def trainable_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every trainable weight of ``model``, by name."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def fisher_diagonal(
    model: torch.nn.Module,
    adapter: TaskAdapter,
    features: list[Feature],
    *,
    batch_size: int = 16,
    max_samples: int = 256,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """The empirical Fisher's diagonal of ``model``'s trainable weights on (a seeded sample of at most
    ``max_samples`` of) ``features``, from mini-batch gradients of the given labels' log-likelihood, normalised
    to mean 1 over all weights. The model's weights and mode are left as they were."""
    rows = np.random.default_rng(seed).permutation(len(features))[:max_samples]
    squares = {name: torch.zeros_like(p) for name, p in model.named_parameters() if p.requires_grad}
    was_training = model.training
    model.eval()  # no dropout: the gradients of the model as it is
    device = next(model.parameters()).device
    for start in range(0, len(rows), batch_size):
        chunk = [features[i] for i in rows[start : start + batch_size]]
        batch = {k: v.to(device) for k, v in adapter.collate_indexed(chunk).items() if k != "index"}
        labels = batch.pop("labels")
        losses, units = adapter.per_sample_loss(adapter.forward(model, batch, labels), labels)
        model.zero_grad(set_to_none=True)
        (losses.sum() / units.sum().clamp_min(1)).backward()
        for name, p in model.named_parameters():
            if p.requires_grad and p.grad is not None:
                squares[name] += p.grad.detach() ** 2
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    total = sum(float(s.sum()) for s in squares.values())
    count = sum(s.numel() for s in squares.values())
    mean = total / max(count, 1) if total > 0 else 1.0
    return {name: s / mean for name, s in squares.items()}


class WeightPenalty(TrainerCallback):
    """Adds ``strength / 2 * sum F * (w - w_old)^2`` to every training step's loss (``TrainState.loss_penalty``);
    ``F`` is 1 for ``l2``, the Fisher diagonal for ``ewc``."""

    def __init__(
        self, reference: dict[str, torch.Tensor], strength: float, fisher: dict[str, torch.Tensor] | None = None
    ) -> None:
        self.reference = reference
        self.strength = strength
        self.fisher = fisher

    def penalty(self, model: torch.nn.Module) -> torch.Tensor:
        terms = []
        for name, p in model.named_parameters():
            old = self.reference.get(name)
            if old is None or not p.requires_grad:
                continue
            rows = old.shape[0] if old.ndim else None
            current = p[:rows] if p.shape != old.shape else p  # a grown head: its old rows only
            if current.shape != old.shape:
                continue
            old = old.to(p.device)
            square = (current - old) ** 2
            if self.fisher is not None and name in self.fisher:
                square = square * self.fisher[name].to(p.device)
            terms.append(square.sum())
        if not terms:
            return torch.zeros((), device=next(model.parameters()).device)
        return 0.5 * self.strength * torch.stack(terms).sum()

    SAVED = ()  # (what it pulls toward is given, not learned: a resumed run rebuilds it)

    def on_train_begin(self, state: TrainState) -> None:
        state.loss_penalty = self.penalty


class Distillation(TrainerCallback):
    """Adds ``strength * T^2 * KL(teacher || model)`` over the teacher's labels (the first ``n`` outputs: a
    grown head's old rows) to every training step's loss (``TrainState.logit_penalty``), averaged over the
    batch's loss units (samples; tagged words for NER). The teacher runs on each batch, frozen, in eval mode.
    With ``rows`` (training-row indices, e.g. a continual update's replayed samples) only those rows' divergence
    counts, the batch's other rows adding none: the new rows' outputs are left free."""

    def __init__(
        self, teacher: torch.nn.Module, strength: float, temperature: float = 2.0, rows: list[int] | None = None
    ) -> None:
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.strength = strength
        self.temperature = temperature
        self.rows = None if rows is None else torch.as_tensor(sorted(rows), dtype=torch.long)

    def penalty(
        self, batch: dict[str, torch.Tensor], logits: torch.Tensor, labels: torch.Tensor, index: torch.Tensor
    ) -> torch.Tensor:
        device = logits.device
        counted = None  # [B] 1.0 where the batch's row is one of ``rows``; None: every row counts
        if self.rows is not None:
            counted = torch.isin(index.cpu(), self.rows).to(device, torch.float32)
            if not bool(counted.any()):
                return logits.sum() * 0.0
        if next(self.teacher.parameters()).device != device:
            self.teacher.to(device)
        with torch.no_grad():
            target = self.teacher(**batch).logits.float()
        t = self.temperature
        student = F.log_softmax(logits.float()[..., : target.shape[-1]] / t, dim=-1)
        teacher = F.log_softmax(target / t, dim=-1)
        divergence = (teacher.exp() * (teacher - student)).sum(dim=-1)  # [B] or [B, T]
        if divergence.ndim > 1:  # tokens: the tagged ones
            mask = (labels != IGNORE).to(divergence.dtype)
            counted_mask = mask if counted is None else mask * counted[:, None]
            divergence = (divergence * counted_mask).sum() / mask.sum().clamp_min(1)
        else:
            divergence = (divergence if counted is None else divergence * counted).mean()
        return self.strength * t * t * divergence

    SAVED = ()  # (what it pulls toward is given, not learned: a resumed run rebuilds it)

    def on_train_begin(self, state: TrainState) -> None:
        state.logit_penalty = self.penalty


__all__ = ["Distillation", "WeightPenalty", "fisher_diagonal", "trainable_weights"]
