"""The output folder of ``autoft run``: which of its two runs is better on validation, and which run a folder
given to ``serve``, ``predict``, ``evaluate`` or ``export`` stands for.

``autoft run`` writes ``plain/`` and ``autonomous/`` (run directories) and ``comparison.json``, whose ``better``
names the run with the better main validation metric of the task (a tie goes to plain fine-tuning). A command given
that folder loads the run ``better`` names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from autoft.errors import RunDirError

RUNS = ("plain", "autonomous")
COMPARISON = "comparison.json"


def better_run(
    plain: Mapping[str, Any], autonomous: Mapping[str, Any] | None, *, metric: str, greater_is_better: bool = True
) -> dict[str, Any]:
    """Which run is better on validation: the one with the better ``metric`` (the task's main one); a tie, or a
    score missing on either side, goes to plain fine-tuning. ``plain`` and ``autonomous`` are the runs' validation
    metrics. Returns ``{"run", "metric", "greater_is_better", "plain", "autonomous", "why"}``."""
    record: dict[str, Any] = {
        "run": "plain",
        "metric": metric,
        "greater_is_better": greater_is_better,
        "plain": plain.get(metric),
        "autonomous": None if autonomous is None else autonomous.get(metric),
    }
    a, b = record["plain"], record["autonomous"]
    if autonomous is None:
        return {**record, "why": "the only run: no autonomous run for this task"}
    missing = [name for name, score in zip(RUNS, (a, b)) if not isinstance(score, (int, float))]
    if missing:
        return {**record, "why": f"no validation {metric} for {' and '.join(missing)}: plain by default"}
    if (b > a) if greater_is_better else (b < a):
        record["run"] = "autonomous"
    chosen, other = (b, a) if record["run"] == "autonomous" else (a, b)
    other_name = "plain" if record["run"] == "autonomous" else "autonomous"
    why = f"validation {metric} {chosen:.4f} vs {other_name} {other:.4f}"
    if a == b:
        why += ": a tie goes to plain"
    elif not greater_is_better:
        why += ", lower is better"
    return {**record, "why": why}


def resolve_run_dir(path: str | Path) -> tuple[Path, str | None]:
    """The run directory ``path`` stands for, and why when it is the better run of an ``autoft run`` output
    (``"autonomous/ (validation macro_f1 0.7100 vs plain 0.6900)"``); ``path`` itself, and None, otherwise. An
    ``autoft run`` output that is not whole is a one-line ``RunDirError``."""
    path = Path(path)
    if (path / "config.yaml").exists() or not any((path / name).exists() for name in (*RUNS, COMPARISON)):
        return path, None  # a run directory, or not a folder of autoft's at all (Run.load says what is missing)
    unfinished = f"{path}: an unfinished 'autoft run' output"
    instead = "load plain/ or autonomous/ inside it directly"
    try:
        better = json.loads((path / COMPARISON).read_text(encoding="utf-8"))["better"]
        name, why = better["run"], better["why"]
    except FileNotFoundError:
        raise RunDirError(f"{unfinished} (no {COMPARISON}): {instead}") from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        raise RunDirError(
            f"{path}: {COMPARISON} is damaged or does not say which run is better (written by an "
            f"older autoft?): {instead}"
        ) from None
    if name not in RUNS:
        raise RunDirError(f"{path}: {COMPARISON} names {name!r} as the better run, not plain or autonomous: {instead}")
    if not (path / name / "config.yaml").exists():
        raise RunDirError(
            f"{unfinished} ({name}/config.yaml missing): it needs plain/ and autonomous/ run "
            f"directories and {COMPARISON}"
        )
    return path / name, f"{name}/ ({why})"


__all__ = ["better_run", "resolve_run_dir"]
