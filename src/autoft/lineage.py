"""A lineage of runs on disk: the first run (its root) and every update made from it or its descendants.

    root/lineage.jsonl   one line per update (run, parent, data, when, metrics, gate, promoted)
    root/latest          symlink to the newest promoted run (absent: the root itself)
    root/.update.lock    held while an update runs: two updates never write the same lineage
    update/lineage.json  the update's own record, with ``parent`` and ``root``

Reading it needs nothing above the run directory (serving reads ``history`` and ``latest``); writing it is
:mod:`autoft.continual`'s.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from autoft.errors import RunDirError
from autoft.io import read_jsonl

LINEAGE = "lineage.jsonl"


RECORD = "lineage.json"


LATEST = "latest"


LOCK = ".update.lock"


def root_of(run_dir: str | Path) -> Path:
    """The first run of ``run_dir``'s lineage (the run itself when it is not an update)."""
    path = Path(run_dir).resolve()
    record = path / RECORD
    if record.exists():
        return Path(json.loads(record.read_text(encoding="utf-8"))["root"])
    return path


def latest(run_dir: str | Path) -> Path:
    """The lineage's newest promoted run."""
    root = root_of(run_dir)
    link = root / LATEST
    return link.resolve() if link.is_symlink() else root


def history(run_dir: str | Path) -> list[dict[str, Any]]:
    """The lineage of ``run_dir``: the root, then every update in the order made (``lineage.jsonl``)."""
    if not (Path(run_dir) / "config.yaml").is_file():
        raise RunDirError(f"{run_dir}: not an autoft run directory (no config.yaml)")
    root = root_of(run_dir)
    metrics_path = root / "metrics.json"
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.exists() else {}
    first = {
        "run": str(root),
        "parent": None,
        "created": None,
        "validation": metrics.get("validation"),
        "test": metrics.get("test"),
        "promoted": True,
    }
    return [first, *read_jsonl(root / LINEAGE)]


@contextlib.contextmanager
def lineage_lock(root: Path) -> Iterator[None]:
    """Hold ``root/.update.lock`` exclusively, or fail at once with a one-line ``RunDirError``."""
    from filelock import FileLock, Timeout

    lock = FileLock(root / LOCK, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunDirError(f"{root}: another autoft update of this lineage is running (lock {root / LOCK})") from None
    try:
        yield
    finally:
        lock.release()


def point_latest(root: Path, run: Path) -> None:
    """Make ``root/latest`` point at ``run`` (a relative symlink, replaced atomically)."""
    temp = root / f".{LATEST}.tmp-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    os.symlink(os.path.relpath(run, root), temp)
    os.replace(temp, root / LATEST)


def chain_of(run_dir: str | Path) -> list[Path]:
    """The runs from the lineage's root to ``run_dir``, following each update's ``parent``."""
    chain, path = [], Path(run_dir).resolve()
    while True:
        chain.append(path)
        record = path / RECORD
        if not record.exists():
            return chain[::-1]
        path = Path(json.loads(record.read_text(encoding="utf-8"))["parent"])


def lineage_table(run_dir: str | Path) -> str:
    """The lineage as text: one line per run, oldest first, the latest marked."""
    runs = history(run_dir)
    newest = str(latest(run_dir))
    lines = []
    for i, entry in enumerate(runs):
        metric = entry.get("metric") or ""
        scores = entry.get("scores", {}).get("old_validation", {})
        change = scores.get("change")
        lines.append(
            "  ".join(
                [
                    "*" if entry["run"] == newest else " ",
                    f"{i}",
                    entry["run"],
                    entry.get("created") or "(root)",
                    f"new data: {', '.join(Path(f).name for f in entry['data']['train'])}" if entry.get("data") else "",
                    f"replay {entry['replay']['samples']}" if entry.get("replay") else "",
                    f"old validation {metric} {change:+.4f}" if change is not None else "",
                    "" if entry.get("promoted", True) else "NOT PROMOTED: " + entry["gate"]["why"],
                ]
            ).rstrip()
        )
    return "\n".join(lines)
