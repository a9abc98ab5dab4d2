"""Training in several processes (torchrun / accelerate launch): one choice for all, every shard's step for each."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, gather_object

from autoft.training.callbacks import StepOutput


def main_process_choice(accelerator: Accelerator, value: Any) -> Any:
    """``value`` as the main process holds it, in every process (one process: ``value`` itself)."""
    if accelerator.num_processes == 1:
        return value
    shared = [value]
    broadcast_object_list(shared)
    return shared[0]


GATHERED_CLASSES = 1024
"""With several processes, step logits over at most this many classes are gathered for the callbacks (a language
model's logits over its vocabulary are not: the pair agent reads the rows and losses only)."""


def gathered(output: StepOutput) -> StepOutput:
    """``output`` of every process, concatenated in process order (token logits and labels padded to the longest)."""
    local = cast(torch.Tensor, output.logits)  # a process's own step has its logits
    logits = local if local.shape[-1] <= GATHERED_CLASSES else None
    parts = gather_object(
        [
            (
                np.asarray(output.indices),
                output.losses.float().cpu(),
                output.labels.cpu(),
                None if logits is None else logits.float().cpu(),
            )
        ]
    )
    labels, width = [p[2] for p in parts], max(p[2].shape[-1] if p[2].ndim > 1 else 0 for p in parts)
    if width:  # token classification: [B, T] labels and [B, T, C] logits, T per process
        labels = [torch.nn.functional.pad(x, (0, width - x.shape[-1]), value=-100) for x in labels]
    gathered_logits = None
    if logits is not None:
        pieces = [p[3] for p in parts]
        if pieces[0].ndim == 3:
            pieces = [torch.nn.functional.pad(x, (0, 0, 0, width - x.shape[1])) for x in pieces]
        gathered_logits = torch.cat(pieces).to(local.device)
    return StepOutput(
        np.concatenate([p[0] for p in parts]), torch.cat([p[1] for p in parts]), gathered_logits, torch.cat(labels)
    )


__all__ = ["GATHERED_CLASSES", "gathered", "main_process_choice"]
