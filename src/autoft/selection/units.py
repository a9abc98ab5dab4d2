"""What a policy values: one unit per sample (classification) or per given entity span (NER)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np

from autoft.config import AUTO, ONE_LABEL_TASKS, Config
from autoft.data.loading import Example
from autoft.data.splits import Splits
from autoft.errors import ConfigError
from autoft.selection.embeddings import embed_examples, embed_words


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

    def per_sample(self, unit_values: np.ndarray, reduce: np.ufunc, empty: float) -> np.ndarray:
        """[N] ``reduce`` (``np.fmin`` / ``np.fmax``) of each sample's unit values; ``empty`` for a sample
        without units."""
        out = np.full(self.n_samples, np.nan)
        reduce.at(out, self.owner, np.asarray(unit_values, dtype=np.float64))
        return np.where(np.isnan(out), empty, out)

    def sample_any(self, unit_weights: np.ndarray) -> np.ndarray:
        """[N] the highest weight among each sample's units (0 for a sample without units)."""
        return self.per_sample(unit_weights, np.fmax, 0.0)

    def unit_mask(self, sample_mask: np.ndarray) -> np.ndarray:
        """[U] a unit is selected when its sample is."""
        return np.asarray(sample_mask, dtype=bool)[self.owner]


def feature_max_length(config: Config) -> int:
    """The tokens per input the model trains on: the config's, or its task's default."""
    from autoft.tasks.registry import get_adapter_class

    length = config.training.max_length
    return get_adapter_class(config.task).default_max_length if length == AUTO else length


def _classification_units(config: Config, splits: Splits, sources: np.ndarray, progress: bool) -> Units:
    index = {label: i for i, label in enumerate(splits.labels)}
    embeddings = embed_examples(
        config.model, splits.train + splits.validation, max_length=feature_max_length(config), progress=progress
    )  # one encoder pass
    n = len(splits.train)
    return Units(
        embeddings[:n],
        np.array([index[cast(str, e.label)] for e in splits.train], dtype=np.int64),
        embeddings[n:],
        np.array([index[cast(str, e.label)] for e in splits.validation], dtype=np.int64),
        list(splits.labels),
        np.arange(n),
        sources,
    )


def entity_spans(example: Example, vectors: np.ndarray, types: list[str]):
    """Yield ``(mean word vector, type id, first word, last word)`` for each entity of ``example`` whose type
    is one of ``types``; ``vectors`` are its words' (``embed_words``). Words cut off by max_length carry no
    evidence (NaN rows), and a span with none left is skipped."""
    from autoft.tasks.ner import bio_spans

    for kind, first, last in bio_spans(cast("list[str]", example.label)):
        words = vectors[first : last + 1]
        words = words[~np.isnan(words).any(axis=1)]
        if len(words) and kind in types:
            yield words.mean(axis=0), types.index(kind), first, last


def _entity_units(config: Config, splits: Splits, sources: np.ndarray, progress: bool) -> Units:
    types = sorted({label.partition("-")[2] for label in splits.labels if label[:2] in ("B-", "I-")})
    if len(types) < 2:
        raise ConfigError(f"selection.policy: valuing NER sentences needs >= 2 entity types, found {types}")
    vectors = embed_words(
        config.model, splits.train + splits.validation, max_length=feature_max_length(config), progress=progress
    )
    spans: list[list[tuple[np.ndarray, int, int, str, tuple[int, int]]]] = [[], []]  # train, validation
    for part, (offset, examples) in enumerate(((0, splits.train), (len(splits.train), splits.validation))):
        for i, example in enumerate(examples):
            for vector, kind, first, last in entity_spans(example, vectors[offset + i], types):
                words = cast("list[str]", example.text)[first : last + 1]
                spans[part].append((vector, kind, i, " ".join(words), (first, last)))
    if not spans[0] or not spans[1]:
        raise ConfigError("selection.policy: no entity spans to value in the training or validation data")
    train, val = spans
    return Units(
        np.stack([s[0] for s in train]),
        np.array([s[1] for s in train], dtype=np.int64),
        np.stack([s[0] for s in val]),
        np.array([s[1] for s in val], dtype=np.int64),
        types,
        np.array([s[2] for s in train], dtype=np.int64),
        sources,
        [s[3] for s in train],
        [s[4] for s in train],
    )


def build_units(config: Config, splits: Splits, sources: np.ndarray, progress: bool) -> Units:
    """The units of ``config.task`` over ``splits`` (train and validation), embedded by the frozen encoder."""
    if config.task in ONE_LABEL_TASKS:
        return _classification_units(config, splits, sources, progress)
    if config.task == "token-classification":
        return _entity_units(config, splits, sources, progress)
    raise ConfigError(f"selection.policy: {config.selection.policy!r} is not available for {config.task}; use none")


__all__ = ["Units", "build_units", "entity_spans"]
