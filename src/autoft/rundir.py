"""A run directory: load one back to evaluate, predict or export, and what it holds.

Run directory layout (``autoft.run.train`` writes it to a temporary sibling, then renames it into place)::

    config.yaml    the resolved config
    labels.json    task and ordered label set
    metrics.json   per-epoch validation metrics, best epoch, final validation and test metrics, the
                   training settings used and what ``auto`` chose
    model/         save_pretrained format (model + tokenizer): plain transformers loads it; with
                   ``training.peft``, the adapter and task head (peft loads it on the base model;
                   ``autoft export --merge`` writes a merged model)
    training_plan.json   when a setting was ``auto``: each choice and the learning-rate range test's curve
    skipped_rows.txt     with ``data.on_bad_rows: skip``: each row left out, as ``file:line: reason``
"""

from __future__ import annotations

import copy
import json
import logging
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import yaml

from autoft.config import GENERATIVE_TASKS, TEXT_TARGET_TASKS, Config, as_config, load_yaml, parse_config
from autoft.data.loading import Example
from autoft.data.splits import check_known_labels, read_file
from autoft.errors import ConfigError, RunDirError
from autoft.io import staged_folder, to_builtin, verify_checksums, write_text_atomic
from autoft.modeling import parameter_efficient
from autoft.modeling.load import load_model, load_tokenizer, quiet_transformers
from autoft.tasks.base import TaskAdapter
from autoft.tasks.registry import get_adapter_class, make_adapter
from autoft.training.inference import predict_probabilities
from autoft.training.loop import evaluate

if TYPE_CHECKING:
    from autoft.tasks.generation import TextGenerationAdapter

log = logging.getLogger(__name__)


