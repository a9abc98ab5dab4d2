"""Growing a task head for new labels, so the ids of the old ones keep their meaning (``autoft update``)."""

from __future__ import annotations

from typing import Any

import torch

from autoft.errors import ConfigError


def _head(model: Any) -> tuple[Any, str, torch.nn.Linear]:
    """``(parent module, attribute, linear layer)`` of the model's output layer: the last ``nn.Linear`` with one
    output per label."""
    n = model.config.num_labels
    found = None
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and module.out_features == n:
            found = name
    if found is None:
        raise ConfigError(f"{type(model).__name__}: no output layer with {n} outputs to grow for new labels")
    parent_name, _, attribute = found.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    return parent, attribute, getattr(parent, attribute)


def output_layer(model: Any) -> torch.nn.Linear:
    """The model's output layer: the last ``nn.Linear`` with one output per label."""
    return _head(model)[2]


def grow_head(model: Any, labels: list[str], *, seed: int = 0) -> Any:
    """``model`` (a transformers model with a task head over ``model.config.id2label``) with its head widened to
    ``labels``, which start with the old labels in their old order. Old rows keep their weights; a new label's row
    starts from a seeded draw at the old rows' scale, its bias at the old biases' mean (neither favoured nor
    suppressed). The config's ``num_labels``, ``id2label`` and ``label2id`` follow. In place; returns ``model``."""
    old = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if labels[: len(old)] != old:
        raise ConfigError(f"the new label set must start with the old labels in order, got {labels} for {old}")
    if len(labels) == len(old):
        return model
    parent, attribute, layer = _head(model)
    grown = torch.nn.Linear(
        layer.in_features,
        len(labels),
        bias=layer.bias is not None,
        device=layer.weight.device,
        dtype=layer.weight.dtype,
    )
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        grown.weight[: len(old)] = layer.weight
        scale = float(layer.weight.std()) if layer.weight.numel() > 1 else 0.02
        new_rows = torch.randn(len(labels) - len(old), layer.in_features, generator=generator) * scale
        grown.weight[len(old) :] = new_rows.to(grown.weight)
        if layer.bias is not None:
            grown.bias[: len(old)] = layer.bias
            grown.bias[len(old) :] = layer.bias.mean()
    setattr(parent, attribute, grown)
    model.config.num_labels = len(labels)
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {label: i for i, label in enumerate(labels)}
    if hasattr(model, "num_labels"):
        model.num_labels = len(labels)
    return model


def head_state(model: Any) -> dict[str, torch.Tensor]:
    """A copy of ``model``'s output layer's weight (and bias): what ``set_head_state`` puts back."""
    _, _, layer = _head(model)
    return {name: value.detach().clone() for name, value in layer.named_parameters()}


def set_head_state(model: Any, state: dict[str, torch.Tensor]) -> None:
    _, _, layer = _head(model)
    with torch.no_grad():
        for name, value in layer.named_parameters():
            value.copy_(state[name])


def align_new_rows(model: Any, n_old: int, *, bias: bool) -> float:
    """Weight aligning (Zhao et al., CVPR 2020): scale the output rows of the labels from ``n_old`` on so their mean
    norm equals the old labels' — training on the new labels' data leaves their rows longer, and the model then
    favours them over the old ones. ``bias``: also move the new labels' biases so their mean is the old ones'. In
    place; returns the scale."""
    _, _, layer = _head(model)
    with torch.no_grad():
        norms = layer.weight.norm(dim=1)
        gamma = float(norms[:n_old].mean() / norms[n_old:].mean().clamp_min(1e-12))
        layer.weight[n_old:] *= gamma
        if bias and layer.bias is not None:
            layer.bias[n_old:] += layer.bias[:n_old].mean() - layer.bias[n_old:].mean()
    return gamma


def set_head_bias(model: Any, bias: Any) -> Any:
    """Set the bias of ``model``'s output layer (one value per label), e.g. to the labels' prior log-odds so a
    sigmoid head starts at each label's base rate instead of 0.5. In place; returns ``model``."""
    _, _, layer = _head(model)
    if layer.bias is not None:
        with torch.no_grad():
            layer.bias.copy_(torch.as_tensor(bias, dtype=layer.bias.dtype))
    return model


__all__ = ["align_new_rows", "grow_head", "head_state", "output_layer", "set_head_bias", "set_head_state"]
