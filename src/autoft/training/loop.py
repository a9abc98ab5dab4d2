"""The one training loop (accelerate): AdamW, linear warm-up, clipping, early stopping, best restore.

It reads top to bottom, one phase per comment. Task specifics live in the adapter; which samples
are trained on, and with which weight, is a callback's call (``autoft.training.callbacks``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, gather_object, set_seed
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from autoft.config import AUTO, TrainingConfig
from autoft.data.loading import Example
from autoft.errors import RunDirError
from autoft.modeling.parameter_efficient import HEADS
from autoft.tasks.base import Feature, TaskAdapter
from autoft.tasks.text_metrics import perplexity
from autoft.training.batching import LengthGroupedBatchSampler
from autoft.training.callbacks import StepOutput, TrainerCallback, TrainState
from autoft.training.checkpoint import latest_checkpoint, load_checkpoint, read_state, save_checkpoint, set_rng_state
from autoft.training.inference import predict_probabilities
from autoft.training.plan import resolve, steps_per_epoch
from autoft.training.snapshot import from_json, to_json

log = logging.getLogger(__name__)

LOSS_MIN_DELTA = 1e-4
"""A validation loss that falls by less than this share is not progress (``early_stopping_on: metric-or-loss``)."""
ROLLBACK_FACTOR = 0.5
"""``on_plateau: rollback``: the learning rate's factor after each return to the best epoch's weights."""

SELECTION_FIELDS = ("weights", "relabels", "retagged", "masked_words", "pseudo_labels", "label_transition")
"""What the callbacks chose for an epoch (``TrainState``): a checkpoint within an epoch keeps it."""

CHECKPOINT_SECONDS = 600.0
"""``training.checkpoint_every: auto``: a checkpoint within an epoch once this much time has passed since the last."""


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    samples: int
    seconds: float
    samples_per_second: float
    validation: dict[str, Any]


@dataclass
class TrainResult:
    best_epoch: int
    best_validation: dict[str, Any]
    history: list[EpochRecord] = field(default_factory=list)
    stopped_early: bool = False
    rollbacks: list[int] = field(default_factory=list)
    """Epochs after which the loop went back to the best weights at a lower rate (``on_plateau: rollback``)."""
    settings: TrainingConfig | None = None
    """The settings trained with: the config with every ``auto`` resolved."""
    plan: dict[str, Any] = field(default_factory=dict)
    """What ``auto`` chose and how (``Plan.to_dict``): per field, and the learning-rate range test's curve."""

    def to_dict(self) -> dict[str, Any]:
        settings = self.settings.model_dump(mode="json") if self.settings is not None else None
        return {**asdict(self), "settings": settings}


def evaluate(
    model: torch.nn.Module,
    adapter: TaskAdapter,
    examples: list[Example],
    features: list[Feature],
    *,
    batch_size: int,
    progress: bool = False,
    description: str = "evaluate",
    return_predictions: bool = False,
    loss_only: bool = False,
    tune_decision: bool = False,
) -> dict[str, Any] | tuple[dict[str, Any], list[Any]]:
    """Metrics (and mean loss) of ``model`` on labelled ``examples``; with ``return_predictions``, also
    the decoded prediction of each example. ``loss_only``: the loss (and its perplexity) without predicting.
    ``tune_decision``: the adapter's decision settings (multi-label thresholds) are first tuned on these examples'
    probabilities, then the predictions are decoded with them."""
    probabilities, loss = predict_probabilities(
        model, adapter, features, batch_size=batch_size, progress=progress, description=description, with_loss=True,
        outputs=not loss_only,
    )
    if tune_decision and not loss_only:
        adapter.tune_decision(probabilities, examples)
    predictions = [None if p is None else adapter.decode(p) for p in probabilities]
    metrics = {} if loss_only else adapter.metrics(examples, predictions)
    metrics["loss"] = loss
    if adapter.validate_by_loss and loss is not None:
        metrics["perplexity"] = perplexity(loss)
    return (metrics, predictions) if return_predictions else metrics


