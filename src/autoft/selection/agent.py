"""The agent in the training run: offline valuation on cached features, then the online callback.

``value_samples`` embeds every training and validation sample once with the frozen encoder (mean-
pooled last hidden state, cached on disk), estimates the label noise (``autoft.selection.noise``),
builds each sample's state (probe probabilities, label disagreement, source), and fits the configured
policy: every sample gets a value before the first fine-tuning step, so the first epoch already trains
on cleaner data. ``AgentCallback`` then plugs the policy into the training loop as a ``TrainerCallback``:
each epoch it hands out per-sample weights, re-scores samples from the model's own training dynamics
(area under the margin, taken from the forward passes the loop already makes), and updates the policy
from the reward it measures on its own part of the validation set. Every step is logged for
``decisions.jsonl``; the final values go to ``data_values.csv``, the noise estimate to ``noise.json``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import rankdata
from tqdm.auto import tqdm

from autoft.config import AUTO, Config, SelectionConfig
from autoft.data.loading import Example
from autoft.data.splits import Splits
from autoft.errors import ConfigError
from autoft.io import to_builtin, write_text_atomic
from autoft.selection.noise import NoiseEstimate, estimate_noise
from autoft.selection.policies import Policy, get_policy
from autoft.selection.rewards import load_reward
from autoft.selection.state import (
    TrainingDynamics,
    cross_fitted_probabilities,
    neighbour_agreement,
    sequence_margins,
    state_features,
    validation_probe_probabilities,
)
from autoft.training.callbacks import StepOutput, TrainerCallback, TrainState

log = logging.getLogger(__name__)

DATA_VALUE_COLUMNS = ["row_id", "origin", "source", "text", "given_label", "suggested_label",
                      "suggested_confidence", "label_noise_probability", "model_label", "value", "keep_probability",
                      "flagged"]

MAX_AUTO_DROP = 0.5
"""``drop_fraction: auto`` never leaves out more than this share, whatever the estimated noise rate."""


# --- frozen-encoder embeddings -------------------------------------------------------------------
def _cache_dir() -> Path:
    return Path(os.environ.get("AUTOFT_CACHE", Path.home() / ".cache" / "autoft")) / "embeddings"


def _text(example: Example) -> str:
    return " ".join(example.text) if isinstance(example.text, list) else example.text


def _cached(kind: str, model_name: str, max_length: int, inputs: list[Any]) -> Path:
    """The cache file of ``kind`` embeddings of ``inputs`` (keyed by their content)."""
    from autoft.modeling.load import resolve_model_name

    key = hashlib.sha256(json.dumps([kind, resolve_model_name(model_name), max_length, inputs]).encode()).hexdigest()
    return _cache_dir() / f"{key[:24]}.npy"


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, suffix=".npy")
    os.close(handle)
    np.save(temp, array)
    os.replace(temp, path)


@torch.inference_mode()
def _encoded_batches(model_name: str, inputs: list[Any], *, max_length: int, batch_size: int, progress: bool):
    """Yield ``(rows, tokenized batch, last hidden state)`` over ``inputs`` (texts, or word lists), in
    batches of similar length, from the frozen encoder."""
    from transformers import AutoModel

    from autoft.modeling.load import load_model, load_tokenizer

    tokenizer = load_tokenizer(model_name)
    encoder = load_model(model_name, AutoModel).eval()
    split = bool(inputs) and isinstance(inputs[0], list)
    order = np.argsort([sum(map(len, x)) if split else len(x) for x in inputs], kind="stable")
    for start in tqdm(range(0, len(order), batch_size), desc="embed", disable=not progress, leave=False,
                      unit="batch"):
        rows = order[start : start + batch_size]
        batch = tokenizer([inputs[i] for i in rows], truncation=True, max_length=max_length, padding=True,
                          is_split_into_words=split, return_tensors="pt")
        yield rows, batch, encoder(**batch).last_hidden_state


def embed_examples(model_name: str, examples: list[Example], *, max_length: int, batch_size: int = 64,
                   progress: bool = True, cache: bool = True) -> np.ndarray:
    """[N, hidden] mean-pooled, L2-normalised embeddings of the frozen encoder, cached by content."""
    texts = [_text(e) for e in examples]
    path = _cached("sentence", model_name, max_length, texts)
    if cache and path.exists():
        return np.load(path)
    out = None
    for rows, batch, hidden in _encoded_batches(model_name, texts, max_length=max_length, batch_size=batch_size,
                                                progress=progress):
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)
        if out is None:
            out = np.zeros((len(texts), hidden.shape[-1]), dtype=np.float32)
        out[rows] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    out = np.zeros((0, 0), dtype=np.float32) if out is None else out
    if cache:
        _save(path, out)
    return out


def embed_words(model_name: str, examples: list[Example], *, max_length: int, batch_size: int = 64,
                progress: bool = True, cache: bool = True) -> list[np.ndarray]:
    """Per example, [n_words, hidden] contextual embeddings of each word (its first sub-token) from the
    frozen encoder, L2-normalised; rows of words cut off by ``max_length`` are NaN. Cached by content."""
    words = [list(e.text) if isinstance(e.text, list) else e.text.split() for e in examples]
    path = _cached("words", model_name, max_length, words)
    offsets = np.cumsum([0] + [len(w) for w in words])
    if cache and path.exists():
        flat = np.load(path)
    else:
        flat = None
        for rows, batch, hidden in _encoded_batches(model_name, words, max_length=max_length,
                                                    batch_size=batch_size, progress=progress):
            hidden = torch.nn.functional.normalize(hidden, dim=-1).numpy()
            if flat is None:
                flat = np.full((offsets[-1], hidden.shape[-1]), np.nan, dtype=np.float32)
            for j, i in enumerate(rows):
                previous = None
                for position, word in enumerate(batch.word_ids(j)):
                    if word is not None and word != previous:
                        flat[offsets[i] + word] = hidden[j, position]
                    previous = word
        flat = np.zeros((0, 0), dtype=np.float32) if flat is None else flat
        if cache:
            _save(path, flat)
    return [flat[offsets[i] : offsets[i + 1]] for i in range(len(words))]


# --- units: what the policy values ---------------------------------------------------------------
@dataclass
class Units:
    """What a policy values, and which training sample each unit belongs to.

    Classification: one unit per sample (its text, its class). NER: one unit per given entity span
    (its words' contextual embeddings, its entity type), so a policy ranks entities and a sentence
    is worth its least trusted entity: the sentence with a mislabelled entity is the one left out.
    """

    x: np.ndarray  # [U, D] inputs of the probes and the inner learner
    labels: np.ndarray  # [U] class ids (entity types for NER)
    val_x: np.ndarray  # [V, D]
    val_labels: np.ndarray  # [V]
    class_names: list[str]
    owner: np.ndarray  # [U] index of the training sample each unit belongs to
    sources: np.ndarray  # [N] source id of each training sample
    names: list[str] | None = None  # [U] what a unit is, for reports (NER: the entity's words)
    spans: list[tuple[int, int]] | None = None  # [U] NER: first and last word of each entity

    @property
    def n_samples(self) -> int:
        return len(self.sources)

    def sample_values(self, unit_values: np.ndarray) -> np.ndarray:
        """[N] each sample's lowest unit value; a sample without units (a sentence without entities)
        gets the highest unit value of its source, so it ranks with its source but is never suspect."""
        unit_values = np.asarray(unit_values, dtype=np.float64)
        out = np.full(self.n_samples, np.nan)
        np.fmin.at(out, self.owner, unit_values)
        missing = np.isnan(out)
        if missing.any():
            unit_sources = self.sources[self.owner]
            best = unit_values.max() if len(unit_values) else 1.0
            for source in np.unique(self.sources[missing]):
                mine = unit_sources == source
                out[missing & (self.sources == source)] = unit_values[mine].max() if mine.any() else best
        return out

    def sample_any(self, unit_weights: np.ndarray) -> np.ndarray:
        """[N] the highest weight among each sample's units (0 for a sample without units)."""
        out = np.zeros(self.n_samples)
        np.maximum.at(out, self.owner, np.asarray(unit_weights, dtype=np.float64))
        return out

    def unit_mask(self, sample_mask: np.ndarray) -> np.ndarray:
        """[U] a unit is selected when its sample is."""
        return np.asarray(sample_mask, dtype=bool)[self.owner]


def _classification_units(config: Config, splits: Splits, sources: np.ndarray, progress: bool) -> Units:
    index = {label: i for i, label in enumerate(splits.labels)}
    embeddings = embed_examples(config.model, splits.train + splits.validation,
                                max_length=config.training.max_length, progress=progress)  # one encoder pass
    n = len(splits.train)
    return Units(embeddings[:n], np.array([index[e.label] for e in splits.train], dtype=np.int64), embeddings[n:],
                 np.array([index[e.label] for e in splits.validation], dtype=np.int64), list(splits.labels),
                 np.arange(n), sources)


def _entity_units(config: Config, splits: Splits, sources: np.ndarray, progress: bool) -> Units:
    from autoft.tasks.ner import bio_spans

    types = sorted({label.partition("-")[2] for label in splits.labels if label[:2] in ("B-", "I-")})
    if len(types) < 2:
        raise ConfigError(f"selection.policy: valuing NER sentences needs >= 2 entity types, found {types}")
    vectors = embed_words(config.model, splits.train + splits.validation, max_length=config.training.max_length,
                          progress=progress)
    spans: list[list[tuple[np.ndarray, int, int, str]]] = [[], []]  # train, validation
    for part, (offset, examples) in enumerate(((0, splits.train), (len(splits.train), splits.validation))):
        for i, example in enumerate(examples):
            for kind, first, last in bio_spans(example.label):
                words = vectors[offset + i][first : last + 1]
                words = words[~np.isnan(words).any(axis=1)]
                if len(words) and kind in types:  # spans cut off by max_length carry no evidence
                    spans[part].append((words.mean(axis=0), types.index(kind), i,
                                        " ".join(example.text[first : last + 1]), (first, last)))
    if not spans[0] or not spans[1]:
        raise ConfigError("selection.policy: no entity spans to value in the training or validation data")
    train, val = spans
    return Units(np.stack([s[0] for s in train]), np.array([s[1] for s in train], dtype=np.int64),
                 np.stack([s[0] for s in val]), np.array([s[1] for s in val], dtype=np.int64), types,
                 np.array([s[2] for s in train], dtype=np.int64), sources, [s[3] for s in train],
                 [s[4] for s in train])


# --- offline valuation ---------------------------------------------------------------------------
@dataclass
class Valuation:
    """What the offline phase knows: the fitted policy, its units, and what each sample is said to be."""

    policy: Policy
    units: Units
    sample_labels: np.ndarray  # [N] class ids for per-class balancing (NER: all 0)
    source_names: list[str]
    given: list[str]  # [N] the given label (NER: the given entities) as text
    suggested: list[str]  # [N] the most likely true label (NER: entities) given the evidence and the given one
    suggested_confidence: np.ndarray  # [N] its posterior probability (NER: of the least sure entity)
    noise_probability: np.ndarray  # [N] posterior that the given label is wrong (NER: of the most suspect entity)
    selection: SelectionConfig  # with drop_fraction resolved to a number
    noise: NoiseEstimate | None = None
    decisions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def sources(self) -> np.ndarray:
        return self.units.sources

    def sample_values(self) -> np.ndarray:
        """[N] the policy's current value of each training sample."""
        return self.units.sample_values(self.policy.values_)

    def flagged(self, values: np.ndarray, masked_units: np.ndarray | None = None) -> np.ndarray:
        """[N] bool: the samples the agent leaves out at these sample ``values`` — in ``mask`` mode the
        samples holding a masked unit (``masked_units``, default the lowest-valued ones)."""
        if self.selection.mode == "mask":
            masked = self.lowest_units() if masked_units is None else masked_units
            return self.units.sample_any(masked.astype(np.float64)) > 0
        return ~kept_mask(values, self.sample_labels, self.selection.drop_fraction, self.selection.balance)

    def lowest_units(self) -> np.ndarray:
        """[U] bool: the lowest-valued ``drop_fraction`` of the units (``mask`` mode leaves them out)."""
        return ~kept_mask(self.policy.values_, None, self.selection.drop_fraction)


def _describe(units: Units, task: str, labels: np.ndarray) -> list[str]:
    """[N] text of each sample's labels in ``labels`` (unit class ids): the class, or 'words/TYPE; ...'."""
    if task == "classification":
        return [units.class_names[int(c)] for c in labels]
    parts: list[list[str]] = [[] for _ in range(units.n_samples)]
    for unit, (owner, c) in enumerate(zip(units.owner, labels)):
        parts[int(owner)].append(f"{units.names[unit]}/{units.class_names[int(c)]}")
    return ["; ".join(p) for p in parts]


def resolve_drop_fraction(setting: float | str, noise: NoiseEstimate) -> tuple[float, str]:
    """The share the agent leaves out: the configured number, or (``auto``) the estimated noise rate,
    at most ``MAX_AUTO_DROP``; and how it was chosen, for the log."""
    if setting != AUTO:
        return float(setting), f"set to {float(setting):.3g} in the config (estimated noise rate {noise.rate:.1%})"
    drop = round(min(noise.rate, MAX_AUTO_DROP), 4)
    capped = f", capped at {MAX_AUTO_DROP:.0%}" if noise.rate > MAX_AUTO_DROP else ""
    return drop, f"auto: the estimated noise rate {noise.rate:.1%}{capped}"


def _per_sample(units: Units, unit_values: np.ndarray, reduce, empty: float) -> np.ndarray:
    """[N] ``reduce`` (np.fmin / np.fmax) of each sample's unit values; ``empty`` for samples without units."""
    out = np.full(units.n_samples, np.nan)
    reduce.at(out, units.owner, np.asarray(unit_values, dtype=np.float64))
    return np.where(np.isnan(out), empty, out)


def value_samples(config: Config, splits: Splits, *, progress: bool = True) -> Valuation:
    """Fit ``config.selection.policy`` on cached features of ``splits`` (the offline phase), after
    estimating the label noise (``autoft.selection.noise``), which sets ``drop_fraction: auto``."""
    selection = config.selection
    source_names = sorted({e.source for e in splits.train})
    sources = np.array([source_names.index(e.source) for e in splits.train], dtype=np.int64)
    if selection.mode == "mask" and config.task != "token-classification":
        raise ConfigError("selection.mode: 'mask' leaves suspect entities' tags out of the loss; it needs "
                          f"task: token-classification, not {config.task}")
    if config.task == "classification":
        units = _classification_units(config, splits, sources, progress)
    elif config.task == "token-classification":
        units = _entity_units(config, splits, sources, progress)
    else:
        raise ConfigError(f"selection.policy: {selection.policy!r} is not available for {config.task}; use none")
    n_classes, seed = len(units.class_names), config.training.seed
    numeric = 0.0 if selection.drop_fraction == AUTO else selection.drop_fraction
    options = {"seed": seed, "drop_fraction": numeric, **selection.options}
    try:
        policy = get_policy(selection.policy, **options)
    except TypeError as error:
        raise ConfigError(f"selection.options: {error}") from None
    if len(units.labels) < 2 or len(units.val_labels) < 1:
        raise ConfigError(f"selection.policy: valuing needs >= 2 training and >= 1 validation "
                          f"{'entities' if config.task == 'token-classification' else 'samples'}, got "
                          f"{len(units.labels)} and {len(units.val_labels)}")
    # The probes and the neighbours feed the noise estimate, the state and the policy: computed once, here.
    oof, val_oof = cross_fitted_probabilities(units.x, units.labels, units.val_x, n_classes=n_classes,
                                              folds=policy.probe_folds, seed=seed)
    probes = (oof, validation_probe_probabilities(units.x, units.val_x, units.val_labels, n_classes=n_classes))
    noise = estimate_noise(oof, units.labels, val_oof, units.val_labels, units.class_names, seed=seed)
    drop, how = resolve_drop_fraction(selection.drop_fraction, noise)
    policy.drop_fraction = drop
    selection = selection.model_copy(update={"drop_fraction": drop})
    what = "entity labels" if config.task == "token-classification" else "labels"
    log.info("estimated label noise: %.1f%% of %d %s (per class: %s); the agent leaves out %.1f%% (%s)",
             100 * noise.rate, len(units.labels), what,
             ", ".join(f"{k} {v:.0%}" for k, v in noise.per_class.items()), 100 * drop, how)
    agreement = neighbour_agreement(units.x, units.labels)
    unit_sources = sources[units.owner]
    state = state_features(embeddings=units.x, labels=units.labels, n_classes=n_classes, oof_probs=probes[0],
                           val_probs=probes[1], agreement=agreement,
                           sources=unit_sources if len(source_names) > 1 else None, n_sources=len(source_names),
                           seed=seed)
    buckets = unit_sources if selection.bucket_by == "source" else None
    policy.fit(state, units.labels, None, units.val_labels, n_classes=n_classes, embeddings=units.x,
               val_embeddings=units.val_x, buckets=buckets, probes=probes, agreement=agreement)
    log.info("offline valuation with %s: %d units of %d samples valued", selection.policy, len(units.labels),
             units.n_samples)
    sample_labels = units.labels if config.task == "classification" else np.zeros(units.n_samples, dtype=np.int64)
    noise_record = {"phase": "offline", "event": "noise-estimate", "rate": noise.rate, "per_class": noise.per_class,
                    "drop_fraction": drop, "how": how}
    return Valuation(policy, units, sample_labels, source_names, _describe(units, config.task, units.labels),
                     _describe(units, config.task, noise.suggested),
                     _per_sample(units, noise.suggested_confidence, np.fmin, np.nan),
                     _per_sample(units, 1.0 - noise.correct, np.fmax, 0.0), selection, noise,
                     [noise_record, *({"phase": "offline", **d} for d in policy.decisions_)])


# --- the online callback ------------------------------------------------------------------------
def _ranks(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return rankdata(values) / len(values) if len(values) else values


def kept_mask(values: np.ndarray, labels: np.ndarray | None, drop_fraction: float, balance: str = "global"
              ) -> np.ndarray:
    """[N] bool: False for the lowest-valued ``drop_fraction`` of the samples — of each given class
    (``per-class``, so a hard minority class is not emptied; needs ``labels``) or of all samples (``global``)."""
    values = np.asarray(values, dtype=np.float64)
    keep = np.ones(len(values), dtype=bool)
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)] if balance == "per-class" else [
        np.arange(len(values))]
    for rows in groups:
        drop = round(drop_fraction * len(rows))
        keep[rows[np.argsort(values[rows], kind="stable")[:drop]]] = False
    return keep


