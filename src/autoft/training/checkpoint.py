"""Epoch checkpoints of the training loop, written so that a crash at any moment leaves the last good one.

A checkpoint folder holds the model's and the best epoch's weights (safetensors), the optimizer's and the schedule's
state (``torch.save``, read back with ``weights_only=True``), the random states, the loop's counters and each
callback's ``state_dict`` (JSON). It is written through ``io.staged_folder`` with ``sync``: a temporary sibling,
flushed to disk, swapped in by renames with the previous checkpoint kept aside until the new one is in place, so
reading finds either the new one or (after a crash mid-swap) the previous one.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from autoft.io import previous_folder, staged_folder

MODEL, BEST, OPTIMIZER, SCHEDULER, STATE = (
    "model.safetensors",
    "best.safetensors",
    "optimizer.pt",
    "scheduler.pt",
    "state.json",
)


def _tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict safetensors takes: contiguous CPU tensors, tied ones stored once each (as copies)."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def rng_state() -> dict[str, Any]:
    numpy_state = cast("tuple[Any, ...]", np.random.get_state())  # legacy (the default): a tuple
    version, values, gauss = random.getstate()
    return {
        "python": [version, list(values), gauss],
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
        "torch": torch.get_rng_state().tolist(),
    }


def set_rng_state(saved: dict[str, Any]) -> None:
    version, values, gauss = saved["python"]
    random.setstate((version, tuple(values), gauss))
    name, keys, *rest = saved["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(torch.tensor(saved["torch"], dtype=torch.uint8))


def save_checkpoint(
    path: Path,
    *,
    model: torch.nn.Module,
    best: dict[str, torch.Tensor] | None,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
) -> None:
    """Write the checkpoint to ``path`` (a folder), replacing the previous one without a moment with neither."""
    with staged_folder(path, sync=True) as temp:
        save_file(_tensors(model.state_dict()), temp / MODEL)
        if best is not None:
            save_file(_tensors(best), temp / BEST)
        torch.save(optimizer.state_dict(), temp / OPTIMIZER)
        torch.save(scheduler.state_dict(), temp / SCHEDULER)
        (temp / STATE).write_text(json.dumps({**state, "rng": rng_state()}), encoding="utf-8")


def latest_checkpoint(path: Path) -> Path | None:
    """The checkpoint to resume from: ``path``, or the previous one a crash mid-swap left beside it."""
    for candidate in (path, previous_folder(path)):
        if (candidate / STATE).is_file():
            return candidate
    return None


def read_state(path: Path) -> dict[str, Any]:
    """The loop's state in checkpoint ``path``: its counters, settings, callback states and random states."""
    return json.loads((path / STATE).read_text(encoding="utf-8"))


def load_checkpoint(
    path: Path, state: dict[str, Any], *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any
) -> dict[str, torch.Tensor] | None:
    """Restore model, optimizer and schedule from ``path`` and the random states from its ``state``
    (``read_state``); returns the best epoch's weights (None before a best epoch)."""
    model.load_state_dict(load_file(path / MODEL))
    optimizer.load_state_dict(torch.load(path / OPTIMIZER, weights_only=True))
    scheduler.load_state_dict(torch.load(path / SCHEDULER, weights_only=True))
    set_rng_state(state["rng"])
    return load_file(path / BEST) if (path / BEST).is_file() else None


def remove_checkpoint(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(previous_folder(path), ignore_errors=True)


__all__ = ["latest_checkpoint", "load_checkpoint", "read_state", "remove_checkpoint", "save_checkpoint"]
