"""ONNX export of an encoder task's forward pass, and an onnxruntime session that stands in for it.

The exported graph is the task adapter's own ``forward`` (the task head included: entity-start pooling for relation
extraction, stacked start / end logits for question answering), with dynamic batch and sequence axes, so inference
through it reuses every other part of the pipeline (tokenisation, collation, decoding). Exported with torch's
TorchScript-based exporter (``dynamo=False``: fast, and no onnxscript needed), opset 17.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from autoft.data.example import Example
from autoft.errors import ConfigError, ModelLoadError

ONNX_TASKS = frozenset(
    {
        "classification",
        "multi-label-classification",
        "token-classification",
        "relation-extraction",
        "question-answering",
    }
)
OPSET = 17
FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"


class _Logits(torch.nn.Module):
    """The adapter's forward pass as a module of positional tensors (what the exporter traces)."""

    def __init__(self, model: torch.nn.Module, adapter: Any, names: list[str]) -> None:
        super().__init__()
        self.model, self.adapter, self.names = model, adapter, names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.adapter.forward(self.model, dict(zip(self.names, tensors)))


def _trace_examples(task: str) -> list[Example]:
    """Two inputs of the task's shape, of different lengths: the batch the exporter traces."""
    if task == "question-answering":
        return [
            Example("Ann went home after work.", None, query="Who went home?"),
            Example("The river is long and wide in spring.", None, query="What is long?"),
        ]
    if task == "token-classification":
        return [Example(["Ann", "went", "home"], None), Example(["The", "river", "is", "long"], None)]
    if task == "relation-extraction":
        return [
            Example("<e1>Ann</e1> went to <e2>Paris</e2>", None),
            Example("The <e1>river</e1> runs through the <e2>valley</e2> in spring", None),
        ]
    return [Example("a short input", None), Example("a second, somewhat longer input text", None)]


def export_onnx(model: torch.nn.Module, adapter: Any, path: str | Path) -> list[str]:
    """Write ``model``'s forward pass on ``adapter``'s batches to ``path``; returns the graph's input names."""
    if adapter.name not in ONNX_TASKS:
        raise ConfigError(
            f"--format onnx: ONNX export is for encoder tasks ({', '.join(sorted(ONNX_TASKS))}), not {adapter.name}"
        )
    import importlib.util

    if importlib.util.find_spec("onnx") is None:
        raise ConfigError("--format onnx needs the onnx package: pip install 'autoft[onnx]'")
    features = adapter.encode(_trace_examples(adapter.name), with_labels=False)
    batch = adapter.collate_indexed([dict(f, index=i) for i, f in enumerate(features)])
    batch = {k: v for k, v in batch.items() if k not in ("index", "labels")}
    names = list(batch)
    wrapper = _Logits(model, adapter, names).eval()
    axes = {name: {0: "batch", 1: "sequence"} for name in names if batch[name].dim() >= 2}
    axes["logits"] = (
        {0: "batch", 1: "sequence"} if adapter.name in ("token-classification", "question-answering") else {0: "batch"}
    )
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            torch.onnx.export(
                wrapper,
                tuple(batch[n] for n in names),
                str(path),
                input_names=names,
                output_names=["logits"],
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
    finally:
        model.train(was_training)
    return names


def quantize_int8(source: str | Path, target: str | Path) -> Path:
    """Dynamic int8 quantisation of an exported model with onnxruntime: weights in int8 with a scale per output
    channel, the activations entering the linear layers quantised on the fly per batch. Written to a temporary
    sibling, then renamed.

    Per channel rather than onnxruntime's default (one scale per tensor): chosen on held-out BANKING77 training
    queries (not the test set), where the labels agreed with PyTorch's more often at the same accuracy and speed;
    leaving the embeddings in float agreed about as often and kept the file over twice as large.
    ``benchmarks/serve_load.py`` measures the agreement on the test set."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        raise ConfigError("--quantize int8 needs onnxruntime: pip install 'autoft[onnx]'") from None
    source, target = Path(source), Path(target)
    temp = target.with_name(f".{target.name}.partial")
    try:
        quantize_dynamic(source, temp, weight_type=QuantType.QInt8, per_channel=True)
        temp.replace(target)
    finally:
        temp.unlink(missing_ok=True)
    return target


class OnnxForward:
    """``forward(batch) -> logits`` through onnxruntime: what ``predict_probabilities(forward=...)`` takes."""

    def __init__(self, path: str | Path, *, threads: int = 0) -> None:
        path = Path(path)
        if not path.is_file():
            raise ModelLoadError(f"{path}: no ONNX model (write one with autoft export RUN_DIR --format onnx)")
        try:
            import onnxruntime
        except ImportError:
            raise ConfigError("--backend onnx needs onnxruntime: pip install 'autoft[onnx]'") from None
        options = onnxruntime.SessionOptions()
        if threads:  # one pool of this size; no second pool running operators side by side
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]

    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {name: np.ascontiguousarray(batch[name].cpu().numpy()) for name in self.names}
        return torch.from_numpy(self.session.run(["logits"], inputs)[0])


__all__ = ["FILE", "INT8_FILE", "ONNX_TASKS", "OnnxForward", "export_onnx", "quantize_int8"]
