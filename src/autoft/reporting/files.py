"""What the report reads: one run directory, or the output folder of ``autoft run`` with its runs side by side."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from autoft.config import load_yaml
from autoft.errors import RunDirError
from autoft.io import read_jsonl


class RunFiles:
    """What one run directory holds, read once. ``key`` names the run in element ids (``plain``, ``autonomous``;
    empty for the report of a single run) and ``title`` in headings and column heads."""

    def __init__(self, folder: Path, *, key: str = "", title: str = "fine-tuned") -> None:
        for name in ("config.yaml", "metrics.json"):
            if not (folder / name).is_file():
                raise RunDirError(f"{folder}: not a finished autoft run (missing {name})")
        self.folder, self.key, self.title = folder, key, title
        try:
            self.config = load_yaml((folder / "config.yaml").read_text(encoding="utf-8")) or {}
            self.metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        except (yaml.YAMLError, json.JSONDecodeError) as error:
            raise RunDirError(f"{folder}: a run file is damaged ({error.__class__.__name__}): {error}") from None
        labels = folder / "labels.json"
        self.labels = json.loads(labels.read_text(encoding="utf-8"))["labels"] if labels.is_file() else []
        self.task = self.metrics.get("task") or self.config.get("task", "classification")

    def optional(self, name: str) -> Path | None:
        path = self.folder / name
        return path if path.is_file() else None

    @cached_property
    def predictions(self) -> list[dict[str, Any]]:
        """The rows of ``test_predictions.jsonl`` (none without a test set): ``input``, ``gold``, ``prediction``,
        and, where the task has them, ``question`` and ``zero_shot``."""
        path = self.optional("test_predictions.jsonl")
        rows = read_jsonl(path) if path is not None else []
        return [row for row in rows if isinstance(row, dict) and "prediction" in row]


@dataclass
class Report:
    """A report's sources: ``runs`` in the order the page shows them (plain fine-tuning first), and ``job``, the
    ``comparison.json`` of ``autoft run`` (None for a single run directory)."""

    folder: Path
    runs: list[RunFiles]
    job: dict[str, Any] | None = None
    task: str = field(init=False)

    def __post_init__(self) -> None:
        self.task = self.runs[-1].task

    @property
    def agent_run(self) -> RunFiles:
        """The run whose agent the page shows (the autonomous one of a job)."""
        return self.runs[-1]

    def agent_file(self, name: str) -> Path | None:
        """The report's folder first (``autoft run`` copies the agent's files there), then the agent's run."""
        path = self.folder / name
        return path if path.is_file() else self.agent_run.optional(name)


def read_report(folder: str | Path) -> Report:
    """The runs of a run directory or of an ``autoft run`` output folder (``comparison.json`` beside ``plain/`` and,
    when the task has an agent, ``autonomous/``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RunDirError(f"{folder}: run directory not found")
    if not (folder / "comparison.json").is_file():
        return Report(folder, [RunFiles(folder)])
    try:
        job = json.loads((folder / "comparison.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise RunDirError(f"{folder / 'comparison.json'}: damaged (JSONDecodeError): {error}") from None
    if "autonomous" in job and (folder / "autonomous").is_dir():
        runs = [
            RunFiles(folder / "plain", key="plain", title="plain fine-tuning"),
            RunFiles(folder / "autonomous", key="autonomous", title=f"autonomous ({job.get('policy')})"),
        ]
    else:  # a task without an agent: one fine-tuning run, compared with the model before it
        runs = [RunFiles(folder / "plain")]
    return Report(folder, runs, job)


__all__ = ["Report", "RunFiles", "read_report"]
