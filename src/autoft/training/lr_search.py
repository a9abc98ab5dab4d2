"""The learning-rate range test (Smith 2017; fastai's ``lr_find``) behind ``learning_rate: auto``.

Optimisation steps on shuffled, length-grouped batches of the training data, the learning rate growing
geometrically from ``min_lr`` to ``max_lr``; the training loss is recorded at each step and a pass stops
once it diverges. With ``shuffles`` > 1 the test makes that many passes from the same weights over
different shuffles and averages their losses step by step before smoothing. One short pass partly shows
which batches it drew (on TweetEval it chose 1.5e-4, 5.1e-5 and 2.6e-4 at 500, 1,500 and 3,257 rows;
``benchmarks/results/defaults.json``). Two passes of 32 steps chose 1.9-2.3e-4 there, but the defaults
benchmark ran no better with them on any validation set and worse on four of six, at 1.2-1.4x the search
time (``benchmarks/results/defaults_lr_two_shuffles.json``), so the default stays one pass of 24 steps.
The model's weights are restored afterwards, so the search leaves no trace but its result. The rate
chosen is at the bottom of the (mean) curve's steepest stretch ("valley": the longest run of falling
loss, two thirds of the way down it, as in fastai), kept within ``bounds``: fast enough to learn in the
planned steps, slow enough not to forget the pretraining.

How many steps and samples a test may spend is the plan's choice (:func:`autoft.training.plan.search_budget`:
at most a fifth of the planned training's tokens); the test records the samples and tokens it drew, and shows a
progress bar when asked.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from autoft.tasks.base import Feature, TaskAdapter
from autoft.training.batching import LengthGroupedBatchSampler


@dataclass
class LRSearch:
    """One range test: the rates tried, the loss curve, and the rate chosen (with the rule that chose it)."""

    learning_rates: list[float]
    losses: list[float]
    """Per step, the mean training loss over the passes (each pass a different shuffle)."""
    smoothed: list[float]
    chosen: float
    rule: str
    valley: tuple[float, float] | None = None
    diverged_at: float | None = None
    batch_size: int = 0
    samples: int = 0
    tokens: int = 0
    """Tokens of the samples drawn (``input_ids``, unpadded): the test's cost, as the plan counts training's."""
    seconds: float = 0.0
    bounds: tuple[float, float] = (0.0, math.inf)
    shuffle_losses: list[list[float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def smooth(values: list[float], beta: float) -> list[float]:
    """Bias-corrected exponential moving average (fastai's smoothing of the range test's loss)."""
    out, average = [], 0.0
    for i, value in enumerate(values, start=1):
        average = beta * average + (1 - beta) * value
        out.append(average / (1 - beta**i))
    return out


def valley(losses: list[float]) -> tuple[int, int, int]:
    """(start, end, pick) of the longest decreasing subsequence of ``losses``; pick is two thirds of the way
    down it (fastai's ``valley`` suggestion)."""
    n = len(losses)
    run = [1] * n
    start, end = 0, 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and run[i] < run[j] + 1:
                run[i] = run[j] + 1
        if run[end] < run[i]:
            end = i
            start = end - run[end]
    third = (end - start) / 3
    return max(start, 0), end, min(n - 1, max(0, start + int(third) + int(third / 2)))


def choose_rate(
    rates: list[float], smoothed: list[float], bounds: tuple[float, float]
) -> tuple[float, str, tuple | None]:
    """The rate the curve suggests, clipped to ``bounds``; with no usable curve, the geometric middle of them."""
    low, high = bounds
    if len(smoothed) < 5 or not np.isfinite(smoothed).all():
        return math.sqrt(low * high), "no usable curve: middle of the bounds", None
    start, end, pick = valley(smoothed)
    if end - start < 3:
        return math.sqrt(low * high), "no falling stretch in the curve: middle of the bounds", None
    rate = rates[pick]
    rule = "valley"
    if rate < low:
        rate, rule = low, "valley, raised to the lower bound"
    elif rate > high:
        rate, rule = high, "valley, lowered to the upper bound"
    return float(rate), rule, (float(rates[start]), float(rates[end]))


def range_test(
    model: torch.nn.Module,
    adapter: TaskAdapter,
    features: list[Feature],
    make_optimizer: Any,
    *,
    batch_size: int,
    steps: int = 24,
    shuffles: int = 1,
    min_lr: float = 1e-5,
    max_lr: float = 5e-3,
    bounds: tuple[float, float] = (1e-5, 5e-4),
    seed: int = 0,
    beta: float = 0.8,
    divergence: float = 3.0,
    max_grad_norm: float | None = 1.0,
    device: torch.device | str = "cpu",
    autocast: Any = contextlib.nullcontext,
    progress: bool = False,
) -> LRSearch:
    """Run the range test on ``features`` and return its curve and chosen rate; ``model`` is unchanged after.

    ``make_optimizer(model)`` builds a fresh optimiser (the loop's AdamW groups); its rate is set per step.
    ``autocast()`` is the mixed-precision context of the forward pass (the accelerator's). Each of the
    ``shuffles`` passes starts from the given weights; later passes stop where the first one diverged.
    ``progress``: a tqdm bar over the steps (hidden otherwise)."""
    started = time.perf_counter()
    saved = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}  # off the accelerator
    was_training = model.training
    factor = (max_lr / min_lr) ** (1 / max(steps - 1, 1))
    rates = [min_lr * factor**step for step in range(steps)]
    lengths = [len(f["input_ids"]) for f in features]
    passes: list[list[float]] = []
    diverged_at, samples, tokens = None, 0, 0
    bar = tqdm(total=steps * max(1, shuffles), desc="lr range test", disable=not progress, leave=False, unit="step")
    try:
        for shuffle in range(max(1, shuffles)):
            # Batches as training draws them (shuffled, length-grouped: little padding), as many passes as needed.
            sampler = LengthGroupedBatchSampler(lengths, batch_size, seed=seed + 1000 * shuffle)
            batches: list[list[int]] = []
            while len(batches) < steps:
                sampler.set_epoch(len(batches) + 1)
                batches.extend(sampler)
            limit = min(len(p) for p in passes) if passes else steps
            losses, diverged = _pass(
                model,
                adapter,
                features,
                make_optimizer(model),
                batches[:limit],
                rates[:limit],
                beta=beta,
                divergence=divergence,
                max_grad_norm=max_grad_norm,
                device=device,
                autocast=autocast,
                bar=bar,
            )
            samples += sum(len(b) for b in batches[: len(losses)])
            tokens += sum(lengths[i] for b in batches[: len(losses)] for i in b)
            model.load_state_dict(saved)
            if diverged:  # the diverging step says nothing about where to train
                diverged_at = min(diverged_at or math.inf, rates[len(losses) - 1])
                losses = losses[:-1]
            passes.append(losses)
    finally:
        bar.close()
        model.load_state_dict(saved)
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    n = min(len(p) for p in passes)
    mean = [float(np.mean([p[i] for p in passes])) for i in range(n)]
    smoothed = smooth(mean, beta)
    chosen, rule, span = choose_rate(rates[:n], smoothed, bounds)
    if len(passes) > 1:
        rule = f"{rule} of the mean curve of {len(passes)} shuffles"
    return LRSearch(
        learning_rates=[float(r) for r in rates[:n]],
        losses=mean,
        smoothed=[float(s) for s in smoothed],
        chosen=chosen,
        rule=rule,
        valley=span,
        diverged_at=diverged_at,
        batch_size=batch_size,
        samples=samples,
        tokens=tokens,
        seconds=round(time.perf_counter() - started, 3),
        bounds=bounds,
        shuffle_losses=passes,
    )


