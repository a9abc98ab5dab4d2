"""What every benchmark leaves: its result as JSON and its table as Markdown beside it, and the table printed; and
the cache of finished runs that long benchmarks share between processes and resume from (``store``, ``locked``,
``src_commit``)."""

from __future__ import annotations

import fcntl
import importlib.metadata
import json
import os
import platform
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from autoft.io import read_jsonl, write_json, write_text_atomic

PACKAGES = ("torch", "transformers", "peft", "onnxruntime", "numpy", "scikit-learn", "cleanlab")
"""The packages whose versions move a benchmark's speed or scores (those installed are recorded)."""


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def environment() -> dict[str, Any]:
    """Where a result was measured: the checkout's commit (and whether src/ had uncommitted changes), Python, the
    platform, the CPU count and the versions of ``PACKAGES``."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    status = _git("status", "--porcelain", "--", "../src")
    return {
        "commit": _git("rev-parse", "--short", "HEAD"),
        "src_dirty": None if status is None else bool(status),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "packages": versions,
    }


def write_result(output: Path, result: dict[str, Any], table: str, *, echo: bool = True) -> None:
    """``output`` (JSON, with the ``environment`` it was measured in) and ``output`` with ``.md`` (the table), each
    written to a temporary file and renamed over the old one, so a killed run never leaves half a file; the table to
    stdout unless not ``echo``."""
    write_json(output, {**result, "environment": environment()})
    write_text_atomic(output.with_suffix(".md"), table.rstrip("\n") + "\n")
    if echo:
        print(table)


def src_commit() -> tuple[str, bool]:
    """The short hash of the last commit that changed src/ (a commit of tests or documents leaves cached runs valid),
    and whether src/ has uncommitted changes."""
    return _git("log", "-1", "--format=%h", "--", "../src") or "", bool(_git("status", "--porcelain", "--", "../src"))


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path``, a folder or a lock file (created if missing): processes that share a cache
    take turns."""
    if not path.exists():
        path.touch()
    handle = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)


def store(path: Path, record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Put ``record`` (with its ``key``) into the cache file ``path`` (read again under the lock, rewritten whole);
    returns every cached record by key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path.parent):
        records = {r["key"]: r for r in read_jsonl(path)}
        records[record["key"]] = record
        write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in records.values()))
    return records
