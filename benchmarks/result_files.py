"""What every benchmark leaves: its result as JSON and its table as Markdown beside it, and the table printed."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from autoft.io import write_json, write_text_atomic

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
