"""The model behind ``autoft serve``: PyTorch, or onnxruntime on the run's ONNX export, optionally int8-quantised.

``--backend onnx`` serves ``RUN_DIR/onnx/model.onnx`` (written by ``autoft export RUN_DIR --format onnx``, or on the
server's first start when it is missing); ``--quantize int8`` serves a dynamic int8 quantisation of it
(``model.int8.onnx``, written beside it once). Either way tokenisation, batching and decoding are the run's own, so a
prediction has the same shape whatever the backend. Each worker process gets its share of the cores as one
intra-op thread pool (``--workers 2`` on 8 cores: 4 threads each), so workers do not oversubscribe the machine.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoft.errors import ConfigError
from autoft.modeling.onnx import FILE, INT8_FILE, ONNX_TASKS, quantize_int8
from autoft.run import Run

log = logging.getLogger(__name__)
BACKENDS = ("torch", "onnx")
QUANTIZATIONS = ("int8",)


def worker_threads(workers: int = 1) -> int:
    """Intra-op threads for each of ``workers`` processes: the cores this process may run on, shared out."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(workers, 1))


def onnx_file(run: Run, quantize: str | None = None) -> Path:
    """The ONNX file ``run`` is served from, written first where missing: the export (``Run.export``), then, with
    ``quantize``, its int8 quantisation. Worker processes take turns (a lock file in the run directory): the first
    writes, the others find the files written."""
    if run.task not in ONNX_TASKS:
        raise ConfigError(
            f"--backend onnx: ONNX serving is for encoder tasks ({', '.join(sorted(ONNX_TASKS))}), "
            f"not {run.task}; use --backend torch"
        )
    if quantize not in (None, *QUANTIZATIONS):
        raise ConfigError(f"--quantize: one of {', '.join(QUANTIZATIONS)}, not {quantize!r}")
    from filelock import FileLock

    folder = run.path / "onnx"
    source = folder / FILE
    try:
        with FileLock(run.path / ".onnx.lock"):  # worker processes following a lineage load a new run together
            return _write_onnx(run, source, quantize)
    except OSError as error:
        raise ConfigError(
            f"{folder}: cannot write the ONNX model there ({error.strerror or error}); export it where "
            f"the run is writable with: autoft export RUN_DIR --format onnx"
        ) from None


def _write_onnx(run: Run, source: Path, quantize: str | None) -> Path:
    if not source.is_file():
        log.info("%s has no ONNX export: writing it now (autoft export %s --format onnx)", run.path, run.path)
        run.export(format="onnx", overwrite=True)
    if quantize is None:
        return source
    target = source.with_name(INT8_FILE)
    if not target.is_file() or target.stat().st_mtime < source.stat().st_mtime:
        log.info("quantising %s to int8 (dynamic: int8 weights, activations quantised per batch)", source)
        quantize_int8(source, target)
    return target


@dataclass
class Backend:
    """How a server predicts: ``predict(examples)`` returns what ``Run.predict`` would."""

    name: str
    threads: int
    predict: Callable[[list[Any]], list[Any]]
    quantize: str | None = None
    model_file: str | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "quantize": self.quantize,
            "threads": self.threads,
            **({"model_file": self.model_file} if self.model_file else {}),
        }


def load_backend(run: Run, *, backend: str = "torch", quantize: str | None = None, threads: int = 0) -> Backend:
    """The ``backend`` ("torch" or "onnx") that serves ``run`` with ``threads`` intra-op threads (0: this process's
    share, :func:`worker_threads`)."""
    if backend not in BACKENDS:
        raise ConfigError(f"--backend: one of {', '.join(BACKENDS)}, not {backend!r}")
    if quantize is not None and backend != "onnx":
        raise ConfigError("--quantize int8 quantises the ONNX model: add --backend onnx")
    threads = threads or worker_threads()
    batch_size = max(run.config.training.eval_batch_size, 1)
    if backend == "torch":
        import torch

        torch.set_num_threads(threads)
        run.model.eval()
        return Backend("torch", threads, lambda examples: run.predict(examples, batch_size=batch_size))
    path = onnx_file(run, quantize)
    run.onnx_forward(path, threads=threads)  # loaded once; predict(backend="onnx") uses this session
    return Backend(
        "onnx",
        threads,
        lambda examples: run.predict(examples, batch_size=batch_size, backend="onnx"),
        quantize=quantize,
        model_file=str(path),
    )


__all__ = ["BACKENDS", "QUANTIZATIONS", "Backend", "load_backend", "onnx_file", "worker_threads"]