def _pass(
    model: torch.nn.Module,
    adapter: TaskAdapter,
    features: list[Feature],
    optimizer: Any,
    batches: list[list[int]],
    rates: list[float],
    *,
    beta: float,
    divergence: float,
    max_grad_norm: float | None,
    device: torch.device | str,
    autocast: Any,
    bar: Any,
) -> tuple[list[float], bool]:
    """One pass of the test: a step per batch at its rate, each one ticking ``bar``. (The losses, whether the
    last one diverged.)"""
    model.train()
    losses: list[float] = []
    for rate, indices in zip(rates, batches):
        for group in optimizer.param_groups:
            group["lr"] = rate
        batch = adapter.collate_indexed([dict(features[i], index=i) for i in indices])
        batch.pop("index")
        labels = batch.pop("labels").to(device)
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast():
            logits = adapter.forward(model, batch, labels)
        sample_losses, units = adapter.per_sample_loss(logits, labels)
        loss = sample_losses.sum() / units.sum().clamp_min(1e-8)
        loss.backward()
        if max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        bar.update()
        bar.set_postfix(lr=f"{rate:.2g}", loss=f"{losses[-1]:.3g}", refresh=False)
        smoothed = smooth(losses, beta)
        if not math.isfinite(losses[-1]) or (len(losses) > 5 and smoothed[-1] > divergence * min(smoothed)):
            return losses, True
    return losses, False


__all__ = ["LRSearch", "choose_rate", "range_test", "smooth", "valley"]
