"""The learning-rate range test (Smith 2017; fastai's ``lr_find``) behind ``learning_rate: auto``.

Two dozen optimisation steps on shuffled, length-grouped batches of the training data, the learning rate growing
geometrically from ``min_lr`` to ``max_lr``; the smoothed training loss is recorded at each step and
the test stops once it diverges. The model's weights are restored afterwards, so the search leaves
no trace but its result. The rate chosen is at the bottom of the loss curve's steepest stretch
("valley": the longest run of falling loss, two thirds of the way down it, as in fastai), kept within
``bounds``: fast enough to learn in the planned steps, slow enough not to forget the pretraining.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from autoft.tasks.base import Feature, TaskAdapter
from autoft.training.batching import LengthGroupedBatchSampler


@dataclass
class LRSearch:
    """One range test: the rates tried, the loss curve, and the rate chosen (with the rule that chose it)."""

    learning_rates: list[float]
    losses: list[float]
    smoothed: list[float]
    chosen: float
    rule: str
    valley: tuple[float, float] | None = None
    diverged_at: float | None = None
    batch_size: int = 0
    samples: int = 0
    seconds: float = 0.0
    bounds: tuple[float, float] = (0.0, math.inf)
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


def choose_rate(rates: list[float], smoothed: list[float], bounds: tuple[float, float]) -> tuple[float, str, tuple]:
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
    min_lr: float = 1e-5,
    max_lr: float = 5e-3,
    bounds: tuple[float, float] = (1e-5, 5e-4),
    seed: int = 0,
    beta: float = 0.8,
    divergence: float = 3.0,
    max_grad_norm: float | None = 1.0,
    device: torch.device | str = "cpu",
    autocast: Any = contextlib.nullcontext,
) -> LRSearch:
    """Run the range test on ``features`` and return its curve and chosen rate; ``model`` is unchanged after.

    ``make_optimizer(model)`` builds a fresh optimiser (the loop's AdamW groups); its rate is set per step.
    ``autocast()`` is the mixed-precision context of the forward pass (the accelerator's)."""
    started = time.perf_counter()
    # Batches as training draws them (shuffled, length-grouped: little padding), over as many passes as needed.
    sampler = LengthGroupedBatchSampler([len(f["input_ids"]) for f in features], batch_size, seed=seed)
    batches: list[list[int]] = []
    while len(batches) < steps:
        sampler.set_epoch(len(batches) + 1)
        batches.extend(sampler)
    saved = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}  # off the accelerator
    was_training = model.training
    optimizer = make_optimizer(model)
    factor = (max_lr / min_lr) ** (1 / max(steps - 1, 1))
    rates, losses, smoothed = [], [], []
    diverged_at = None
    model.train()
    try:
        for step in range(steps):
            rate = min_lr * factor**step
            for group in optimizer.param_groups:
                group["lr"] = rate
            chunk = [dict(features[i], index=i) for i in batches[step]]
            batch = adapter.collate_indexed(chunk)
            batch.pop("index")
            labels = batch.pop("labels").to(device)
            batch = {k: v.to(device) for k, v in batch.items()}
            with autocast():
                logits = model(**batch).logits
            sample_losses, units = adapter.per_sample_loss(logits, labels)
            loss = sample_losses.sum() / units.sum().clamp_min(1e-8)
            loss.backward()
            if max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            value = float(loss.detach())
            rates.append(rate)
            losses.append(value)
            smoothed = smooth(losses, beta)
            if not math.isfinite(value) or (step >= 5 and smoothed[-1] > divergence * min(smoothed)):
                diverged_at = rate
                break
    finally:
        model.load_state_dict(saved)
        optimizer.zero_grad(set_to_none=True)
        model.train(was_training)
    samples = sum(len(b) for b in batches[: len(losses)])
    if diverged_at is not None:  # the diverging tail says nothing about where to train
        rates, losses, smoothed = rates[:-1], losses[:-1], smoothed[:-1]
    chosen, rule, span = choose_rate(rates, smoothed, bounds)
    return LRSearch(
        learning_rates=[float(r) for r in rates], losses=losses, smoothed=[float(s) for s in smoothed],
        chosen=chosen, rule=rule, valley=span, diverged_at=diverged_at, batch_size=batch_size,
        samples=samples, seconds=round(time.perf_counter() - started, 3), bounds=bounds,
    )


__all__ = ["LRSearch", "choose_rate", "range_test", "smooth", "valley"]