class AgentCallback(TrainerCallback):
    """Turns a fitted policy into per-epoch sample weights and learns from its own validation reward.

    The agent learns from ``reward_examples`` only — its part of the validation set (``selection.
    reward_fraction``); the loop's validation data, which chooses early stopping and the best epoch, is
    never its reward. The reward is the gain of ``selection.reward`` between two evaluations: per epoch on
    the whole reward part or, with ``selection.update_every: N``, every N optimisation steps on a fixed,
    seeded mini-batch of ``selection.reward_batch`` of its samples (then the policy also re-weights the
    rest of the epoch after each update).
    """

    def __init__(self, valuation: Valuation, *, primary_metric: str, reward_examples: list[Example],
                 seed: int = 0) -> None:
        self.valuation = valuation
        self.selection = valuation.selection
        self.primary_metric = primary_metric
        self.reward_examples = reward_examples
        self.seed = seed
        n = valuation.units.n_samples
        self.dynamics = TrainingDynamics(n)
        self.model_margin = np.full(n, np.nan)
        self.last_prediction = np.full(n, -1, dtype=np.int64)
        self.values = valuation.sample_values()
        self.weights = np.ones(n)
        self.masked = np.zeros(len(valuation.units.owner), dtype=bool)
        self.decisions: list[dict[str, Any]] = list(valuation.decisions)
        self._previous: float | None = None
        self._action: int | None = None
        self._user_reward = load_reward(self.selection.reward) if ":" in self.selection.reward else None
        every = self.selection.update_every
        self.update_every = None if every == "epoch" else int(every)
        size = min(self.selection.reward_batch, len(reward_examples))
        self._rows = np.sort(np.random.default_rng(seed).choice(len(reward_examples), size, replace=False))
        self._features: list[Any] | None = None

    # values -> weights
    def _current_values(self) -> np.ndarray:
        """Policy values, re-scored from what fine-tuning has shown so far (``selection.rescore``).

        ``model``: the mean of the policy value's rank and the rank, within its given class, of the
        fine-tuned model's latest margin on every training sample, so wrongly dropped samples can come
        back. ``dynamics``: the mean of a seen sample's policy-value rank and its area-under-the-margin
        rank among the seen samples; samples left out (never seen, so without dynamics) keep their
        policy-value rank. A kept sample the model keeps contradicting sinks below the ones left out,
        and the best of those come back in its place."""
        values = _ranks(self.valuation.sample_values())
        if self.selection.rescore == "model":
            if np.isnan(self.model_margin).any():
                return values
            # Ranked within each given class: a class the young model hardly predicts yet (a rare one)
            # would otherwise sink whole and never be learned.
            model = np.empty_like(values)
            for c in np.unique(self.valuation.sample_labels):
                rows = self.valuation.sample_labels == c
                model[rows] = _ranks(self.model_margin[rows])
            return 0.5 * values + 0.5 * model
        aum = self.dynamics.aum
        seen = ~np.isnan(aum)
        if self.selection.rescore == "off" or not seen.any():
            return values
        values[seen] = 0.5 * values[seen] + 0.5 * rankdata(aum[seen]) / seen.sum()
        return values

    def _masked_words(self) -> dict[int, list[int]]:
        units, words = self.valuation.units, {}
        for unit in np.flatnonzero(self.masked):
            first, last = units.spans[unit]
            words.setdefault(int(units.owner[unit]), []).extend(range(first, last + 1))
        return words

    def _flagged(self) -> np.ndarray:
        """[N] bool: samples left out this epoch (``mask`` mode: samples with a masked entity)."""
        if self.selection.mode == "mask":
            return self.valuation.flagged(self.values, self.masked)
        return self.weights == 0

    def _weights(self, values: np.ndarray) -> np.ndarray:
        """Per-sample weights at these values: 0 for the samples left out (``mask`` mode: none; the
        lowest-valued entities are masked instead), the value's rank in ``weight`` mode; the bucket a
        bucket policy chose counts double."""
        if self.selection.mode == "mask":
            self.masked = self.valuation.lowest_units()
            weights = np.ones(len(values))
        else:
            keep = kept_mask(values, self.valuation.sample_labels, self.selection.drop_fraction,
                             self.selection.balance)
            weights = np.where(keep, np.clip(_ranks(values), 1e-3, 1.0), 0.0) if self.selection.mode == "weight" \
                else keep.astype(np.float64)
        if self._action is not None:
            weights = weights * (1.0 + self.valuation.units.sample_any(
                self.valuation.policy.bucket_weights(self._action)))
        return weights

    def _act(self) -> None:
        policy = self.valuation.policy
        self._action = int(policy.act()) if hasattr(policy, "act") else None

    # events
    def on_epoch_begin(self, state: TrainState) -> None:
        epoch = state.epoch
        self.values = self._current_values()
        self._action = None
        if epoch > 1 or self.update_every:
            self._act()  # (per-epoch rewards: the first epoch has no reward to act on yet)
        self.weights = self._weights(self.values)
        state.weights = self.weights
        if self.selection.mode == "mask":
            state.masked_words = self._masked_words()
        kept = ~self._flagged()
        per_source = {name: float(kept[self.valuation.sources == i].mean())
                      for i, name in enumerate(self.valuation.source_names)}
        self.decisions.append({
            "phase": "online", "epoch": epoch, "event": "select", "policy": self.selection.policy,
            "kept": int(kept.sum()), "dropped": int((~kept).sum()), "keep_rate_by_source": per_source,
            "mean_value_kept": float(self.values[kept].mean()) if kept.any() else None,
            "rescored": self.selection.rescore if (self.dynamics.count > 0).any() else None,
            "masked_entities": int(self.masked.sum()) if self.selection.mode == "mask" else None,
            "emphasised_bucket": self._action,
        })

    def on_step_end(self, state: TrainState, output: StepOutput) -> None:
        if output.logits.ndim == 3:  # token classification: a sentence's margin is its worst labelled token's
            margins = sequence_margins(output.logits.float().cpu().numpy(), output.labels.cpu().numpy())
            self.dynamics.update(output.indices, output.losses, margins)
        else:
            self.dynamics.update_from_logits(output.indices, output.losses, output.logits, output.labels)
            self.last_prediction[np.asarray(output.indices)] = output.logits.argmax(-1).cpu().numpy()
        if self.update_every and state.step % self.update_every == 0:
            # A mid-epoch reward on the agent's validation mini-batch; it re-weights the rest of the epoch.
            self._learn(self._score(state, self._rows), {"step": state.step})
            self._act()
            self.values = self._current_values()
            self.weights = self._weights(self.values)
            state.weights = self.weights

    def on_epoch_end(self, state: TrainState) -> None:
        if self.selection.rescore == "model":  # the fine-tuned model's margin on every training sample
            self.model_margin[:] = state.score(np.arange(len(self.model_margin)))
        rows = np.arange(len(self.reward_examples))
        score = self._score(state, rows)
        if self.update_every:  # the policy learns from the mini-batches; the epoch score is logged only
            self.decisions.append({"phase": "online", "epoch": state.epoch, "event": "validation",
                                   "validation": score})
            return
        self._learn(score, {"epoch": state.epoch})

    # rewards
    def _score(self, state: TrainState, rows: np.ndarray) -> float:
        """The reward metric of the current model on ``rows`` of the agent's validation part."""
        if self._features is None:
            self._features = state.encode(self.reward_examples)
        examples = [self.reward_examples[i] for i in rows]
        metrics, predictions = state.evaluate(examples, [self._features[i] for i in rows])
        name = self.selection.reward
        if self._user_reward is not None:
            return float(self._user_reward(predictions, [e.label for e in examples]))
        if name == "primary":
            return float(metrics[self.primary_metric])
        if name == "loss":
            return -float(metrics["loss"])
        if name in metrics and not isinstance(metrics[name], dict):
            return float(metrics[name])
        raise ConfigError(f"selection.reward: {name!r} is not a validation metric "
                          f"({', '.join(k for k, v in metrics.items() if not isinstance(v, dict))}, primary)")

    def _learn(self, score: float, where: dict[str, Any]) -> None:
        """Reward = the gain since the last evaluation of the same rows; the first one only sets the bar."""
        reward = 0.0 if self._previous is None else score - self._previous
        decision = {"phase": "online", **where, "event": "reward", "reward": reward, "validation": score}
        if self._previous is not None:
            selected = ~self.masked if self.selection.mode == "mask" else self.valuation.units.unit_mask(
                self.weights > 0)
            record = self.valuation.policy.update(reward, selected, action=self._action)
            decision["policy_update"] = record.get("action")
        self._previous = score
        self.decisions.append(decision)

    # outputs
    def data_values(self, examples: list[Example], label_names: list[str]) -> list[dict[str, Any]]:
        """One row per training sample, worst value first (columns ``DATA_VALUE_COLUMNS``)."""
        return data_value_rows(examples, label_names, self.valuation, self._current_values(),
                               self._flagged(), self.last_prediction)

    def write_artifacts(self, folder: Path, examples: list[Example], label_names: list[str]) -> None:
        write_decisions(folder / "decisions.jsonl", self.decisions)
        write_data_values(folder / "data_values.csv", self.data_values(examples, label_names))
        write_noise(folder / "noise.json", self.valuation)