def _optimizer(model: torch.nn.Module, weight_decay: float, learning_rate: float,
               head_learning_rate: float | None = None) -> torch.optim.Optimizer:
    """AdamW with no weight decay on biases and norms (the parameters transformers' Trainer exempts); the task
    head (a module named in ``HEADS``) at ``head_learning_rate`` when it is given and differs."""
    from transformers.pytorch_utils import ALL_LAYERNORM_LAYERS
    from transformers.trainer_pt_utils import get_parameter_names

    decaying = set(get_parameter_names(model, ALL_LAYERNORM_LAYERS, [
        "bias", "layernorm", "rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]))
    split = head_learning_rate is not None and head_learning_rate != learning_rate
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            head = split and any(part in HEADS for part in name.split("."))
            groups.setdefault((name in decaying, head), []).append(parameter)
    return torch.optim.AdamW([
        {"params": params, "weight_decay": weight_decay if decays else 0.0,
         "lr": head_learning_rate if head else learning_rate}
        for (decays, head), params in sorted(groups.items(), reverse=True)
    ], lr=learning_rate)


GATHERED_CLASSES = 1024
"""With several processes, step logits over at most this many classes are gathered for the callbacks (a language
model's logits over its vocabulary are not: the pair agent reads the rows and losses only)."""


def _gathered(output: StepOutput) -> StepOutput:
    """``output`` of every process, concatenated in process order (token logits and labels padded to the longest)."""
    logits = output.logits if output.logits.shape[-1] <= GATHERED_CLASSES else None
    parts = gather_object([(np.asarray(output.indices), output.losses.float().cpu(), output.labels.cpu(),
                            None if logits is None else logits.float().cpu())])
    labels, width = [p[2] for p in parts], max(p[2].shape[-1] if p[2].ndim > 1 else 0 for p in parts)
    if width:  # token classification: [B, T] labels and [B, T, C] logits, T per process
        labels = [torch.nn.functional.pad(x, (0, width - x.shape[-1]), value=-100) for x in labels]
    gathered_logits = None
    if logits is not None:
        pieces = [p[3] for p in parts]
        if pieces[0].ndim == 3:
            pieces = [torch.nn.functional.pad(x, (0, 0, 0, width - x.shape[1])) for x in pieces]
        gathered_logits = torch.cat(pieces).to(output.logits.device)
    return StepOutput(np.concatenate([p[0] for p in parts]), torch.cat([p[1] for p in parts]),
                      gathered_logits, torch.cat(labels))


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
    saved_state = read_state(saved_at) if saved_at else None
    set_seed(config.seed)
    # cpu=True without CUDA: under torchrun / accelerate launch on CPU the processes then join one gloo group
    # (accelerate only looks for a multi-CPU launch when told the run is on the CPU).
    accelerator = accelerator or Accelerator(mixed_precision=config.mixed_precision,
                                             cpu=not torch.cuda.is_available())
    show = config.progress and accelerator.is_local_main_process

    # What callbacks see and may ask for: evaluation on any labelled examples, margins of training rows.
    # (The functions read the loop's variables when called: the model as prepared, every training row.)
    def evaluate_now(examples: list[Example], features: list[Feature] | None = None, *, loss_only: bool = False):
        return evaluate(accelerator.unwrap_model(model), adapter, examples,
                        adapter.encode(examples) if features is None else features,
                        batch_size=config.eval_batch_size, return_predictions=True, loss_only=loss_only)

    def score_now(rows: np.ndarray) -> np.ndarray:
        scored = [train_features[i] for i in np.asarray(rows, dtype=np.int64)]
        probabilities, _ = predict_probabilities(accelerator.unwrap_model(model), adapter, scored,
                                                 batch_size=config.eval_batch_size, progress=show, description="score")
        return np.array([adapter.label_margin(p, f) for p, f in zip(probabilities, scored)])

    def predict_now(features: list[Feature]) -> list[np.ndarray]:
        return predict_probabilities(accelerator.unwrap_model(model), adapter, features,
                                     batch_size=config.eval_batch_size, progress=show, description="predict")[0]

    def predict_rows(rows: np.ndarray) -> list[np.ndarray]:
        return predict_now([train_features[i] for i in np.asarray(rows, dtype=np.int64)])

    n_labelled = len(train_features)
    state = TrainState(n_samples=n_labelled + len(unlabeled_features or []), n_labelled=n_labelled,
                       evaluate=evaluate_now, encode=adapter.encode, score=score_now, predict=predict_now,
                       predict_rows=predict_rows)
    callback.on_train_begin(state)

    # Settings: every `auto` becomes a value (batch size, epoch budget, patience, learning-rate range test).
    model.to(accelerator.device)
    search = None if state.search_rows is None else [train_features[i] for i in state.search_rows]
    if saved_state is not None:  # resumed: the settings the interrupted run resolved, no second search
        config, plan_record = TrainingConfig(**saved_state["settings"]), saved_state["plan"]
    else:
        plan = resolve(config, model=model, adapter=adapter, train_features=train_features, search_features=search,
                       make_optimizer=lambda m: _optimizer(m, config.weight_decay, 1e-5),
                       device=accelerator.device, autocast=accelerator.autocast, processes=accelerator.num_processes)
        if accelerator.num_processes > 1:  # every process trains with the main process's choices
            shared = [plan]
            broadcast_object_list(shared)
            plan = shared[0]
        config, plan_record = plan.config, plan.to_dict()
    set_seed(config.seed)  # training starts from the same random state whether or not a search ran

    # Data: seeded, optionally length-grouped batches, padded to the longest sample (or to max_length).
    # Unlabelled rows carry a placeholder class until a callback pseudo-labels them (weight 0 till then).
    train_features = list(train_features) + [adapter.relabel(f, 0) for f in unlabeled_features or []]
    for i, feature in enumerate(train_features):
        feature["index"] = i
    lengths = [len(f["input_ids"]) for f in train_features]
    sampler = LengthGroupedBatchSampler(
        lengths, config.batch_size, seed=config.seed, group_by_length=config.group_by_length,
        num_shards=accelerator.num_processes, shard=accelerator.process_index,
    )
    pad_to = config.max_length if config.padding == "max_length" else None
    epoch_features = list(train_features)  # this epoch's view: a callback may mask some words' tags
    loader = DataLoader(
        epoch_features, batch_sampler=sampler, collate_fn=lambda f: adapter.collate_indexed(f, pad_to=pad_to)
    )

    # Optimiser and schedule: AdamW, linear warm-up then linear decay over the planned epochs. The schedule
    # follows the share of the planned epochs done, not the steps taken: a callback that leaves samples
    # out (or admits pseudo-labelled ones) changes how many steps an epoch has, and the rate must still
    # warm up over the planned share and reach zero at the end. Each epoch counts as the steps the labelled
    # rows make, so with every sample kept this is exactly transformers' get_linear_schedule_with_warmup.
    optimizer = _optimizer(model, config.weight_decay, config.learning_rate,
                           None if config.head_learning_rate == AUTO else config.head_learning_rate)
    epoch_steps = steps_per_epoch(n_labelled, config.batch_size, accelerator.num_processes)
    total_steps = max(1, config.epochs * epoch_steps)  # per process
    warmup_steps = int(config.warmup_ratio * total_steps)
    done = [0.0]  # planned steps done: epochs finished and the share of this one, in labelled-epoch steps
    rate_scale = [1.0]  # falls by ROLLBACK_FACTOR at each rollback

    def linear_warmup_decay(_: int) -> float:
        if done[0] < warmup_steps:
            return rate_scale[0] * done[0] / max(1, warmup_steps)
        return rate_scale[0] * max(0.0, (total_steps - done[0]) / max(1, total_steps - warmup_steps))

    scheduler = LambdaLR(optimizer, linear_warmup_decay)
    # The loader and schedule stay ours (not accelerator.prepare'd): the sampler shards batches across
    # processes itself, so the callbacks' per-epoch pool is honoured exactly.
    model, optimizer = accelerator.prepare(model, optimizer)

    result = TrainResult(best_epoch=0, best_validation={}, settings=config, plan=plan_record)
    best_score, best_loss, best_state, stale, step = -np.inf, np.inf, None, 0, 0
    returned_to: set[int] = set()  # best epochs already rolled back to: once each
    callback_state = callback.state_dict() if checkpoint is not None else None
    checkpointing = checkpoint is not None and callback_state is not None and accelerator.num_processes == 1
    if checkpoint is not None and not checkpointing:
        log.info("no checkpoints: %s", "more than one process" if accelerator.num_processes > 1 else
                 "a callback cannot save its state (TrainerCallback.state_dict gives None)")
    first_epoch, in_epoch = 1, None
    if saved_at is not None:
        if not checkpointing:
            raise RunDirError(f"{checkpoint}: this run cannot resume (its callbacks cannot restore their state)")
        best_state = load_checkpoint(saved_at, saved_state, model=accelerator.unwrap_model(model), optimizer=optimizer,
                                     scheduler=scheduler)
        callback.load_state_dict(saved_state["callbacks"])
        first_epoch, step = saved_state["epoch"] + 1, saved_state["step"]
        done[0], rate_scale[0] = saved_state["done"], saved_state["rate_scale"]
        best_score, best_loss = saved_state["best_score"], saved_state["best_loss"]
        stale = saved_state["stale"]
        returned_to = set(saved_state["returned_to"])
        result.best_epoch, result.best_validation = saved_state["best_epoch"], saved_state["best_validation"]
        result.history = [EpochRecord(**r) for r in saved_state["history"]]
        result.rollbacks = saved_state["rollbacks"]
        in_epoch = saved_state.get("in_epoch")  # saved within an epoch: where in it, and that epoch's selection
        log.info("resumed from %s after epoch %d%s", saved_at, saved_state["epoch"],
                 f", step {in_epoch['batch'] + 1} of epoch {in_epoch['epoch']}" if in_epoch else "")

    def loop_state(finished_epoch: int, within: dict[str, Any] | None = None) -> dict[str, Any]:
        """What a checkpoint holds besides weights, optimizer, schedule and random states."""
        return {"epoch": finished_epoch, "step": step, "done": done[0], "rate_scale": rate_scale[0],
                "best_score": best_score, "best_loss": best_loss, "stale": stale, "returned_to": sorted(returned_to),
                "best_epoch": result.best_epoch, "best_validation": result.best_validation,
                "history": [asdict(r) for r in result.history], "rollbacks": result.rollbacks,
                "settings": config.model_dump(mode="json"), "plan": plan_record, "callbacks": callback.state_dict(),
                **({"in_epoch": within} if within else {})}

    def checkpoint_now(finished_epoch: int, within: dict[str, Any] | None = None) -> None:
        save_checkpoint(checkpoint, model=accelerator.unwrap_model(model), best=best_state, optimizer=optimizer,
                        scheduler=scheduler, state=loop_state(finished_epoch, within))
        last_saved[0] = time.monotonic()

    last_saved = [time.monotonic()]
    every = config.checkpoint_every

    for epoch in range(first_epoch, config.epochs + 1):
        # Selection: callbacks decide which samples this epoch draws from, their loss weights, relabels and
        # masked tags (resumed within this epoch: the checkpoint has them, and the batches already trained).
        state.epoch = epoch
        skip = -1
        if in_epoch is not None and in_epoch["epoch"] == epoch:
            selection = from_json(in_epoch["selection"])
            for name in SELECTION_FIELDS:
                setattr(state, name, selection[name])
            pool, skip, loss_total, seen = selection["pool"], in_epoch["batch"], in_epoch["loss"], in_epoch["seen"]
            elapsed = in_epoch["seconds"]
        else:
            state.weights, state.masked_words, state.relabels, state.pseudo_labels = None, {}, {}, {}
            state.retagged = {}
            state.label_transition = None
            callback.on_epoch_begin(state)
            if accelerator.num_processes > 1:  # one selection for all: the main process's (the agents agree, by seed)
                chosen = [(state.weights, state.relabels, state.masked_words, state.pseudo_labels)]
                broadcast_object_list(chosen)
                state.weights, state.relabels, state.masked_words, state.pseudo_labels = chosen[0]
            pool, loss_total, seen, elapsed = np.flatnonzero(state.sample_weights() > 0), 0.0, 0, 0.0
        weights = state.sample_weights()
        sampler.set_epoch(epoch, pool)
        weight_table = torch.as_tensor(weights, dtype=torch.float32, device=accelerator.device)
        epoch_features[:] = train_features
        for i, label in [*state.relabels.items(), *((i, c) for i, (c, _) in state.pseudo_labels.items())]:
            epoch_features[i] = adapter.relabel(train_features[i], label)
        for i, tags in state.retagged.items():
            epoch_features[i] = adapter.retag_words(epoch_features[i], tags)
        for i, words in state.masked_words.items():
            epoch_features[i] = adapter.mask_words(epoch_features[i], words)
        transition, given = None, None  # forward correction: the rows that train on their given label
        if state.label_transition is not None:
            transition = torch.as_tensor(state.label_transition, dtype=torch.float32, device=accelerator.device)
            given = torch.zeros(len(train_features), dtype=torch.bool, device=accelerator.device)
            given[:n_labelled] = True
            given[[*state.relabels, *state.pseudo_labels]] = False

        # Train one epoch: weighted per-sample loss, backward, clip, step (a batch whose weights are all 0 is skipped).
        model.train()
        started = time.perf_counter() - elapsed
        n_batches = max(len(sampler), 1)
        batches = iter(loader)
        if skip >= 0:  # the loader's iterator drew a seed: the random state must be the checkpoint's after it
            set_rng_state(saved_state["rng"])
        bar = tqdm(batches, total=len(sampler), desc=f"epoch {epoch}/{config.epochs}", disable=not show, leave=False,
                   unit="batch")
        for b, batch in enumerate(bar):
            if b <= skip:
                continue  # trained before the checkpoint
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            index = batch.pop("index")
            labels = batch.pop("labels")
            w = weight_table[index]
            if not bool((w > 0).any()):
                continue
            logits = adapter.forward(model, batch, labels)
            losses, units = adapter.per_sample_loss(logits, labels)
            if transition is not None:
                corrected, _ = adapter.per_sample_loss(logits, labels, transition)
                losses = torch.where(given[index], corrected, losses)
            loss = (w * losses).sum() / (w * units).sum().clamp_min(1e-8)
            if state.loss_penalty is not None:
                loss = loss + state.loss_penalty(accelerator.unwrap_model(model))
            if state.logit_penalty is not None:
                loss = loss + state.logit_penalty(batch, logits, labels)
            accelerator.backward(loss)
            if config.max_grad_norm is not None:
                accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            done[0] = (epoch - 1) * epoch_steps + (b + 1) * epoch_steps / n_batches
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_total += float(loss.detach()) * len(index)
            seen += len(index)
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
            step += 1
            state.step, state.learning_rate, before = step, scheduler.get_last_lr()[0], state.weights
            state.loss = float(loss.detach())
            output = StepOutput(index.cpu().numpy(), (losses / units.clamp_min(1)).detach(), logits.detach(), labels)
            if accelerator.num_processes > 1:  # every process's callbacks see the whole step (all shards' rows)
                output = _gathered(output)
            callback.on_step_end(state, output)
            if state.weights is not before:  # re-weighted for the rest of the epoch
                weight_table = torch.as_tensor(state.sample_weights(), dtype=torch.float32, device=accelerator.device)
            model.train()  # a callback's evaluation leaves the model in eval mode
            due = step % every == 0 if every != AUTO else time.monotonic() - last_saved[0] >= CHECKPOINT_SECONDS
            if checkpointing and due and b + 1 < n_batches:
                checkpoint_now(epoch - 1, {
                    "epoch": epoch, "batch": b, "loss": loss_total, "seen": seen,
                    "seconds": time.perf_counter() - started,
                    "selection": to_json({"pool": pool, **{name: getattr(state, name) for name in SELECTION_FIELDS}})})
        seconds = time.perf_counter() - started
        unwrapped = accelerator.unwrap_model(model)

        callback.on_epoch_end(state)

        # Evaluate on the validation set: it alone chooses early stopping and the best epoch.
        validation, predicted = evaluate(
            unwrapped, adapter, validation_examples, validation_features,
            batch_size=config.eval_batch_size, progress=show, description="validate", return_predictions=True,
            loss_only=adapter.validate_by_loss,
        )
        state.validation, state.validation_predictions = validation, predicted
        callback.on_evaluate(state)
        record = EpochRecord(epoch, loss_total / max(seen, 1), seen, seconds, seen / max(seconds, 1e-9), validation)
        result.history.append(record)
        log.info(
            "epoch %d: train loss %.4f, validation %s %.4f (%.1f samples/s)",
            epoch, record.train_loss, adapter.primary_metric, validation[adapter.primary_metric],
            record.samples_per_second,
        )
        score = validation[adapter.primary_metric] * (1 if adapter.greater_is_better else -1)

        # Keep the best weights; stop when nothing has improved for `patience` epochs (the metric, or with
        # `early_stopping_on: metric-or-loss` also the validation loss). With `on_plateau: rollback`, an epoch
        # whose validation metric fell below the best sends the loop back to the best weights, to go on at
        # half the rate: the fall most likely came from a rate too high for this data. Once per best epoch:
        # if the lower rate falls below it again, the fall is the validation set's noise or the end of
        # learning, and training goes on from there (patience still decides when to stop).
        loss = validation.get("loss")
        loss_improved = (config.early_stopping_on == "metric-or-loss" and loss is not None
                         and loss < best_loss * (1 - LOSS_MIN_DELTA))
        best_loss = min(best_loss, loss if loss is not None else np.inf)
        improved, fell = score > best_score, score < best_score
        if improved:
            best_score, stale = score, 0
            best_state = {k: v.detach().cpu().clone() for k, v in unwrapped.state_dict().items()}
            result.best_epoch, result.best_validation = epoch, validation
        elif loss_improved:
            stale = 0
        else:
            stale += 1
            if config.early_stopping_patience is not None and stale >= config.early_stopping_patience:
                result.stopped_early = True
                log.info("early stopping after epoch %d (best: epoch %d)", epoch, result.best_epoch)
                break
        if (fell and config.on_plateau == "rollback" and epoch < config.epochs
                and result.best_epoch not in returned_to):
            returned_to.add(result.best_epoch)
            unwrapped.load_state_dict(best_state)
            rate_scale[0] *= ROLLBACK_FACTOR
            scheduler.step()  # re-reads the schedule (it follows `done`, not the step count): the new rate applies now
            result.rollbacks.append(epoch)
            log.info("validation %s fell in epoch %d: back to epoch %d's weights, learning rate x%g from here",
                     adapter.primary_metric, epoch, result.best_epoch, rate_scale[0])
        if checkpointing:
            checkpoint_now(epoch)

    # Restore the best epoch's weights: the model the run keeps, which callbacks see at the end.
    unwrapped = accelerator.unwrap_model(model)
    if best_state is not None:
        unwrapped.load_state_dict(best_state)
    callback.on_train_end(state)
    accelerator.free_memory()
    return result


__all__ = ["EpochRecord", "TrainResult", "evaluate", "fit"]
