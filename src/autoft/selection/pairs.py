"""Valuing prompt–response pairs (``generation``, ``seq2seq``): which responses do not belong to their prompts.

A response that answers its prompt is likelier under the base model given that prompt than without it; a response
that came from an unrelated prompt is not. Per training pair, the base model (before fine-tuning, frozen) gives the
mean token loss of the response after its prompt (``conditional``) and after an empty prompt (``unconditional``);
their difference, the **prompt gain** in nats per token (a pointwise mutual information between prompt and
response), is what the valuation reads, next to the conditional loss (what ranking by base-model loss alone uses)
and the response's length.

The share of mismatched pairs is estimated, never told. The clean validation pairs show what the gains of matched
pairs look like; the same validation prompts with their responses rotated (each prompt given the next one's
response) show what mismatched pairs look like. The training gains are a mixture of the two: EM on the mixing share,
with both densities fixed (Gaussian kernel estimates of the two reference sets), gives the share and each pair's
posterior probability of being mismatched.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autoft.config import Config
from autoft.data.loading import Example
from autoft.data.splits import Splits
from autoft.errors import ConfigError
from autoft.io import cache_root, save_array_atomic
from autoft.modeling.load import load_model, load_tokenizer
from autoft.selection.valuation import resolve_drop_fraction
from autoft.tasks.base import TaskAdapter
from autoft.tasks.registry import make_adapter

log = logging.getLogger(__name__)

MIN_REFERENCE = 8
"""Validation pairs needed to describe matched and mismatched gains."""


@dataclass
class PairValuation:
    """Per training pair: the base model's losses, the posterior of a mismatched response, and what is left out."""

    conditional: np.ndarray  # [N] mean token loss of the response after its prompt
    unconditional: np.ndarray  # [N] ... after an empty prompt
    tokens: np.ndarray  # [N] response tokens scored
    mismatch_probability: np.ndarray  # [N]
    rate: float  # estimated share of mismatched pairs
    drop_fraction: float
    how: str
    reference: dict[str, float]  # mean gains of the validation pairs, matched and rotated

    @property
    def gain(self) -> np.ndarray:
        return self.unconditional - self.conditional

    @property
    def values(self) -> np.ndarray:
        """[N] higher is better: the posterior of a matched response."""
        return 1.0 - self.mismatch_probability

    def summary(self) -> dict[str, Any]:
        """What ``noise.json`` and the decisions log say of the estimate: the share, what is left out, and how."""
        return {
            "units": "prompt-response pairs",
            "rate": self.rate,
            "drop_fraction": self.drop_fraction,
            "how": self.how,
            **self.reference,
        }

    def flagged(self) -> np.ndarray:
        """[N] bool: the ``drop_fraction`` of pairs most likely mismatched."""
        flagged = np.zeros(len(self.values), dtype=bool)
        flagged[np.argsort(self.values, kind="stable")[: round(self.drop_fraction * len(self.values))]] = True
        return flagged


