"""The optimiser and the learning-rate schedule of the training loop."""

from __future__ import annotations

import torch

from autoft.modeling.parameter_efficient import HEADS


def make_optimizer(
    model: torch.nn.Module, weight_decay: float, learning_rate: float, head_learning_rate: float | None = None
) -> torch.optim.Optimizer:
    """AdamW with no weight decay on biases and norms (the parameters transformers' Trainer exempts); the task
    head (a module named in ``HEADS``) at ``head_learning_rate`` when it is given and differs."""
    from transformers.pytorch_utils import ALL_LAYERNORM_LAYERS
    from transformers.trainer_pt_utils import get_parameter_names

    decaying = set(
        get_parameter_names(
            model, ALL_LAYERNORM_LAYERS, ["bias", "layernorm", "rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]
        )
    )
    split = head_learning_rate is not None and head_learning_rate != learning_rate
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            head = split and any(part in HEADS for part in name.split("."))
            groups.setdefault((name in decaying, head), []).append(parameter)
    return torch.optim.AdamW(
        [
            {
                "params": params,
                "weight_decay": weight_decay if decays else 0.0,
                "lr": head_learning_rate if head else learning_rate,
            }
            for (decays, head), params in sorted(groups.items(), reverse=True)
        ],
        lr=learning_rate,
    )


class LinearSchedule:
    """The learning rate's factor (``LambdaLR``): linear warm-up, then linear decay to 0 over the planned epochs.

    It follows ``done``, the share of the planned epochs done counted in the steps the labelled rows make per
    epoch, not the steps taken: a callback that leaves samples out (or admits pseudo-labelled ones) changes how
    many steps an epoch has, and the rate must still warm up over the planned share and reach zero at the end. With
    every sample kept this is exactly transformers' ``get_linear_schedule_with_warmup``. ``scale`` falls by
    ``ROLLBACK_FACTOR`` at each rollback."""

    def __init__(self, total_steps: int, warmup_steps: int):
        self.total_steps, self.warmup_steps, self.done, self.scale = total_steps, warmup_steps, 0.0, 1.0

    def __call__(self, _: int) -> float:
        if self.done < self.warmup_steps:
            return self.scale * self.done / max(1, self.warmup_steps)
        return self.scale * max(0.0, (self.total_steps - self.done) / max(1, self.total_steps - self.warmup_steps))


__all__ = ["LinearSchedule", "make_optimizer"]
