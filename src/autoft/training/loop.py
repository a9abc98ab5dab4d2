"""The one training loop (accelerate): AdamW, linear warm-up, clipping, early stopping, best restore.

``fit`` reads top to bottom, one phase per comment; what it calls has a name: the settings (``_plan``), an
epoch's choice of samples, view of the rows, loss scales and one step's loss (:mod:`autoft.training.epoch`),
evaluation and what callbacks may ask of the model (:mod:`autoft.training.evaluation`), the optimiser and
schedule (:mod:`autoft.training.optimizer`), several processes (:mod:`autoft.training.processes`), the best epoch,
early stopping and rollback (:mod:`autoft.training.progress`), and checkpoints (:mod:`autoft.training.checkpoint`).
Task specifics live in the adapter; which samples are trained on, and with which weight, is a callback's call
(``autoft.training.callbacks``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from autoft.config import AUTO, TrainingConfig
from autoft.data.loading import Example
from autoft.errors import RunDirError
from autoft.tasks.base import Feature, TaskAdapter
from autoft.training.batching import LengthGroupedBatchSampler
from autoft.training.callbacks import TrainerCallback, TrainState
from autoft.training.checkpoint import latest_checkpoint, load_checkpoint, read_state, save_checkpoint, set_rng_state
from autoft.training.epoch import choose_samples, drawn_rows, epoch_view, loss_scales, step_loss
from autoft.training.evaluation import ModelAccess, evaluate
from autoft.training.optimizer import LinearSchedule, make_optimizer
from autoft.training.plan import resolve, steps_per_epoch
from autoft.training.processes import gathered, main_process_choice
from autoft.training.progress import EpochRecord, Progress, TrainResult, keep_best_or_stop
from autoft.training.snapshot import from_json, to_json

if TYPE_CHECKING:
    from torch.utils.data import Dataset

log = logging.getLogger(__name__)

SELECTION_FIELDS = ("weights", "relabels", "retagged", "masked_words", "pseudo_labels", "label_transition")
"""What the callbacks chose for an epoch (``TrainState``): a checkpoint within an epoch keeps it."""

CHECKPOINT_SECONDS = 600.0
"""``training.checkpoint_every: auto``: a checkpoint within an epoch once this much time has passed since the last."""


def _plan(
    config: TrainingConfig,
    model: torch.nn.Module,
    adapter: TaskAdapter,
    train_features: list[Feature],
    state: TrainState,
    accelerator: Accelerator,
    saved: dict[str, Any] | None,
) -> tuple[TrainingConfig, dict[str, Any]]:
    """Every ``auto`` setting made a value (batch size, epoch budget, patience, learning-rate range test), the same
    in every process (the main process's); resumed, the settings the interrupted run resolved, no second search."""
    if saved is not None:
        return TrainingConfig(**saved["settings"]), saved["plan"]
    search = None if state.search_rows is None else [train_features[i] for i in state.search_rows]
    plan = resolve(
        config,
        model=model,
        adapter=adapter,
        train_features=train_features,
        search_features=search,
        make_optimizer=lambda m: make_optimizer(m, config.weight_decay, 1e-5),
        device=accelerator.device,
        autocast=accelerator.autocast,
        processes=accelerator.num_processes,
    )
    plan = main_process_choice(accelerator, plan)
    return plan.config, plan.to_dict()


@dataclass
class _Training:
    """What ``fit`` prepared, which every epoch uses: the model as prepared, its optimiser and schedule, the
    batches, the callbacks and their state, the progress so far, and where checkpoints go."""

    model: torch.nn.Module
    unwrapped: torch.nn.Module
    adapter: TaskAdapter
    config: TrainingConfig
    accelerator: Accelerator
    callback: TrainerCallback
    state: TrainState
    progress: Progress
    optimizer: torch.optim.Optimizer
    scheduler: LambdaLR
    schedule: LinearSchedule
    sampler: LengthGroupedBatchSampler
    loader: DataLoader
    train_features: list[Feature]
    epoch_features: list[Feature]
    epoch_steps: int
    checkpoint: Path | None
    checkpointing: bool
    show: bool
    last_saved: float = 0.0

    def save(self, finished_epoch: int, within: dict[str, Any] | None = None) -> None:
        save_checkpoint(
            cast(Path, self.checkpoint),
            model=self.unwrapped,
            best=self.progress.best_state,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            state=self.progress.to_state(finished_epoch, self.schedule, self.callback, within),
        )
        self.last_saved = time.monotonic()

    def resume(self, saved_at: Path, saved: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        """Weights, optimiser, schedule, callbacks and counters from checkpoint ``saved_at``; returns the epoch to
        go on with and, when it was saved within an epoch, where in it and that epoch's choice of samples."""
        if not self.checkpointing:
            raise RunDirError(f"{self.checkpoint}: this run cannot resume (its callbacks cannot restore their state)")
        self.progress.best_state = load_checkpoint(
            saved_at, saved, model=self.unwrapped, optimizer=self.optimizer, scheduler=self.scheduler
        )
        self.callback.load_state_dict(saved["callbacks"])
        self.progress.restore(saved, self.schedule)
        in_epoch = saved.get("in_epoch")
        log.info(
            "resumed from %s after epoch %d%s",
            saved_at,
            saved["epoch"],
            f", step {in_epoch['batch'] + 1} of epoch {in_epoch['epoch']}" if in_epoch else "",
        )
        return saved["epoch"] + 1, in_epoch

    def train_epoch(
        self, epoch: int, within: dict[str, Any] | None, rng: dict[str, Any] | None
    ) -> tuple[float, int, float]:
        """One epoch: the callbacks' choice of samples (or, resumed ``within`` it, the checkpoint's), then weighted
        per-sample loss, backward, clip, step (a batch whose weights are all 0 is skipped). Returns the summed loss,
        the samples trained on and the seconds taken."""
        state, config, device = self.state, self.config, self.accelerator.device
        state.epoch, skip = epoch, -1
        if within is not None:
            selection = from_json(within["selection"])
            for name in SELECTION_FIELDS:
                setattr(state, name, selection[name])
            pool, skip, loss_total, seen, elapsed = (
                selection["pool"],
                within["batch"],
                within["loss"],
                within["seen"],
                within["seconds"],
            )
        else:
            choose_samples(state, self.callback, self.accelerator)
            pool, loss_total, seen, elapsed = drawn_rows(state), 0.0, 0, 0.0
        self.sampler.set_epoch(epoch, pool)
        weight_table = torch.as_tensor(state.sample_weights(), dtype=torch.float32, device=device)
        scale_table = loss_scales(state, pool, device)
        correction = epoch_view(
            self.adapter, self.train_features, self.epoch_features, state, cast(int, state.n_labelled), device
        )
        self.model.train()
        started, n_batches = time.perf_counter() - elapsed, max(len(self.sampler), 1)
        batches = iter(self.loader)
        if skip >= 0:  # the loader's iterator drew a seed: the random state must be the checkpoint's after it
            set_rng_state(cast("dict[str, Any]", rng))  # given with within
        bar = tqdm(
            batches,
            total=len(self.sampler),
            desc=f"epoch {epoch}/{config.epochs}",
            disable=not self.show,
            leave=False,
            unit="batch",
        )
        for b, batch in enumerate(bar):
            if b <= skip:
                continue  # trained before the checkpoint
            batch = {k: v.to(device) for k, v in batch.items()}
            index, labels = batch.pop("index"), batch.pop("labels")
            w = weight_table[index]
            if not bool((w > 0).any()):
                continue
            scale = None if scale_table is None else scale_table[index]
            loss, output = step_loss(
                self.model, self.adapter, batch, labels, w, scale, state, correction, index, self.unwrapped
            )
            self.accelerator.backward(loss)
            if config.max_grad_norm is not None:
                self.accelerator.clip_grad_norm_(self.model.parameters(), config.max_grad_norm)
            self.optimizer.step()
            self.schedule.done = (epoch - 1) * self.epoch_steps + (b + 1) * self.epoch_steps / n_batches
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            loss_total += float(loss.detach()) * len(index)
            seen += len(index)
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
            self.progress.step += 1
            rate = cast(float, self.scheduler.get_last_lr()[0])  # LambdaLR's rates are floats
            state.step, state.learning_rate, before = self.progress.step, rate, state.weights
            state.loss = float(loss.detach())
            # (with several processes every process's callbacks see the whole step: all shards' rows)
            self.callback.on_step_end(state, gathered(output) if self.accelerator.num_processes > 1 else output)
            if state.weights is not before:  # re-weighted for the rest of the epoch
                weight_table = torch.as_tensor(state.sample_weights(), dtype=torch.float32, device=device)
                scale_table = loss_scales(state, pool, device)
            self.model.train()  # a callback's evaluation leaves the model in eval mode
            every = config.checkpoint_every
            due = (
                self.progress.step % every == 0
                if every != AUTO
                else time.monotonic() - self.last_saved >= CHECKPOINT_SECONDS
            )
            if self.checkpointing and due and b + 1 < n_batches:
                self.save(
                    epoch - 1,
                    {
                        "epoch": epoch,
                        "batch": b,
                        "loss": loss_total,
                        "seen": seen,
                        "seconds": time.perf_counter() - started,
                        "selection": to_json(
                            {"pool": pool, **{name: getattr(state, name) for name in SELECTION_FIELDS}}
                        ),
                    },
                )
        return loss_total, seen, time.perf_counter() - started

    def validate(
        self, epoch: int, examples: list[Example], features: list[Feature], loss_total: float, seen: int, seconds: float
    ) -> bool:
        """The epoch's record, scored on the validation set, which alone chooses early stopping and the best
        epoch; True when training stops."""
        adapter, state = self.adapter, self.state
        validation, predicted = evaluate(
            self.unwrapped,
            adapter,
            examples,
            features,
            batch_size=self.config.eval_batch_size,
            progress=self.show,
            description="validate",
            return_predictions=True,
            loss_only=adapter.validate_by_loss,
        )
        state.validation, state.validation_predictions = validation, predicted
        self.callback.on_evaluate(state)
        record = EpochRecord(epoch, loss_total / max(seen, 1), seen, seconds, seen / max(seconds, 1e-9), validation)
        self.progress.result.history.append(record)
        log.info(
            "epoch %d: train loss %.4f, validation %s %.4f (%.1f samples/s)",
            epoch,
            record.train_loss,
            adapter.primary_metric,
            validation[adapter.primary_metric],
            record.samples_per_second,
        )
        return keep_best_or_stop(
            self.progress, validation, epoch, self.config, adapter, self.unwrapped, self.schedule, self.scheduler
        )


def _batches(
    adapter: TaskAdapter,
    labelled: list[Feature],
    unlabeled: list[Feature] | None,
    config: TrainingConfig,
    accelerator: Accelerator,
) -> tuple[list[Feature], list[Feature], LengthGroupedBatchSampler, DataLoader]:
    """The training rows (indexed), this epoch's view of them, the sampler and the loader: seeded, optionally
    length-grouped batches, padded to the longest sample (or to max_length). Unlabelled rows follow the labelled ones
    and carry a placeholder class until a callback pseudo-labels them (weight 0 till then)."""
    train_features = [*labelled, *(adapter.relabel(f, 0) for f in unlabeled or [])]
    for i, feature in enumerate(train_features):
        feature["index"] = i
    sampler = LengthGroupedBatchSampler(
        [len(f["input_ids"]) for f in train_features],
        cast(int, config.batch_size),
        seed=config.seed,
        group_by_length=config.group_by_length,
        num_shards=accelerator.num_processes,
        shard=accelerator.process_index,
    )
    pad_to = cast(int, config.max_length) if config.padding == "max_length" else None
    epoch_features = list(train_features)  # this epoch's view: a callback may relabel rows or mask some words' tags
    loader = DataLoader(
        cast("Dataset[Feature]", epoch_features),
        batch_sampler=sampler,
        collate_fn=lambda f: adapter.collate_indexed(f, pad_to=pad_to),
    )
    return train_features, epoch_features, sampler, loader


def _optimisation(
    model: torch.nn.Module, config: TrainingConfig, n_labelled: int, accelerator: Accelerator
) -> tuple[torch.optim.Optimizer, LinearSchedule, LambdaLR, int]:
    """AdamW and the linear schedule, with the steps of an epoch (per process). The loader and schedule stay ours
    (not accelerator.prepare'd): the sampler shards batches across processes itself, so the callbacks' per-epoch pool
    is honoured exactly."""
    optimizer = make_optimizer(
        model,
        config.weight_decay,
        cast(float, config.learning_rate),
        None if config.head_learning_rate == AUTO else config.head_learning_rate,
    )
    epoch_steps = steps_per_epoch(n_labelled, cast(int, config.batch_size), accelerator.num_processes)
    total_steps = max(1, cast(int, config.epochs) * epoch_steps)  # per process
    schedule = LinearSchedule(total_steps, int(config.warmup_ratio * total_steps))
    return optimizer, schedule, LambdaLR(optimizer, schedule), epoch_steps


def _can_checkpoint(checkpoint: Path | None, accelerator: Accelerator, callback: TrainerCallback) -> bool:
    """Checkpoints are written after each epoch (and within one, every checkpoint_every steps) when one process trains
    and every callback can give its state; resumed, training goes on where the checkpoint left it."""
    if checkpoint is None:
        return False
    if accelerator.num_processes > 1 or callback.state_dict() is None:
        log.info(
            "no checkpoints: %s",
            "more than one process"
            if accelerator.num_processes > 1
            else "a callback cannot save its state (TrainerCallback.state_dict gives None)",
        )
        return False
    return True


def fit(
    model: torch.nn.Module,
    adapter: TaskAdapter,
    train_features: list[Feature],
    validation_examples: list[Example],
    validation_features: list[Feature],
    config: TrainingConfig,
    *,
    callback: TrainerCallback | None = None,
    accelerator: Accelerator | None = None,
    unlabeled_features: list[Feature] | None = None,
    checkpoint: Path | None = None,
    resume: bool = False,
) -> TrainResult:
    """Fine-tune ``model`` in place; on return it holds the best epoch's weights. Settings that are ``auto``
    are resolved first (:mod:`autoft.training.plan`); ``TrainResult.settings`` holds what was used.
    ``callback`` (:mod:`autoft.training.callbacks`) may choose each epoch's samples and loss weights.
    ``unlabeled_features`` (encoded without labels) follow the training rows; they train only on the
    pseudo-labels a callback gives them. The settings are resolved on the labelled rows.

    ``checkpoint`` (a folder): after each epoch the loop's whole state goes there (:mod:`autoft.training.checkpoint`),
    when every callback can give its state (``TrainerCallback.state_dict``). ``resume``: continue from it, with the
    settings it was resolved with; the result equals an uninterrupted run's."""
    callback = callback or TrainerCallback()
    saved_at = latest_checkpoint(checkpoint) if checkpoint is not None and resume else None
    if resume and saved_at is None:  # killed before its first checkpoint (e.g. in the agent's offline phase)
        log.info("%s: no checkpoint to resume from; training starts from the beginning", checkpoint)
    saved = read_state(saved_at) if saved_at else None
    set_seed(config.seed)
    # cpu=True without CUDA: under torchrun / accelerate launch on CPU the processes then join one gloo group
    # (accelerate only looks for a multi-CPU launch when told the run is on the CPU).
    accelerator = accelerator or Accelerator(mixed_precision=config.mixed_precision, cpu=not torch.cuda.is_available())
    show = config.progress and accelerator.is_local_main_process

    # Callbacks start: what they may ask of the model, and the rows the learning-rate range test may use.
    access = ModelAccess(model, adapter, train_features, config, show=show)
    n_labelled = len(train_features)
    state = TrainState(
        n_samples=n_labelled + len(unlabeled_features or []),
        n_labelled=n_labelled,
        evaluate=access.evaluate,
        encode=adapter.encode,
        score=access.score,
        predict=access.predict,
        predict_rows=access.predict_rows,
        model=model,
    )
    callback.on_train_begin(state)
    model.to(accelerator.device)
    config, plan_record = _plan(config, model, adapter, train_features, state, accelerator, saved)
    set_seed(config.seed)  # training starts from the same random state whether or not a search ran

    train_features, epoch_features, sampler, loader = _batches(
        adapter, train_features, unlabeled_features, config, accelerator
    )
    access.train_features = train_features
    epochs = cast(int, config.epochs)  # resolved by _plan: no auto
    optimizer, schedule, scheduler, epoch_steps = _optimisation(model, config, n_labelled, accelerator)
    model, optimizer = accelerator.prepare(model, optimizer)
    checkpointing = _can_checkpoint(checkpoint, accelerator, callback)
    progress = Progress(TrainResult(best_epoch=0, best_validation={}, settings=config, plan=plan_record))
    training = _Training(
        model,
        accelerator.unwrap_model(model),
        adapter,
        config,
        accelerator,
        callback,
        state,
        progress,
        optimizer,
        scheduler,
        schedule,
        sampler,
        loader,
        train_features,
        epoch_features,
        epoch_steps,
        checkpoint,
        checkpointing,
        show,
        last_saved=time.monotonic(),
    )
    first_epoch, in_epoch = training.resume(saved_at, cast(dict, saved)) if saved_at is not None else (1, None)

    for epoch in range(first_epoch, epochs + 1):
        within = in_epoch if in_epoch is not None and in_epoch["epoch"] == epoch else None
        loss_total, seen, seconds = training.train_epoch(epoch, within, cast(dict, saved)["rng"] if within else None)
        callback.on_epoch_end(state)
        if training.validate(epoch, validation_examples, validation_features, loss_total, seen, seconds):
            break
        if checkpointing:
            training.save(epoch)

    # Restore the best epoch's weights: the model the run keeps, which callbacks see at the end.
    if progress.best_state is not None:
        training.unwrapped.load_state_dict(progress.best_state)
    callback.on_train_end(state)
    accelerator.free_memory()
    return progress.result


__all__ = ["EpochRecord", "TrainResult", "evaluate", "fit"]
