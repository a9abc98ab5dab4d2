"""Atomic file writes: a temporary file (or folder) in the same folder, then a rename, so nothing is
half-written."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from autoft.errors import AutoftError, DataError, RunDirError


def cache_root() -> Path:
    """Where autoft caches what it derives once (encoder features, converted GGUF models): ``$AUTOFT_CACHE``, by
    default ``~/.cache/autoft``."""
    return Path(os.environ.get("AUTOFT_CACHE", Path.home() / ".cache" / "autoft"))


def write_text_atomic(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def save_array_atomic(path: str | Path, arrays: Any) -> None:
    """One array (``.npy``) or a dict of arrays (``.npz``), written to a temporary file, then renamed."""
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    try:
        with os.fdopen(handle, "wb") as stream:
            if isinstance(arrays, dict):
                np.savez(stream, **arrays)
            else:
                np.save(stream, arrays)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


CHECKSUMS = "checksums.json"


def file_digest(path: Path) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    import hashlib

    with Path(path).open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def write_checksums(folder: str | Path) -> None:
    """``checksums.json``: the SHA-256 of every file under ``folder`` as written (``verify_checksums`` reads it)."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink() and p.name != CHECKSUMS)
    write_json(folder / CHECKSUMS, {p.relative_to(folder).as_posix(): file_digest(p) for p in files})


def verify_checksums(folder: str | Path) -> list[str]:
    """The files under ``folder`` that ``checksums.json`` lists and that are now missing or different (none when
    the folder has no ``checksums.json``: a run written before autoft recorded them). Files added later are not
    checked."""
    folder = Path(folder)
    path = folder / CHECKSUMS
    if not path.is_file():
        return []
    recorded = json.loads(path.read_text(encoding="utf-8"))
    return [
        name
        for name, digest in recorded.items()
        if not (folder / name).is_file() or file_digest(folder / name) != digest
    ]


def _hidden_sibling(path: Path, suffix: str) -> Path:
    return path.with_name(f".{path.name.lstrip('.')}.{suffix}")


def previous_folder(path: str | Path) -> Path:
    """Where ``staged_folder`` keeps the folder it replaces until the new one is in place."""
    return _hidden_sibling(Path(path), "previous")


def work_folder(path: str | Path) -> Path:
    """Where a resumable job stages ``path`` (``staged_folder(..., resumable=True)``)."""
    return _hidden_sibling(Path(path), "work")


@contextlib.contextmanager
def staged_folder(path: str | Path, *, sync: bool = False, resumable: bool = False) -> Iterator[Path]:
    """A temporary sibling folder of ``path`` to write into; renamed to ``path`` when the block ends, removed if it
    raises: nothing half-written is left. A folder already at ``path`` is renamed aside (``previous_folder``) and
    removed only once the new one is in place, so a crash leaves one or the other. ``sync``: the files reach the
    disk before the renames. A full disk or a lost permission is a one-line ``RunDirError``.

    ``resumable``: the folder is the fixed ``work_folder(path)``, reused as it is if it exists (a resumed job finds
    the parts an interrupted one finished there) and kept after a crash; only bad input or settings (an
    ``AutoftError``) remove it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if resumable:
            temp = work_folder(path)
            temp.mkdir(exist_ok=True)
        else:
            temp = Path(tempfile.mkdtemp(dir=path.parent, prefix=_hidden_sibling(path, "tmp-").name))
    except OSError as error:
        raise RunDirError(f"{path}: cannot write here: {error.strerror or error}") from None
    try:
        yield temp
        if sync:
            for written in temp.rglob("*"):
                if written.is_file():
                    with written.open("rb") as stream:
                        os.fsync(stream.fileno())
        previous = previous_folder(path)
        if path.exists():
            shutil.rmtree(previous, ignore_errors=True)
            os.replace(path, previous)
        os.replace(temp, path)
        shutil.rmtree(previous, ignore_errors=True)
    except BaseException as error:
        if not resumable or isinstance(error, AutoftError):
            shutil.rmtree(temp, ignore_errors=True)
        # A full disk or a lost permission while writing (safetensors reports them as its own error type).
        if not isinstance(error, AutoftError) and (
            isinstance(error, OSError) or type(error).__name__ == "SafetensorError"
        ):
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            raise RunDirError(f"{path}: cannot write: {reason}") from None
        raise


def write_json(path: str | Path, value: Any) -> None:
    write_text_atomic(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def read_jsonl(path: str | Path) -> list[Any]:
    """The records of a JSON-lines file that is appended to as work finishes (none if it does not exist). A last
    line cut short by a killed writer is skipped; a bad line before it is an error naming the file and line (the
    file is damaged, not merely interrupted)."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == len(lines):
                break
            raise DataError(f"{path}:{number}: not a JSON record ({error.msg})") from None
    return records


def to_builtin(value: Any) -> Any:
    """Numpy scalars and arrays (also inside dicts, lists and tuples) as plain Python values for JSON."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): to_builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_builtin(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_builtin(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value
