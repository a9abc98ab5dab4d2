"""Frozen-encoder features of the training data, cached on disk by content.

``embed_examples``: one mean-pooled, L2-normalised vector per text; ``embed_words``: one contextual
vector per word (its first sub-token), for NER units. Both run the encoder once per distinct input
set and keep the result under ``$AUTOFT_CACHE`` (default ``~/.cache/autoft``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from autoft.data.loading import Example
from autoft.io import cache_root, save_array_atomic


def _cache_dir() -> Path:
    return cache_root() / "embeddings"


def example_text(example: Example) -> str:
    return " ".join(example.text) if isinstance(example.text, list) else example.text


def _cached(kind: str, model_name: str, max_length: int, inputs: list[Any]) -> Path:
    """The cache file of ``kind`` embeddings of ``inputs`` (keyed by their content)."""
    from autoft.modeling.load import resolve_model_name

    key = hashlib.sha256(json.dumps([kind, resolve_model_name(model_name), max_length, inputs]).encode()).hexdigest()
    return _cache_dir() / f"{key[:24]}.npy"


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
    texts = [example_text(e) for e in examples]
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
        save_array_atomic(path, out)
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
            save_array_atomic(path, flat)
    return [flat[offsets[i] : offsets[i + 1]] for i in range(len(words))]


__all__ = ["embed_examples", "embed_words", "example_text"]