def data_value_rows(examples: list[Example], label_names: list[str], valuation: Valuation, values: np.ndarray,
                    flagged: np.ndarray | None = None, predictions: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Rows for ``data_values.csv``: the suggested label is the most likely true one given the evidence
    and the given label (the noise estimate's posterior), with its probability; ``label_noise_probability``
    is the posterior that the given label is wrong; ``model_label`` the fine-tuned model's last prediction
    (classification, when there is one); flagged = left out by the agent."""
    values = np.asarray(values, dtype=np.float64)
    if flagged is None:
        flagged = valuation.flagged(values)
    keep_probability = _ranks(values)
    rows = []
    for i in np.argsort(values, kind="stable"):
        example = examples[i]
        confidence = valuation.suggested_confidence[i]
        model_label = label_names[int(predictions[i])] if predictions is not None and predictions[i] >= 0 else ""
        rows.append({
            "row_id": int(i), "origin": example.origin, "source": example.source, "text": _text(example),
            "given_label": valuation.given[i], "suggested_label": valuation.suggested[i],
            "suggested_confidence": "" if np.isnan(confidence) else round(float(confidence), 4),
            "label_noise_probability": round(float(valuation.noise_probability[i]), 4), "model_label": model_label,
            "value": round(float(values[i]), 6), "keep_probability": round(float(keep_probability[i]), 6),
            "flagged": bool(flagged[i]),
        })
    return rows


def write_data_values(path: Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=DATA_VALUE_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def write_decisions(path: Path, decisions: list[dict[str, Any]]) -> None:
    write_text_atomic(path, "".join(json.dumps(to_builtin(d), sort_keys=True) + "\n" for d in decisions))


def write_noise(path: Path, valuation: Valuation) -> None:
    """``noise.json``: the estimated noise rates and what the agent made of them."""
    if valuation.noise is None:
        return
    summary = {**valuation.noise.to_dict(valuation.units.class_names),
               "units": "entities" if valuation.units.names is not None else "samples",
               "drop_fraction": valuation.selection.drop_fraction}
    write_text_atomic(path, json.dumps(to_builtin(summary), indent=2) + "\n")
