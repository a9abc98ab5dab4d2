"""Batched forward passes without gradients, in length-sorted order for little padding."""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from autoft.tasks.base import Feature, TaskAdapter


@torch.inference_mode()
def predict_probabilities(
    model: torch.nn.Module,
    adapter: TaskAdapter,
    features: list[Feature],
    *,
    batch_size: int = 64,
    device: torch.device | str | None = None,
    progress: bool = False,
    description: str = "predict",
    with_loss: bool = False,
) -> tuple[list[np.ndarray], float | None]:
    """Per-feature probabilities (see ``TaskAdapter.batch_probabilities``) and, with ``with_loss``
    (features that carry gold labels), the mean loss per loss unit."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    results: list[np.ndarray | None] = [None] * len(features)
    loss_sum, unit_sum = 0.0, 0.0
    batches = range(0, len(order), batch_size)
    for start in tqdm(batches, desc=description, disable=not progress, leave=False, unit="batch"):
        chunk = [dict(features[i], index=i) for i in order[start : start + batch_size]]
        batch = adapter.collate_indexed(chunk)
        index = batch.pop("index")
        labels = batch.pop("labels", None)
        batch = {k: v.to(device) for k, v in batch.items()}
        logits = adapter.forward(model, batch)
        if labels is not None:
            labels = labels.to(device)
            if with_loss:
                losses, units = adapter.per_sample_loss(logits, labels)
                loss_sum += float(losses.sum())
                unit_sum += float(units.sum())
            batch["labels"] = labels
        for i, probs in zip(index.tolist(), adapter.batch_probabilities(logits, batch)):
            results[i] = adapter.finalize(probs, features[i])
    if was_training:
        model.train()
    return results, (loss_sum / unit_sum if unit_sum else None)
