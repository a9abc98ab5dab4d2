"""Epoch checkpoints of the training loop, written so that a crash at any moment leaves the last good one.

A checkpoint folder holds the model's and the best epoch's weights (safetensors), the optimizer's and the schedule's
state (``torch.save``, read back with ``weights_only=True``), the random states, the loop's counters and each
callback's ``state_dict`` (JSON). It is written into a temporary sibling, flushed to disk, and swapped in by renames:
the previous checkpoint is renamed aside first and removed only after the new one is in place, so reading finds
either the new one or (after a crash mid-swap) the previous one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from autoft.errors import RunDirError

MODEL, BEST, OPTIMIZER, SCHEDULER, STATE = "model.safetensors", "best.safetensors", "optimizer.pt", "scheduler.pt", \
    "state.json"


def _tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict safetensors takes: contiguous CPU tensors, tied ones stored once each (as copies)."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        with path.open("rb") as stream:
            os.fsync(stream.fileno())


def rng_state() -> dict[str, Any]:
    numpy_state = np.random.get_state()
    return {"python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
            "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
            "torch": torch.get_rng_state().tolist()}


def set_rng_state(saved: dict[str, Any]) -> None:
    version, values, gauss = saved["python"]
    random.setstate((version, tuple(values), gauss))
    name, keys, *rest = saved["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(torch.tensor(saved["torch"], dtype=torch.uint8))


def save_checkpoint(path: Path, *, model: torch.nn.Module, best: dict[str, torch.Tensor] | None,
                    optimizer: torch.optim.Optimizer, scheduler: Any, state: dict[str, Any]) -> None:
    """Write the checkpoint to ``path`` (a folder), replacing the previous one without a moment with neither."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    try:
        save_file(_tensors(model.state_dict()), temp / MODEL)
        if best is not None:
            save_file(_tensors(best), temp / BEST)
        torch.save(optimizer.state_dict(), temp / OPTIMIZER)
        torch.save(scheduler.state_dict(), temp / SCHEDULER)
        (temp / STATE).write_text(json.dumps({**state, "rng": rng_state()}), encoding="utf-8")
        _fsync_tree(temp)
        previous = path.with_name(f"{path.name}.previous")
        if path.exists():
            shutil.rmtree(previous, ignore_errors=True)
            os.replace(path, previous)
        os.replace(temp, path)
        shutil.rmtree(previous, ignore_errors=True)
    except BaseException as error:
        shutil.rmtree(temp, ignore_errors=True)
        if isinstance(error, OSError) or type(error).__name__ == "SafetensorError":  # a full disk, a lost permission
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            raise RunDirError(f"{path}: cannot write a checkpoint: {reason}") from None
        raise


def latest_checkpoint(path: Path) -> Path | None:
    """The checkpoint to resume from: ``path``, or the previous one a crash mid-swap left beside it."""
    previous = path.with_name(f"{path.name}.previous")
    for candidate in (path, previous):
        if (candidate / STATE).is_file():
            return candidate
    return None


def load_checkpoint(path: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any
                    ) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    """Restore model, optimizer, schedule and random states from ``path``; returns (loop state, best weights)."""
    model.load_state_dict(load_file(path / MODEL))
    optimizer.load_state_dict(torch.load(path / OPTIMIZER, weights_only=True))
    scheduler.load_state_dict(torch.load(path / SCHEDULER, weights_only=True))
    state = json.loads((path / STATE).read_text(encoding="utf-8"))
    set_rng_state(state.pop("rng"))
    best = load_file(path / BEST) if (path / BEST).is_file() else None
    return state, best


def remove_checkpoint(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(path.with_name(f"{path.name}.previous"), ignore_errors=True)


__all__ = ["latest_checkpoint", "load_checkpoint", "remove_checkpoint", "save_checkpoint"]
