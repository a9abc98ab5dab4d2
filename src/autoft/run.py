"""Fine-tune from a config into a run directory (:mod:`autoft.rundir` loads one back).

``train`` is a pipeline of stages: load the data and the model, build the callbacks (the agent and the others),
fit (:func:`autoft.training.loop.fit`), score, and write the run directory.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from accelerate import PartialState
from accelerate.utils import set_seed

from autoft import scoring
from autoft.config import AUTO, GENERATIVE_TASKS, ONE_LABEL_TASKS, TEXT_TARGET_TASKS, Config, TrainingConfig, as_config
from autoft.data.corrected import corrected_name, keep_every_label, line_of, write_corrected
from autoft.data.loading import Example, detect_format
from autoft.data.splits import Splits, agent_validation, load_splits
from autoft.errors import ConfigError, DataError
from autoft.io import staged_folder, to_builtin, write_checksums, write_json, write_text_atomic
from autoft.modeling import parameter_efficient
from autoft.modeling.heads import set_head_bias
from autoft.modeling.load import load_model, load_tokenizer, quiet_transformers
from autoft.rundir import Run, load, prepare_output, write_test_predictions
from autoft.selection.policies import check_policy
from autoft.tasks.base import TaskAdapter
from autoft.tasks.registry import make_adapter
from autoft.training.callbacks import CallbackList, TrainerCallback
from autoft.training.checkpoint import remove_checkpoint
from autoft.training.logs import MetricsLog, check_logging, log_to_mlflow, write_tensorboard
from autoft.training.loop import TrainResult, fit

log = logging.getLogger(__name__)


def _write_corrected(
    folder: Path,
    config: Config,
    train: list[Example],
    labels: list[str],
    dropped: Iterable[int],
    relabels: dict[int, int],
) -> None:
    """``corrected.<ext>`` per training file: the agent's drops removed and its relabels applied (generative tasks:
    the pairs it left out removed), for review; its
    suffix is the one its format is read back from for the task (a SemEval file keeps ``.txt``), so a config whose
    ``data.train`` names it trains."""
    named = {row: labels[label] for row, label in relabels.items()}
    kept: list[str] = []
    if config.task not in TEXT_TARGET_TASKS:  # a response or an answer is no class that could vanish
        dropped, named, kept = keep_every_label(train, dropped, named)
    if kept:
        log.warning(
            "corrected files: the agent left out or relabelled every training row of %s; those rows are "
            "kept as given, so the files still train with a validation or test file that has them",
            ", ".join(map(repr, kept)),
        )
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
        written = write_corrected(
            source,
            folder / name,
            fmt=fmt,
            label_column=config.data.label_column,
            drop=dropped_here,
            relabel=relabels_here,
        )
        log.info(
            "%s: %d rows written (%d left out, %d relabelled) for review",
            name,
            written,
            len(dropped_here),
            len(relabels_here),
        )


def _load_data(config: Config, labels: list[str] | None) -> tuple[Splits, Any, TaskAdapter]:
    """The splits (in the given model's label order when ``labels`` is given), the tokenizer and the task's
    adapter."""
    splits = load_splits(config.data, task=config.task, seed=config.training.seed, known=labels)
    if labels is not None:  # the model's label order; the data may use a subset
        unknown = sorted(set(splits.labels) - set(labels))
        if unknown:
            raise DataError(f"{config.data.train_files[0]}: labels {unknown} are not among the model's {labels}")
        splits = replace(splits, labels=list(labels))
    log.info(
        "%s: %d train / %d validation / %s test examples, %d labels",
        config.task,
        len(splits.train),
        len(splits.validation),
        len(splits.test) if splits.test is not None else "no",
        len(splits.labels),
    )
    tokenizer = load_tokenizer(config.model, progress=config.training.progress)
    return splits, tokenizer, make_adapter(config, splits.labels, tokenizer)


def _prepare_model(config: Config, adapter: TaskAdapter, splits: Splits, model: Any) -> tuple[Any, bool]:
    """The model to fine-tune: ``config.model`` with a new head seeded from the training seed (its bias at the
    label prior where the task sets one), or the given one; gradient checkpointing and peft as the config says.
    Returns it and whether gradient checkpointing is on."""
    adapter_class = type(adapter)
    set_seed(config.training.seed)  # the new task head is initialised from the seed too
    if model is None:
        model = adapter.prepare_model(
            load_model(
                config.model, adapter_class.auto_model_class(), splits.labels or None, **adapter_class.model_options
            )
        )
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
    return model, checkpointing


@dataclass
class _Callbacks:
    """What the callbacks stage built: the callback the loop runs, the validation rows that choose early stopping
    and the best epoch, the agent's reward rows, the metrics log, and warnings for ``metrics.json``."""

    callback: TrainerCallback
    validation: list[Example]
    reward_part: list[Example]
    metrics_log: MetricsLog
    self_training: str
    warnings: list[str]


def _sample_agent(
    config: Config, splits: Splits, adapter: TaskAdapter, reward_part: list[Example]
) -> tuple[list[TrainerCallback], bool]:
    """The agent of a task whose samples it values: the offline valuation, its online callback and, for a policy
    that learns from per-sample rewards, the callback that gives them; and whether it is idle (nothing to act on)."""
    from autoft.selection.agent import AgentCallback, value_samples

    valuation = value_samples(config, replace(splits, validation=reward_part), progress=config.training.progress)
    if valuation.idle:
        noise = valuation.noise
        log.info(
            "the agent has nothing to act on (noise rate acted on %.1f%%: %s): the run trains as plain "
            "fine-tuning, validating on all %d validation examples",
            100 * (noise.rate if noise is not None else 0.0),
            valuation.idle_reason,
            len(splits.validation),
        )
    callbacks: list[TrainerCallback] = [
        AgentCallback(
            valuation, primary_metric=adapter.primary_metric, reward_examples=reward_part, seed=config.training.seed
        )
    ]
    if getattr(valuation.policy, "sample_rewards", False) and config.task in ONE_LABEL_TASKS:
        from autoft.selection.alignment import EVERY, AlignmentRewards

        every = config.selection.update_every
        callbacks.append(
            AlignmentRewards(
                valuation.policy,
                reward_part,
                {name: i for i, name in enumerate(splits.labels)},
                every=every if isinstance(every, int) else EVERY,
                batch=config.selection.reward_batch,
                seed=config.training.seed,
            )
        )
    return callbacks, valuation.idle


def _build_callbacks(
    config: Config,
    splits: Splits,
    adapter: TaskAdapter,
    callback: TrainerCallback | None,
    extra: list[TrainerCallback | Callable[[Splits], TrainerCallback]],
    *,
    trained_start: bool = False,
) -> _Callbacks:
    """The agent (offline valuation on cached features, then its online callback; policy ``none``: none),
    self-training, the caller's callbacks and the metrics log. The agent learns from its own part of the
    validation set; the rest alone chooses early stopping and the best epoch, so the checkpoint is never picked on
    the data the agent was rewarded on. ``trained_start``: the model is a trained one (a continual update), whose
    pseudo-labels self-training may use from the first epoch."""
    reward_part: list[Example] = []
    validation, warnings = splits.validation, []
    self_training = config.selection.self_training if splits.unlabeled and callback is None else "off"
    if callback is None and (config.selection.uses_agent or self_training == "agent"):
        validation, reward_part = agent_validation(splits.validation, config)
        log.info(
            "validation split for the agent: %d examples reward it, %d choose early stopping and the best "
            "epoch (selection.reward_fraction %.2g, seed %d)",
            len(reward_part),
            len(validation),
            config.selection.reward_fraction,
            config.training.seed,
        )
        if splits.validation_from_train:
            warnings.append(
                "no data.validation: the agent's reward comes from held-out training rows, whose "
                "labels are as noisy as the rest; give a clean validation file for a trustworthy agent"
            )
            log.warning(warnings[-1])
    callbacks = [] if callback is None else [callback]
    if callback is None and config.selection.uses_agent and config.task in GENERATIVE_TASKS:
        from autoft.selection.pair_agent import PairAgentCallback, value_pair_agent

        callbacks.append(
            PairAgentCallback(
                value_pair_agent(config, replace(splits, validation=reward_part), progress=config.training.progress),
                reward_examples=reward_part,
                seed=config.training.seed,
            )
        )
    elif callback is None and config.selection.uses_agent:
        if config.task in TEXT_TARGET_TASKS:
            raise ConfigError(
                f"selection.policy: {config.selection.policy!r}: the agent does not value "
                f"{config.task} samples yet; use none"
            )
        agent, idle = _sample_agent(config, splits, adapter, reward_part)
        callbacks += agent
        if idle:  # nothing to act on: plain fine-tuning, its best epoch chosen on the whole validation set
            validation = splits.validation
    if callback is None and self_training != "off":
        from autoft.selection.self_training import SelfTrainingCallback

        label_ids = {name: i for i, name in enumerate(splits.labels)}
        callbacks.append(
            SelfTrainingCallback(
                splits.unlabeled,
                n_classes=len(splits.labels),
                mode=self_training,
                labelled_classes=np.array([label_ids[cast(str, e.label)] for e in splits.train]),
                threshold=config.selection.self_training_threshold,
                reward_examples=reward_part,
                label_ids=label_ids,
                primary_metric=adapter.primary_metric,
                seed=config.training.seed,
                from_start=trained_start,
            )
        )
        log.info("self-training (%s) on %d unlabelled texts", self_training, len(splits.unlabeled))
    elif splits.unlabeled:
        log.info("data.unlabeled: %d texts not used (selection.self_training: off)", len(splits.unlabeled))
    callbacks += [c if isinstance(c, TrainerCallback) else c(splits) for c in extra]
    metrics_log = MetricsLog()  # metrics.jsonl: every step and epoch (the agent's decisions are added at the end)
    callbacks.append(metrics_log)
    return _Callbacks(
        callbacks[0] if len(callbacks) == 1 else CallbackList(callbacks),
        validation,
        reward_part,
        metrics_log,
        self_training,
        warnings,
    )


def _write_run(
    output: Path,
    config: Config,
    adapter: TaskAdapter,
    model: Any,
    tokenizer: Any,
    splits: Splits,
    built: _Callbacks,
    result: TrainResult,
    metrics: dict[str, Any],
    test_predictions: list[Any] | None,
    before_predictions: list[Any] | None,
    checkpoint: Path,
) -> Run:
    """Write everything to a temporary sibling, then move it into place (one process writes under
    ``accelerate launch``; the others wait for it); the loop's checkpoint goes once the run is written."""
    callback, metrics_log = built.callback, built.metrics_log
    state = PartialState(cpu=not torch.cuda.is_available())
    if not state.is_main_process:
        state.wait_for_everyone()
        return Run(output, config, adapter, model, metrics)
    with staged_folder(output) as temp:
        with quiet_transformers():
            parameter_efficient.save(model, temp / "model", config.model)
            tokenizer.save_pretrained(temp / "model")
        (temp / "config.yaml").write_text(config.to_yaml(), encoding="utf-8")
        write_json(
            temp / "labels.json",
            {
                "task": config.task,
                "labels": splits.labels,
                **({"decision": adapter.decision} if adapter.decision else {}),
            },
        )
        write_json(temp / "metrics.json", metrics)
        if result.plan["choices"]:
            write_json(temp / "training_plan.json", to_builtin(result.plan))
        write_text_atomic(
            temp / "metrics.jsonl",
            "".join(json.dumps(to_builtin(r)) + "\n" for r in metrics_log.lines(callback.decision_records())),
        )
        if config.training.logging == "tensorboard":
            write_tensorboard(temp / "tensorboard", metrics_log.scalars())
        if test_predictions is not None:  # what the report shows: confusion, examples, outputs before and after
            write_test_predictions(
                temp / "test_predictions.jsonl",
                cast("list[Example]", splits.test),
                test_predictions,
                before_predictions,
            )
        if splits.skipped:
            (temp / "skipped_rows.txt").write_text("".join(f"{line}\n" for line in splits.skipped), encoding="utf-8")
        callback.write_artifacts(temp, splits.train, splits.labels)
        repairs = callback.repairs()
        if repairs is not None:
            _write_corrected(temp, config, splits.train, splits.labels, *repairs)
        write_checksums(temp)  # last: Run.load refuses a run whose files changed after this
    state.wait_for_everyone()
    remove_checkpoint(checkpoint)
    log.info("run written to %s", output)
    if config.training.logging == "mlflow":
        log_to_mlflow(
            output,
            config.training,
            config=config.model_dump(mode="json"),
            scalars=metrics_log.scalars(),
            final={"best_validation": metrics["validation"], "test": metrics["test"]},
        )
    return Run(output, config, adapter, model, metrics)


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
    prepare_output(output, overwrite)
    started = time.perf_counter()

    splits, tokenizer, adapter = _load_data(config, labels)
    trained_start = model is not None  # a continual update's parent weights
    model, checkpointing = _prepare_model(config, adapter, splits, model)
    parameters = parameter_efficient.parameter_counts(model)  # (trainable, total)
    built = _build_callbacks(config, splits, adapter, callback, list(callbacks or []), trained_start=trained_start)
    callback, validation = built.callback, built.validation

    # Before: a task whose targets are texts is scored on the test set before fine-tuning (the model's zero-shot).
    test_features = adapter.encode(splits.test) if splits.test is not None else None
    before, before_predictions = None, None
    if zero_shot and config.task in TEXT_TARGET_TASKS and splits.test is not None:
        before, before_predictions = scoring.zero_shot(config, model, adapter, splits.test, cast(list, test_features))

    # Fine-tune, then score the best weights on validation and test.
    validation_features = adapter.encode(validation)
    fit_started = time.perf_counter()
    checkpoint = output.parent / f".{output.name}.checkpoint"
    unlabeled = adapter.encode(splits.unlabeled, with_labels=False) if built.self_training != "off" else None
    result = fit(
        model,
        adapter,
        adapter.encode(splits.train),
        validation,
        validation_features,
        config.training,
        callback=callback,
        unlabeled_features=unlabeled,
        checkpoint=checkpoint,
        resume=resume,
    )
    fit_seconds = time.perf_counter() - fit_started
    validation_metrics, decision = result.best_validation, None
    if adapter.decision:  # decision settings (multi-label thresholds) tuned on validation, then used on it and test
        validation_metrics, decision = scoring.tune_decision(config, model, adapter, validation, validation_features)
    # The resolved config: every `auto` replaced by what was chosen, so the run can be repeated exactly.
    selection = callback.resolved_selection()
    training = cast(TrainingConfig, result.settings).model_copy(update={"gradient_checkpointing": checkpointing})
    config = config.model_copy(update={"training": training, **({"selection": selection} if selection else {})})
    test_metrics, test_predictions = scoring.test_scores(config, model, adapter, splits, test_features)
    metrics = scoring.run_metrics(
        config,
        adapter,
        splits,
        result,
        sizes={"train": len(splits.train), "validation": len(validation), "agent_reward": len(built.reward_part)},
        parameters=parameters,
        scores={"validation": validation_metrics, "test": test_metrics, "decision": decision, "zero_shot": before},
        contributed=callback.run_metrics(),
        warnings=built.warnings + callback.run_warnings(),
        seconds={"fit": fit_seconds, "started": started},
    )
    return _write_run(
        output,
        config,
        adapter,
        model,
        tokenizer,
        splits,
        built,
        result,
        metrics,
        test_predictions,
        before_predictions,
        checkpoint,
    )


__all__ = ["Run", "load", "train"]
