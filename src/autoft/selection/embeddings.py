"""Frozen-encoder features of the training data, cached on disk by content and by the encoder's weights.

``embed_examples``: one mean-pooled, L2-normalised vector per text, kept text by text in the encoder's
memory-mapped ``FeatureStore`` (``stored_rows`` streams any iterable of texts into it, a chunk at a time);
``embed_words``: one contextual vector per word (its first sub-token), for NER units, kept per input set. Both live
under ``$AUTOFT_CACHE`` (default ``~/.cache/autoft``), keyed by the SHA-256 of the encoder's files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable
from itertools import islice
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from tqdm.auto import tqdm

from autoft.data.loading import Example
from autoft.io import cache_root, save_array_atomic
from autoft.selection.feature_store import FeatureStore, text_digests

log = logging.getLogger(__name__)


def _cache_dir() -> Path:
    return cache_root() / "embeddings"


def example_text(example: Example) -> str:
    return " ".join(cast("list[str]", example.text)) if isinstance(example.text, list) else example.text


def _cached(kind: str, model_name: str, max_length: int, inputs: list[Any]) -> Path:
    """The cache file of ``kind`` embeddings of ``inputs`` (keyed by their content)."""
    from autoft.modeling.load import weights_digest

    key = hashlib.sha256(json.dumps([kind, weights_digest(model_name), max_length, inputs]).encode()).hexdigest()
    return _cache_dir() / f"{key[:24]}.npy"


class Encoder:
    """The frozen encoder and its tokenizer, loaded once: mean-pooled, L2-normalised text vectors in batches of
    similar length."""

    def __init__(self, model_name: str, *, max_length: int, batch_size: int = 64) -> None:
        from transformers import AutoModel

        from autoft.modeling.load import load_model, load_tokenizer

        self.tokenizer = load_tokenizer(model_name)
        self.model = load_model(model_name, AutoModel).eval()
        self.max_length, self.batch_size = max_length, batch_size

    @torch.inference_mode()
    def batches(self, inputs: list[Any], *, progress: bool = False):
        """Yield ``(rows, tokenized batch, last hidden state)`` over ``inputs`` (texts, or word lists), in batches of
        similar length."""
        split = bool(inputs) and isinstance(inputs[0], list)
        order = np.argsort([sum(map(len, x)) if split else len(x) for x in inputs], kind="stable")
        for start in tqdm(
            range(0, len(order), self.batch_size), desc="embed", disable=not progress, leave=False, unit="batch"
        ):
            rows = order[start : start + self.batch_size]
            batch = self.tokenizer(
                [inputs[i] for i in rows],
                truncation=True,
                max_length=self.max_length,
                padding=True,
                is_split_into_words=split,
                return_tensors="pt",
            )
            yield rows, batch, self.model(**batch).last_hidden_state

    def pooled(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        """[n, hidden] float32 mean-pooled, L2-normalised vectors of ``texts``."""
        out = None
        for rows, batch, hidden in self.batches(texts, progress=progress):
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)
            if out is None:
                out = np.zeros((len(texts), hidden.shape[-1]), dtype=np.float32)
            out[rows] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
        return np.zeros((0, 0), dtype=np.float32) if out is None else out


STREAM_CHUNK = 8192
"""Texts read, encoded and stored at a time by ``stored_rows``: memory stays flat however long the input."""


def stored_rows(
    model_name: str,
    texts: Iterable[str],
    *,
    max_length: int,
    batch_size: int = 64,
    progress: bool = True,
    total: int | None = None,
) -> tuple[FeatureStore, np.ndarray]:
    """The feature store of this encoder and, for each text of ``texts`` (any iterable: a file is read as it is
    encoded), its row there. Texts the store has are not encoded again; the encoder is loaded only if some are
    new."""
    started = time.perf_counter()
    store = FeatureStore.for_encoder(model_name, "sentence", max_length)
    encoder: Encoder | None = None
    rows: list[np.ndarray] = []
    encoded = 0
    bar = tqdm(total=total, desc="features", disable=not progress, leave=False, unit="text")
    iterator = iter(texts)
    while chunk := list(islice(iterator, STREAM_CHUNK)):
        digests = text_digests(chunk)
        found = store.lookup(digests)
        missing = np.flatnonzero(found < 0)
        if len(missing):
            encoder = encoder or Encoder(model_name, max_length=max_length, batch_size=batch_size)
            vectors = encoder.pooled([chunk[i] for i in missing])
            found[missing] = store.append(digests[missing], vectors)
            encoded += len(missing)
        rows.append(found)
        bar.update(len(chunk))
    bar.close()
    count, seconds = sum(map(len, rows)), time.perf_counter() - started
    log.info(
        "features of %d texts in %.1f s (%.0f texts/s): %d encoded, the rest read from %s",
        count,
        seconds,
        count / max(seconds, 1e-9),
        encoded,
        store.folder,
    )
    return store, np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)


def embed_examples(
    model_name: str,
    examples: list[Example],
    *,
    max_length: int,
    batch_size: int = 64,
    progress: bool = True,
    cache: bool = True,
) -> np.ndarray:
    """[N, hidden] mean-pooled, L2-normalised embeddings of the frozen encoder; with ``cache``, kept in (and read
    from) the encoder's feature store, text by text."""
    texts = [example_text(e) for e in examples]
    if not cache:
        return Encoder(model_name, max_length=max_length, batch_size=batch_size).pooled(texts, progress=progress)
    store, rows = stored_rows(
        model_name, texts, max_length=max_length, batch_size=batch_size, progress=progress, total=len(texts)
    )
    return store.gather(rows) if len(rows) else np.zeros((0, 0), dtype=np.float32)


def embed_words(
    model_name: str,
    examples: list[Example],
    *,
    max_length: int,
    batch_size: int = 64,
    progress: bool = True,
    cache: bool = True,
) -> list[np.ndarray]:
    """Per example, [n_words, hidden] contextual embeddings of each word (its first sub-token) from the
    frozen encoder, L2-normalised; rows of words cut off by ``max_length`` are NaN. Cached by content."""
    words = [list(e.text) if isinstance(e.text, list) else e.text.split() for e in examples]
    path = _cached("words", model_name, max_length, words)
    offsets = np.cumsum([0] + [len(w) for w in words])
    if cache and path.exists():
        flat = np.load(path)
    else:
        flat = None
        encoder = Encoder(model_name, max_length=max_length, batch_size=batch_size)
        for rows, batch, hidden in encoder.batches(words, progress=progress):
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
            save_array_atomic(path, flat)
    return [flat[offsets[i] : offsets[i + 1]] for i in range(len(words))]


__all__ = ["Encoder", "embed_examples", "embed_words", "example_text", "stored_rows"]
