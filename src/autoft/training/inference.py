"""Batched forward passes without gradients, in length-sorted order for little padding."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import numpy as np
import torch
from tqdm.auto import tqdm

from autoft.tasks.base import Feature, TaskAdapter


def length_order(features: list[Feature]) -> list[int]:
    """The order batched passes take the features in: by length, for little padding (stable)."""
    return sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))


def layer_inputs(
    model: torch.nn.Module,
    layer: torch.nn.Module,
    adapter: TaskAdapter,
    features: list[Feature],
    *,
    batch_size: int = 64,
) -> np.ndarray:
    """[N, D] what ``layer`` (e.g. the output layer) receives for each feature in one forward pass without
    gradients: a classifier's own representation of each sample (its first position for token-level layers)."""
    captured: list[torch.Tensor] = []

    def hook(_module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        x = inputs[0].detach().float()
        captured.append((x[:, 0] if x.ndim == 3 else x).cpu())

    handle = layer.register_forward_hook(hook)
    try:
        predict_probabilities(model, adapter, features, batch_size=batch_size, outputs=False)
    finally:
        handle.remove()
    return in_feature_order(torch.cat(captured).numpy() if captured else np.zeros((0, 0), dtype=np.float32), features)


def in_feature_order(rows: np.ndarray, features: list[Feature]) -> np.ndarray:
    """``rows`` a batched pass produced in its own order (by length, ``length_order``), put back in the features'."""
    result = np.empty_like(rows)
    result[length_order(features)] = rows
    return result


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
    outputs: bool = True,
    forward: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None,
) -> tuple[list[np.ndarray], float | None]:
    """Per-feature probabilities (see ``TaskAdapter.batch_outputs``; generative tasks: the generated text) and,
    with ``with_loss`` (features that carry gold labels), the mean loss per loss unit. Without ``outputs``, only
    the loss is computed (the results are None). ``forward(batch) -> logits`` replaces the adapter's forward pass
    of ``model`` (an ONNX session: ``autoft.modeling.onnx.OnnxForward``)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    order = length_order(features)
    results: list[np.ndarray | None] = [None] * len(features)
    loss_sum, unit_sum = 0.0, 0.0
    batches = range(0, len(order), batch_size)
    for start in tqdm(batches, desc=description, disable=not progress, leave=False, unit="batch"):
        chunk = [dict(features[i], index=i) for i in order[start : start + batch_size]]
        batch = adapter.collate_indexed(chunk)
        index = batch.pop("index")
        labels = batch.pop("labels", None)
        batch = {k: v.to(device) for k, v in batch.items()}
        scored = with_loss and labels is not None
        labels = labels.to(device) if labels is not None else None
        logits: torch.Tensor | None
        if forward is not None:
            logits = forward(batch).to(device)
        else:
            logits = (
                adapter.forward(model, batch, labels if scored else None) if scored or not adapter.generates else None
            )
        if labels is not None:
            if scored:
                losses, units = adapter.per_sample_loss(cast(torch.Tensor, logits), labels)  # scored: computed
                loss_sum += float(losses.sum())
                unit_sum += float(units.sum())
            batch["labels"] = labels
        if not outputs:
            continue
        for i, output in zip(index.tolist(), adapter.batch_outputs(model, batch, logits)):
            results[i] = adapter.finalize(output, features[i])
    if was_training:
        model.train()
    return cast("list[np.ndarray]", results), (loss_sum / unit_sum if unit_sum else None)  # None: no outputs
