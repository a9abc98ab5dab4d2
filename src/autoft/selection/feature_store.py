"""Encoder features on disk, one row per distinct text, memory-mapped and found by the text's digest.

A store belongs to one encoder (the SHA-256 of its files: ``modeling.load.weights_digest``), one kind of feature
and one ``max_length``; it lives under ``$AUTOFT_CACHE/features/``. ``vectors.f32`` holds the rows (float32, raw,
appended); ``index.npz`` maps each text's 64-bit BLAKE2b digest to its row, sorted for ``searchsorted``. Valuing
data again, or data that overlaps data valued before, encodes only the texts the store has not seen.

Appending writes the new rows first and the index last (atomically, under a file lock), so a crash leaves the
store as it was, with at most rows that no index entry points to (overwritten by the next append).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from filelock import FileLock

from autoft.io import cache_root, save_array_atomic

VECTORS, INDEX, LOCK = "vectors.f32", "index.npz", "lock"


def text_digests(texts: list[str]) -> np.ndarray:
    """[n] uint64: each text's 64-bit BLAKE2b digest (a collision among a million texts: about 3 in 10^8)."""
    return np.array(
        [
            int.from_bytes(hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")
            for t in texts
        ],
        dtype=np.uint64,
    )


class FeatureStore:
    """The vectors of one encoder's features of texts (see the module)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._load_index()

    @classmethod
    def for_encoder(cls, model_name: str, kind: str, max_length: int) -> FeatureStore:
        from autoft.modeling.load import weights_digest

        key = hashlib.sha256(json.dumps([kind, weights_digest(model_name), max_length]).encode()).hexdigest()
        return cls(cache_root() / "features" / key[:24])

    def _load_index(self) -> None:
        path = self.folder / INDEX
        if path.is_file():
            with np.load(path) as index:
                self.keys, self.rows, self.dim = index["keys"], index["rows"], int(index["dim"])
        else:
            self.keys, self.rows, self.dim = np.zeros(0, np.uint64), np.zeros(0, np.int64), 0

    @property
    def count(self) -> int:
        """Rows the index points to (the next append writes after them)."""
        return len(self.rows)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with FileLock(self.folder / LOCK):  # (portable: fcntl on POSIX, msvcrt on Windows)
            yield

    def lookup(self, digests: np.ndarray) -> np.ndarray:
        """[n] the row of each digest, -1 where the store has none."""
        if not len(self.keys):
            return np.full(len(digests), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.keys, digests), len(self.keys) - 1)
        return np.where(self.keys[at] == digests, self.rows[at], -1)

    def append(self, digests: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """Store ``vectors`` [n, dim] under ``digests`` (those already stored, by another process meanwhile, keep
        their row); returns the row of each."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._locked():
            self._load_index()  # another process may have appended since
            rows = self.lookup(digests)
            new = np.flatnonzero(rows < 0)
            new = new[np.unique(digests[new], return_index=True)[1]]  # a text twice in one call: stored once
            if len(new):
                if self.dim and vectors.shape[1] != self.dim:
                    raise ValueError(f"{self.folder}: vectors of width {vectors.shape[1]}, the store holds {self.dim}")
                self.dim = vectors.shape[1]
                with (self.folder / VECTORS).open("r+b" if (self.folder / VECTORS).exists() else "wb") as stream:
                    stream.truncate(self.count * self.dim * 4)  # rows a crash left without an index entry
                    stream.seek(self.count * self.dim * 4)
                    stream.write(vectors[new].tobytes())
                    stream.flush()
                    os.fsync(stream.fileno())
                keys = np.concatenate([self.keys, digests[new]])
                stored = np.concatenate([self.rows, self.count + np.arange(len(new), dtype=np.int64)])
                order = np.argsort(keys, kind="stable")
                save_array_atomic(
                    self.folder / INDEX, {"keys": keys[order], "rows": stored[order], "dim": np.array(self.dim)}
                )
                self.keys, self.rows = keys[order], stored[order]
            return self.lookup(digests)

    def vectors(self, start: int = 0, stop: int | None = None) -> np.memmap:
        """Rows ``start:stop`` as a read-only memory map (drop it to let its pages go)."""
        stop = self.count if stop is None else stop
        return np.memmap(
            self.folder / VECTORS,
            dtype=np.float32,
            mode="r",
            offset=start * self.dim * 4,
            shape=(max(stop - start, 0), self.dim),
        )

    def gather(self, rows: np.ndarray, *, block: int = 65536) -> np.ndarray:
        """[len(rows), dim] float32 copies of these rows, read through short-lived maps of ``block`` rows."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        if not len(rows):
            return out
        order = np.argsort(rows, kind="stable")
        for first in range(0, len(order), block):
            part = order[first : first + block]
            low, high = int(rows[part[0]]), int(rows[part[-1]]) + 1
            mapped = self.vectors(low, high)
            out[part] = mapped[rows[part] - low]
            del mapped
        return out


__all__ = ["FeatureStore", "text_digests"]
