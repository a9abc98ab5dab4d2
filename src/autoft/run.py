"""A run: train from a config into a run directory, and load one back to evaluate or predict.

Run directory layout (written to a temporary sibling, then renamed into place)::

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
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from accelerate import PartialState
from accelerate.utils import set_seed

from autoft.config import AUTO, GENERATIVE_TASKS, TEXT_TARGET_TASKS, Config, as_config, parse_config
from autoft.data.corrected import corrected_name, keep_every_label, line_of, write_corrected
from autoft.data.loading import Example, detect_format
from autoft.data.splits import Splits, agent_validation, check_known_labels, load_splits, read_file
from autoft.errors import ConfigError, DataError, RunDirError
from autoft.io import staged_folder, to_builtin, verify_checksums, write_checksums, write_json, write_text_atomic
from autoft.modeling import parameter_efficient
from autoft.modeling.heads import set_head_bias
from autoft.modeling.load import load_model, load_tokenizer, quiet_transformers
from autoft.selection.policies import check_policy
from autoft.tasks.base import TaskAdapter
from autoft.tasks.registry import get_adapter_class, make_adapter
from autoft.training.callbacks import CallbackList, TrainerCallback
from autoft.training.checkpoint import remove_checkpoint
from autoft.training.inference import predict_probabilities
from autoft.training.logs import MetricsLog, check_logging, log_to_mlflow, write_tensorboard
from autoft.training.loop import evaluate, fit

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
            raise RunDirError(f"{path}: {changed[0]}{more} changed after the run was written (SHA-256 differs from "
                              f"checksums.json): refusing to load it")
        try:
            raw = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8"))
            saved = json.loads((path / "labels.json").read_text(encoding="utf-8"))
            metrics_path = path / "metrics.json"
            metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.exists() else {}
            labels = saved["labels"]
        except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
            raise RunDirError(f"{path}: a run file is damaged or half-written ({type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else ''})") from None
        config = parse_config(raw, source=str(path / "config.yaml"))
        adapter_class = get_adapter_class(config.task)
        tokenizer = load_tokenizer(str(path / "model"))
        adapter = make_adapter(config, labels, tokenizer)
        adapter.decision = saved.get("decision", adapter.decision)
        if parameter_efficient.is_adapter(path / "model"):  # the adapter on the base model it was trained from
            with quiet_transformers():
                first = parameter_efficient.stack_labels(path / "model") or labels  # an adapter stack's first
                base = adapter.prepare_model(load_model(config.model, adapter_class.auto_model_class(), first or None,
                                                        **adapter_class.model_options))
                model = parameter_efficient.load(base, path / "model", labels=labels, trainable=trainable)
        else:
            model = adapter.prepare_model(load_model(str(path / "model"), adapter_class.auto_model_class()))
        return cls(path, config, adapter, model, metrics)

    @property
    def is_peft(self) -> bool:
        """Whether the model is a base model with peft adapters (``training.peft``)."""
        return parameter_efficient.is_wrapped(self.model)

    def export(self, output: str | Path | None = None, *, merge: bool = False, overwrite: bool = False,
               format: str = "model") -> Path:
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
        _prepare_output(output, overwrite, option="--output")
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
            raise ConfigError(f"--set {overrides[0]!r}: decoding settings apply to generation and seq2seq runs, "
                              f"not {self.task}")
        self.config = as_config(self.config, overrides)
        self.adapter.generation = self.config.generation

    def _examples(self, inputs: Iterable[str | list[str] | Example]) -> list[Example]:
        return [x if isinstance(x, Example) else Example(x, None, f"<input>:{i}") for i, x in enumerate(inputs, 1)]

    def onnx_forward(self, path: str | Path | None = None) -> Any:
        """The onnxruntime session of ``path`` (default: the run's ``onnx/model.onnx``), loaded once."""
        from autoft.modeling.onnx import FILE, OnnxForward

        path = Path(path) if path is not None else self.path / "onnx" / FILE
        if self._onnx is None or self._onnx[0] != path:
            self._onnx = (path, OnnxForward(path))
        return self._onnx[1]

    def predict(self, inputs: Iterable[str | list[str] | Example], *, batch_size: int | None = None,
                progress: bool = False, backend: str = "torch") -> list[dict[str, Any]]:
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
            self.model, self.adapter, features,
            batch_size=batch_size or self.config.training.eval_batch_size, progress=progress,
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
        return evaluate(self.model, self.adapter, examples, features,
                        batch_size=self.config.training.eval_batch_size, progress=progress)


def write_test_predictions(path: Path, examples: list[Example], predictions: list[Any],
                           before: list[Any] | None) -> None:
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


def _prepare_output(path: Path, overwrite: bool, *, option: str = "output_dir") -> None:
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


def _write_corrected(folder: Path, config: Config, train: list[Example], labels: list[str], dropped: Iterable[int],
                     relabels: dict[int, int]) -> None:
    """``corrected.<ext>`` per training file: the agent's drops removed and its relabels applied (generative tasks:
    the pairs it left out removed), for review; its
    suffix is the one its format is read back from for the task (a SemEval file keeps ``.txt``), so a config whose
    ``data.train`` names it trains."""
    named = {row: labels[label] for row, label in relabels.items()}
    kept: list[str] = []
    if config.task not in TEXT_TARGET_TASKS:  # a response or an answer is no class that could vanish
        dropped, named, kept = keep_every_label(train, dropped, named)
    if kept:
        log.warning("corrected files: the agent left out or relabelled every training row of %s; those rows are "
                    "kept as given, so the files still train with a validation or test file that has them",
                    ", ".join(map(repr, kept)))
    drop: dict[str, set[int]] = {}
    relabel: dict[str, dict[int, str]] = {}
    for row in dropped:
        path, line = line_of(train[row].origin)
        drop.setdefault(path, set()).add(line)
    for row, label in named.items():
        path, line = line_of(train[row].origin)
        relabel.setdefault(path, {})[line] = label
    files = config.data.train_files
    for file in files:
        source = Path(file)
        fmt = detect_format(source, config.data.format, config.task)
        name = corrected_name(source, fmt, several=len(files) > 1)
        dropped_here, relabels_here = drop.get(str(source), set()), relabel.get(str(source), {})
        written = write_corrected(source, folder / name, fmt=fmt, label_column=config.data.label_column,
                                  drop=dropped_here, relabel=relabels_here)
        log.info("%s: %d rows written (%d left out, %d relabelled) for review", name, written, len(dropped_here),
                 len(relabels_here))


def train(
    config: Config | dict[str, Any] | str | Path,
    *,
    overrides: list[str] | None = None,
    overwrite: bool = False,
    callback: TrainerCallback | None = None,
    callbacks: list[TrainerCallback | Callable[[Splits], TrainerCallback]] | None = None,
    model: Any = None,
    labels: list[str] | None = None,
    zero_shot: bool = True,
    resume: bool = False,
) -> Run:
    """Fine-tune per ``config`` (a Config, dict or YAML path) and write the run directory. ``callback``
    replaces the agent ``config.selection`` would build (``autoft.training.callbacks``); ``callbacks`` run
    after it (each a callback, or a function of the loaded ``Splits`` that makes one: training row ``i`` of
    the loop is ``splits.train[i]``). ``model`` starts training from a model already loaded (a continual update: the parent's weights,
    its head sized to ``labels``, the ordered label set it must be given with) instead of ``config.model``.
    ``zero_shot``: score the model before fine-tuning on the test set (tasks whose targets are texts).
    The loop checkpoints (after each epoch, and within epochs per ``training.checkpoint_every``) into
    ``.<output_dir name>.checkpoint`` beside the output, removed once the run is written; ``resume`` continues from
    there (from the beginning when there is none yet)."""
    config = as_config(config, overrides)
    check_policy(config.selection.policy)
    check_logging(config.training.logging)
    output = Path(config.output_dir)
    _prepare_output(output, overwrite)
    started = time.perf_counter()

    # Data and model.
    splits = load_splits(config.data, task=config.task, seed=config.training.seed, known=labels)
    if labels is not None:  # the model's label order; the data may use a subset
        unknown = sorted(set(splits.labels) - set(labels))
        if unknown:
            raise DataError(f"{config.data.train_files[0]}: labels {unknown} are not among the model's {labels}")
        splits = replace(splits, labels=list(labels))
    adapter_class = get_adapter_class(config.task)
    tokenizer = load_tokenizer(config.model, progress=config.training.progress)
    adapter = make_adapter(config, splits.labels, tokenizer)
    set_seed(config.training.seed)  # the new task head is initialised from the seed too
    if model is None:
        model = adapter.prepare_model(load_model(config.model, adapter_class.auto_model_class(), splits.labels or None,
                                                 **adapter_class.model_options))
        bias = adapter.initial_bias(splits.train)
        if bias is not None:
            set_head_bias(model, bias)
    else:  # a given model (an update's parent): fitted to this adapter too (idempotent)
        model = adapter.prepare_model(model)
    checkpointing = config.training.gradient_checkpointing
    checkpointing = checkpointing is True or (checkpointing == AUTO and config.task in GENERATIVE_TASKS)
    if checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x's name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.training.peft is not None and not parameter_efficient.is_wrapped(model):
        model = parameter_efficient.wrap(model, config.training.peft, adapter_class.peft_task_type)
    trainable, parameters = parameter_efficient.parameter_counts(model)
    log.info(
        "%s: %d train / %d validation / %s test examples, %d labels",
        config.task, len(splits.train), len(splits.validation),
        len(splits.test) if splits.test is not None else "no", len(splits.labels),
    )

    # The agent: offline valuation on cached features, then the online callback (policy: none = plain).
    # It learns from its own part of the validation set; the rest alone chooses early stopping and the
    # best epoch, so the checkpoint is never picked on the data the agent was rewarded on.
    validation, reward_part, warnings = splits.validation, [], []
    self_training = config.selection.self_training if splits.unlabeled and callback is None else "off"
    if callback is None and (config.selection.uses_agent or self_training == "agent"):
        validation, reward_part = agent_validation(splits.validation, config)
        log.info("validation split for the agent: %d examples reward it, %d choose early stopping and the best "
                 "epoch (selection.reward_fraction %.2g, seed %d)", len(reward_part), len(validation),
                 config.selection.reward_fraction, config.training.seed)
        if splits.validation_from_train:
            warnings.append("no data.validation: the agent's reward comes from held-out training rows, whose "
                            "labels are as noisy as the rest; give a clean validation file for a trustworthy agent")
            log.warning(warnings[-1])
    extra, callbacks = list(callbacks or []), [] if callback is None else [callback]
    if callback is None and config.selection.uses_agent and config.task in GENERATIVE_TASKS:
        from autoft.selection.pair_agent import PairAgentCallback, value_pair_agent

        callbacks.append(PairAgentCallback(value_pair_agent(config, replace(splits, validation=reward_part),
                                                            progress=config.training.progress),
                                           reward_examples=reward_part, seed=config.training.seed))
    elif callback is None and config.selection.uses_agent:
        if config.task in TEXT_TARGET_TASKS:
            raise ConfigError(f"selection.policy: {config.selection.policy!r}: the agent does not value "
                              f"{config.task} samples yet; use none")
        from autoft.selection.agent import AgentCallback, value_samples

        valuation = value_samples(config, replace(splits, validation=reward_part), progress=config.training.progress)
        if valuation.idle:  # nothing to act on: plain fine-tuning, its best epoch chosen on the whole validation set
            noise = valuation.noise
            few = noise.too_few_rows if noise is not None else None
            log.info("the agent has nothing to act on (noise rate acted on %.1f%%%s, nothing to leave out or "
                     "relabel): the run trains as plain fine-tuning, validating on all %d validation examples",
                     100 * (noise.rate if noise is not None else 0.0), f": {few}" if few else "",
                     len(splits.validation))
            validation = splits.validation
        callbacks.append(AgentCallback(valuation, primary_metric=adapter.primary_metric, reward_examples=reward_part,
                                       seed=config.training.seed))
    if callback is None and self_training != "off":
        from autoft.selection.self_training import SelfTrainingCallback

        label_ids = {name: i for i, name in enumerate(splits.labels)}
        callbacks.append(SelfTrainingCallback(
            splits.unlabeled, n_classes=len(splits.labels), mode=self_training,
            labelled_classes=np.array([label_ids[e.label] for e in splits.train]),
            threshold=config.selection.self_training_threshold, reward_examples=reward_part, label_ids=label_ids,
            primary_metric=adapter.primary_metric, seed=config.training.seed))
        log.info("self-training (%s) on %d unlabelled texts", self_training, len(splits.unlabeled))
    elif splits.unlabeled:
        log.info("data.unlabeled: %d texts not used (selection.self_training: off)", len(splits.unlabeled))
    callbacks += [c if isinstance(c, TrainerCallback) else c(splits) for c in extra]
    metrics_log = MetricsLog()  # metrics.jsonl: every step and epoch (the agent's decisions are added at the end)
    callbacks.append(metrics_log)
    callback = callbacks[0] if len(callbacks) == 1 else CallbackList(callbacks) if callbacks else None

    # Before: a task whose targets are texts is scored on the test set before fine-tuning (the model's zero-shot).
    before, before_predictions = None, None
    test_features = adapter.encode(splits.test) if splits.test is not None else None
    if zero_shot and config.task in TEXT_TARGET_TASKS and splits.test is not None:
        before, before_predictions = evaluate(model, adapter, splits.test, test_features,
                                             batch_size=config.training.eval_batch_size,
                                             progress=config.training.progress, description="zero-shot",
                                             return_predictions=True)
        log.info("zero-shot test scores (before fine-tuning): %s", ", ".join(
            f"{k} {v:.4f}" for k, v in before.items() if isinstance(v, float)))

    # Fine-tune, then score the best weights on validation and test.
    train_features = adapter.encode(splits.train)
    validation_features = adapter.encode(validation)
    fit_started = time.perf_counter()
    checkpoint = output.parent / f".{output.name}.checkpoint"
    result = fit(model, adapter, train_features, validation, validation_features, config.training,
                 callback=callback, unlabeled_features=adapter.encode(splits.unlabeled, with_labels=False)
                 if self_training != "off" else None, checkpoint=checkpoint, resume=resume)
    fit_seconds = time.perf_counter() - fit_started
    validation_metrics, decision = result.best_validation, None
    if adapter.decision:  # decision settings (multi-label thresholds) tuned on validation, then used on it and test
        untuned = copy.deepcopy(adapter.decision)
        validation_metrics = evaluate(model, adapter, validation, validation_features, tune_decision=True,
                                      batch_size=config.training.eval_batch_size, progress=False)
        decision = {"tuned_on": "validation", "used_by": ["validation", "test"], "tuned": adapter.decision,
                    "epochs": untuned}
        log.info("decision tuned on validation: %s; the final validation and test scores use it (each epoch's "
                 "validation, which chose the best epoch, used %s)", adapter.decision, untuned)
    # The resolved config: every `auto` replaced by what was chosen, so the run can be repeated exactly.
    parts = callback.callbacks if isinstance(callback, CallbackList) else [callback]
    agent = next((c for c in parts if hasattr(c, "valuation")), None)
    valuation = getattr(agent, "valuation", None)
    config = config.model_copy(update={"training": result.settings.model_copy(
        update={"gradient_checkpointing": checkpointing}), **(
        {"selection": valuation.selection} if valuation is not None else {})})
    test_metrics = test_predictions = None
    if splits.test is not None:
        test_metrics, test_predictions = evaluate(model, adapter, splits.test, test_features,
                                                  batch_size=config.training.eval_batch_size,
                                                  progress=config.training.progress, description="test",
                                                  return_predictions=True)
    metrics = {
        "task": config.task,
        "model": config.model,
        "primary_metric": adapter.primary_metric,
        "policy": config.selection.policy,
        "sizes": {"train": len(splits.train), "validation": len(validation), "agent_reward": len(reward_part),
                  "unlabeled": len(splits.unlabeled),
                  "test": len(splits.test) if splits.test is not None else 0},
        "parameters": {"total": parameters, "trainable": trainable,
                       "peft": config.training.peft.method if config.training.peft is not None else None},
        "skipped_rows": len(splits.skipped),
        "warnings": warnings + list(getattr(agent, "warnings", [])),
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "rollbacks": result.rollbacks,
        "epochs": [vars(r) for r in result.history],
        "validation": validation_metrics,
        "test": test_metrics,
        "decision": decision,
        "zero_shot": before,
        "training": config.training.model_dump(mode="json"),
        "auto": result.plan["choices"],
        "noise": agent.noise_summary() if agent is not None else None,
        "self_training": next(({"mode": c.mode, "admitted_last_epoch": int(c.admitted.sum()),
                                "unlabeled": len(c.unlabeled)} for c in parts if hasattr(c, "admitted")), None),
        "train_seconds": round(sum(r.seconds for r in result.history), 3),
        "fit_seconds": round(fit_seconds, 3),
        "wall_seconds": round(time.perf_counter() - started, 3),
    }

    # Write everything to a temporary sibling, then move it into place (one process writes under
    # `accelerate launch`; the others wait for it).
    state = PartialState(cpu=not torch.cuda.is_available())
    if not state.is_main_process:
        state.wait_for_everyone()
        return Run(output, config, adapter, model, metrics)
    with staged_folder(output) as temp:
        with quiet_transformers():
            parameter_efficient.save(model, temp / "model", config.model)
            tokenizer.save_pretrained(temp / "model")
        (temp / "config.yaml").write_text(config.to_yaml(), encoding="utf-8")
        write_json(temp / "labels.json", {"task": config.task, "labels": splits.labels,
                                          **({"decision": adapter.decision} if adapter.decision else {})})
        write_json(temp / "metrics.json", metrics)
        if result.plan["choices"]:
            write_json(temp / "training_plan.json", to_builtin(result.plan))
        write_text_atomic(temp / "metrics.jsonl", "".join(json.dumps(to_builtin(r)) + "\n" for r in metrics_log.lines(
            getattr(agent, "decisions", None))))
        if config.training.logging == "tensorboard":
            write_tensorboard(temp / "tensorboard", metrics_log.scalars())
        if test_predictions is not None:  # what the report shows: confusion, examples, outputs before and after
            write_test_predictions(temp / "test_predictions.jsonl", splits.test, test_predictions, before_predictions)
        if splits.skipped:
            (temp / "skipped_rows.txt").write_text("".join(f"{line}\n" for line in splits.skipped), encoding="utf-8")
        for part in parts:
            if hasattr(part, "write_artifacts"):
                part.write_artifacts(temp, splits.train, splits.labels)
        if hasattr(agent, "repairs"):
            _write_corrected(temp, config, splits.train, splits.labels, *agent.repairs())
        write_checksums(temp)  # last: Run.load refuses a run whose files changed after this
    state.wait_for_everyone()
    remove_checkpoint(checkpoint)
    log.info("run written to %s", output)
    if config.training.logging == "mlflow":
        log_to_mlflow(output, config.training, config=config.model_dump(mode="json"), scalars=metrics_log.scalars(),
                      final={"best_validation": metrics["validation"], "test": metrics["test"]})
    return Run(output, config, adapter, model, metrics)


def load(path: str | Path) -> Run:
    """Load a run directory (same as :meth:`Run.load`)."""
    return Run.load(path)