@torch.inference_mode()
def response_losses(
    model: Any, adapter: TaskAdapter, examples: list[Example], *, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """(mean token loss of each example's first reference response, its number of tokens) under ``model``."""
    model.eval()
    features = adapter.encode(examples)
    losses, tokens = np.zeros(len(examples)), np.zeros(len(examples))
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    device = next(model.parameters()).device
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = {k: v.to(device) for k, v in adapter.collate([features[i] for i in rows]).items()}
        labels = batch.pop("labels")
        total, units = adapter.per_sample_loss(adapter.forward(model, batch, labels), labels)
        losses[rows] = (total / units.clamp_min(1)).cpu().numpy()
        tokens[rows] = units.cpu().numpy()
    return losses, tokens


def _without_prompt(example: Example) -> Example:
    empty: Any = [{"role": "user", "content": ""}] if isinstance(example.text, list) else ""
    return Example(empty, example.label, example.origin, example.source)


def mixture_share(
    gains: np.ndarray, matched: np.ndarray, mismatched: np.ndarray, *, iterations: int = 500
) -> tuple[float, np.ndarray]:
    """(share of ``gains`` drawn from the ``mismatched`` reference rather than the ``matched`` one, each gain's
    posterior of being mismatched): EM on the mixing share, the two densities fixed as Gaussian kernel estimates."""
    from scipy.stats import gaussian_kde

    floor = 1e-12
    f_matched = np.maximum(gaussian_kde(matched)(gains), floor)
    f_mismatched = np.maximum(gaussian_kde(mismatched)(gains), floor)
    share = 0.5
    for _ in range(iterations):
        posterior = share * f_mismatched / (share * f_mismatched + (1 - share) * f_matched)
        updated = float(posterior.mean())
        if abs(updated - share) < 1e-7:
            break
        share = updated
    posterior = share * f_mismatched / (share * f_mismatched + (1 - share) * f_matched)
    return share, posterior


def _cache_path(config: Config, splits: Splits) -> Path:
    """Where the base model's losses on these pairs are kept: keyed by the model's files (``weights_digest``, as the
    feature store is), the prompt settings and every pair, so valuing the same data again reads them back."""
    from autoft.modeling.load import weights_digest

    pairs = [[e.text, e.label] for e in [*splits.train, *splits.validation]]
    key = json.dumps(
        [
            weights_digest(config.model),
            config.training.max_length,
            config.generation.model_dump(mode="json"),
            len(splits.train),
            pairs,
        ],
        default=str,
    )
    return cache_root() / "pairs" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"


def value_pairs(config: Config, splits: Splits, *, batch_size: int | None = None) -> PairValuation:
    """The base model's losses on every training pair, the share of mismatched pairs and each one's posterior."""
    if len(splits.validation) < MIN_REFERENCE:
        raise ConfigError(
            f"valuing prompt-response pairs needs >= {MIN_REFERENCE} validation pairs, got {len(splits.validation)}"
        )
    validation = splits.validation
    rotated = [Example(e.text, validation[(i + 1) % len(validation)].label) for i, e in enumerate(validation)]
    path = _cache_path(config, splits)
    if path.exists():
        cached = np.load(path)
        log.info("base-model losses of the pairs from the cache (%s)", path)
    else:
        tokenizer = load_tokenizer(config.model)
        adapter = make_adapter(config, [], tokenizer)
        model = adapter.prepare_model(load_model(config.model, adapter.auto_model_class()))
        size = batch_size or adapter.cpu_batch_size

        def losses(examples: list[Example]) -> np.ndarray:
            return response_losses(model, adapter, examples, batch_size=size)[0]

        train_loss, tokens = response_losses(model, adapter, splits.train, batch_size=size)
        cached = {
            "conditional": train_loss,
            "tokens": tokens,
            "unconditional": losses([_without_prompt(e) for e in splits.train]),
            "val_conditional": losses(validation),
            "val_unconditional": losses([_without_prompt(e) for e in validation]),
            "rotated_conditional": losses(rotated),
        }
        save_array_atomic(path, cached)
    conditional, unconditional, tokens = cached["conditional"], cached["unconditional"], cached["tokens"]
    val_conditional, val_unconditional = cached["val_conditional"], cached["val_unconditional"]
    rotated_conditional = cached["rotated_conditional"]
    matched = val_unconditional - val_conditional
    mismatched = np.roll(val_unconditional, -1) - rotated_conditional  # the unconditional loss is the response's own
    rate, posterior = mixture_share(unconditional - conditional, matched, mismatched)
    drop, how = resolve_drop_fraction(
        config.selection.drop_fraction, rate, "the estimated share of mismatched pairs", len(conditional)
    )
    log.info(
        "prompt gain (nats per token): validation pairs %.3f, rotated %.3f, training %.3f; estimated "
        "mismatched share %.1f%%; %.1f%% would be left out (%s)",
        matched.mean(),
        mismatched.mean(),
        float(np.mean(unconditional - conditional)),
        100 * rate,
        100 * drop,
        how,
    )
    return PairValuation(
        conditional,
        unconditional,
        tokens,
        posterior,
        rate,
        drop,
        how,
        {"matched_gain": float(matched.mean()), "mismatched_gain": float(mismatched.mean())},
    )


__all__ = ["PairValuation", "mixture_share", "response_losses", "value_pairs"]