class Run:
    """A trained model with its adapter, config and metrics; created by :func:`train` or :meth:`load`."""

    def __init__(self, path: Path, config: Config, adapter: TaskAdapter, model: Any, metrics: dict[str, Any]) -> None:
        self.path = Path(path)
        self.config = config
        self.adapter = adapter
        self.model = model
        self.metrics = metrics
        self._onnx: tuple[Path, Any] | None = None  # (path, onnxruntime session) once predict(backend="onnx") ran

    @property
    def task(self) -> str:
        return self.config.task

    @property
    def labels(self) -> list[str]:
        return self.adapter.labels

    def __repr__(self) -> str:
        return f"Run(path={str(self.path)!r}, task={self.task!r}, labels={len(self.labels)})"

    @classmethod
    def load(cls, path: str | Path, *, trainable: bool = False) -> Run:
        """Load a run directory written by :func:`train` (``trainable``: a peft adapter loads ready to train on,
        for a continual update). The output folder of ``autoft run`` loads its better run on validation (the one
        its ``comparison.json`` names)."""
        from autoft.comparison import resolve_run_dir

        given = Path(path)
        path, chosen = resolve_run_dir(given)
        if chosen is not None:
            log.info("%s: the better run on validation is %s", given, chosen)
        for name in ("config.yaml", "labels.json", "model"):
            if not (path / name).exists():
                raise RunDirError(f"{path}: not an autoft run directory (missing {name})")
        try:
            changed = verify_checksums(path)
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as error:
            raise RunDirError(f"{path}: checksums.json is damaged ({type(error).__name__})") from None
        if changed:
            more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
            raise RunDirError(
                f"{path}: {changed[0]}{more} changed after the run was written (SHA-256 differs from "
                f"checksums.json): refusing to load it"
            )
        try:
            raw = load_yaml((path / "config.yaml").read_text(encoding="utf-8"))
            saved = json.loads((path / "labels.json").read_text(encoding="utf-8"))
            metrics_path = path / "metrics.json"
            metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.exists() else {}
            labels = saved["labels"]
        except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
            raise RunDirError(
                f"{path}: a run file is damaged or half-written ({type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else ''})"
            ) from None
        config = parse_config(raw, source=str(path / "config.yaml"))
        adapter_class = get_adapter_class(config.task)
        tokenizer = load_tokenizer(str(path / "model"))
        adapter = make_adapter(config, labels, tokenizer)
        adapter.decision = saved.get("decision", adapter.decision)
        if parameter_efficient.is_adapter(path / "model"):  # the adapter on the base model it was trained from
            with quiet_transformers():
                first = parameter_efficient.stack_labels(path / "model") or labels  # an adapter stack's first
                base = adapter.prepare_model(
                    load_model(
                        config.model, adapter_class.auto_model_class(), first or None, **adapter_class.model_options
                    )
                )
                model = parameter_efficient.load(base, path / "model", labels=labels, trainable=trainable)
        else:
            model = adapter.prepare_model(load_model(str(path / "model"), adapter_class.auto_model_class()))
        return cls(path, config, adapter, model, metrics)

    @property
    def is_peft(self) -> bool:
        """Whether the model is a base model with peft adapters (``training.peft``)."""
        return parameter_efficient.is_wrapped(self.model)

    def export(
        self, output: str | Path | None = None, *, merge: bool = False, overwrite: bool = False, format: str = "model"
    ) -> Path:
        """Write the model and tokenizer to ``output`` (save_pretrained format). ``merge`` (or ``format="merged"``):
        fold peft adapters into the base weights, so plain transformers loads the result; without it an adapter run
        exports its adapter, which peft loads on the base model. ``format="onnx"`` (encoder tasks): the forward
        pass with its task head as ``model.onnx`` (dynamic batch and sequence axes; adapters folded in) with the
        tokenizer, by default into ``RUN_DIR/onnx`` where ``predict(backend="onnx")`` finds it. Written to a
        temporary sibling, then renamed."""
        if format not in ("model", "merged", "onnx"):
            raise ConfigError(f"--format: one of model, merged, onnx, not {format!r}")
        if output is None and format != "onnx":
            raise ConfigError("--output: the folder to write the model to")
        output = Path(output) if output is not None else self.path / "onnx"
        prepare_output(output, overwrite, option="--output")
        merge = merge or format in ("merged", "onnx")
        model = parameter_efficient.merge(copy.deepcopy(self.model)) if merge and self.is_peft else self.model
        with staged_folder(output) as temp, quiet_transformers():
            if format == "onnx":
                from autoft.modeling.onnx import FILE, export_onnx

                export_onnx(model, self.adapter, temp / FILE)
            else:
                model.save_pretrained(temp)
            self.adapter.tokenizer.save_pretrained(temp)
        return output

    # --- inference ----------------------------------------------------------------------------
    def set_decoding(self, overrides: list[str]) -> None:
        """Change how a generative run writes its outputs from now on: ``generation.KEY=VALUE`` strings (e.g.
        ``generation.num_beams=4``); the run directory is not changed."""
        bad = next((o for o in overrides if not o.startswith("generation.")), None)
        if bad is not None:
            raise ConfigError(f"--set {bad!r}: predict and evaluate change only generation.* (decoding) settings")
        if self.task not in GENERATIVE_TASKS:
            raise ConfigError(
                f"--set {overrides[0]!r}: decoding settings apply to generation and seq2seq runs, not {self.task}"
            )
        self.config = as_config(self.config, overrides)
        cast("TextGenerationAdapter", self.adapter).generation = self.config.generation  # a generative run's

    def _examples(self, inputs: Iterable[str | list[str] | Example]) -> list[Example]:
        return [x if isinstance(x, Example) else Example(x, None, f"<input>:{i}") for i, x in enumerate(inputs, 1)]

    def onnx_forward(self, path: str | Path | None = None, *, threads: int = 0) -> Any:
        """The onnxruntime session of ``path`` (loaded once; ``threads``: its intra-op threads, 0 = onnxruntime's
        choice). Without ``path``: the session loaded last (``autoft serve`` loads a quantised one), else the run's
        ``onnx/model.onnx``."""
        from autoft.modeling.onnx import FILE, OnnxForward

        if path is None and self._onnx is not None:
            return self._onnx[1]
        path = Path(path) if path is not None else self.path / "onnx" / FILE
        if self._onnx is None or self._onnx[0] != path:
            self._onnx = (path, OnnxForward(path, threads=threads))
        return self._onnx[1]

    def predict(
        self,
        inputs: Iterable[str | list[str] | Example],
        *,
        batch_size: int | None = None,
        progress: bool = False,
        backend: str = "torch",
    ) -> list[dict[str, Any]]:
        """Predict texts (word lists for NER; ``Example(context, None, query=question)`` for question answering; prompts
        or chat message lists for generation). Classification and relation extraction: label and probabilities per
        input; NER: entity spans with character offsets; question answering: the answer span, its offsets and
        score; generative tasks: the generated text. ``backend="onnx"``: through the run's ONNX export
        (``export(format="onnx")``) with onnxruntime."""
        if backend not in ("torch", "onnx"):
            raise ConfigError(f"--backend: torch or onnx, not {backend!r}")
        examples = self._examples(inputs)
        if not examples:
            return []
        features = self.adapter.encode(examples, with_labels=False)
        probabilities, _ = predict_probabilities(
            self.model,
            self.adapter,
            features,
            batch_size=batch_size or self.config.training.eval_batch_size,
            progress=progress,
            forward=self.onnx_forward() if backend == "onnx" else None,
        )
        return [self.adapter.format_prediction(e, p) for e, p in zip(examples, probabilities)]

    def evaluate(self, data: str | Path | list[Example], *, progress: bool = False) -> dict[str, Any]:
        """Metrics on a labelled file (same format rules as training data) or a list of examples."""
        if isinstance(data, (str, Path)):
            examples = read_file(data, self.config.data, task=self.task, fmt="auto")
        else:
            examples = list(data)
        if self.task not in TEXT_TARGET_TASKS:
            check_known_labels(examples, set(self.labels), "evaluation")
        features = self.adapter.encode(examples)
        return evaluate(
            self.model,
            self.adapter,
            examples,
            features,
            batch_size=self.config.training.eval_batch_size,
            progress=progress,
        )


def write_test_predictions(
    path: Path, examples: list[Example], predictions: list[Any], before: list[Any] | None
) -> None:
    """``test_predictions.jsonl``: per test example its input, gold label and prediction (and, for tasks whose
    targets are texts, the prediction of the model before fine-tuning)."""
    rows = []
    for i, (example, prediction) in enumerate(zip(examples, predictions)):
        row = {"origin": example.origin, "input": example.text, "gold": example.label, "prediction": prediction}
        if example.query is not None:
            row["question"] = example.query
        if before is not None:
            row["zero_shot"] = before[i]
        rows.append(to_builtin(row))
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def prepare_output(path: Path, overwrite: bool, *, option: str = "output_dir") -> None:
    """Check that ``path`` can become the output folder: new or empty (or ``overwrite``), and writable. ``option``
    is what the caller's user set it with (a config's ``output_dir``, export's ``--output``), named in the errors."""
    other = f"set another {option}" if option.isidentifier() else f"give another {option}"
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path}: {option} exists and is not a folder ({other})")
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise RunDirError(f"{path}: {option} exists and is not empty (pass --overwrite to replace it, or {other})")
    try:  # a folder that cannot be written fails now, not after hours of training
        path.parent.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path.parent).close()
    except OSError as error:
        raise RunDirError(f"{path}: {option} cannot be written: {error.strerror or error}") from None


def load(path: str | Path) -> Run:
    """Load a run directory (same as :meth:`Run.load`)."""
    return Run.load(path)


__all__ = ["Run", "load", "prepare_output", "write_test_predictions"]
