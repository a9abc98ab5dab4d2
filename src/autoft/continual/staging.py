"""What an update trains on besides the user's files: the unlabelled texts it reads, and the replayed old samples,
the pool and the lineage's validation rows staged as files for the run's config (and kept with the run)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from autoft.config import Config
from autoft.data.loading import Example
from autoft.data.writing import write_examples
from autoft.errors import ConfigError, DataError
from autoft.io import write_checksums, write_text_atomic
from autoft.run import Run


def read_pool(paths: list[str], parent: Run) -> list[Example]:
    """The unlabelled texts of ``paths``: files (a table in the parent's text column, or a text a line) and folders
    (every file in them, by name: ``autoft serve --collect``'s daily files)."""
    from autoft.data.loading import read_texts

    if parent.config.task != "classification":
        raise ConfigError(
            f"--unlabeled: updates learn from unlabelled texts in classification only, not {parent.config.task}"
        )
    files: list[Path] = []
    for given in map(Path, paths):
        if given.is_dir():
            inside = sorted(f for f in given.iterdir() if f.is_file() and not f.name.startswith("."))
            if not inside:
                raise DataError(f"--unlabeled: {given}: an empty folder")
            files += inside
        elif given.is_file():
            files.append(given)
        else:
            raise DataError(f"--unlabeled: {given}: file not found")
    texts = [e for f in files for e in read_texts(f, task="classification", text_column=parent.config.data.text_column)]
    if not texts:
        raise DataError(f"--unlabeled: {', '.join(paths)}: no texts")
    return texts


def stage(
    staging: Path, parent: Run, replayed: list[Example], pool: list[Example], validation: list[Example] | None
) -> dict[str, Path]:
    """Write what the update trains on that is not a user's file — the replayed old samples, the unlabelled
    pool, and (an update without new labelled data) the lineage's validation examples — into ``staging``;
    returns them by role (``replay``, ``unlabeled``, ``validation``)."""
    d = parent.config.data
    staged = {}
    if replayed:
        staged["replay"] = write_examples(
            staging / "replay", replayed, text_column=d.text_column, label_column=d.label_column, task=parent.task
        )
    if pool:
        staged["unlabeled"] = staging / "unlabeled.jsonl"
        staged["unlabeled"].write_text(
            "".join(json.dumps({d.text_column: e.text}, ensure_ascii=False) + "\n" for e in pool), encoding="utf-8"
        )
    if validation:
        staged["validation"] = write_examples(
            staging / "validation", validation, text_column=d.text_column, label_column=d.label_column, task=parent.task
        )
    return staged


def with_files(config: Config, files: list[str], staged: dict[str, Path]) -> Config:
    """``config`` training on ``files`` and the ``staged`` ones (see ``stage``)."""
    data: dict[str, str | list[str]] = {"train": [*files, *([str(staged["replay"])] if "replay" in staged else [])]}
    data.update({role: str(staged[role]) for role in ("unlabeled", "validation") if role in staged})
    return config.model_copy(update={"data": config.data.model_copy(update=data)})


def keep_staged(run: Run, output: Path, files: list[str], staged: dict[str, Path]) -> None:
    """The staged files stay with the run, and its config names them (sealed again by the checksums)."""
    kept = {role: output / path.name for role, path in staged.items()}
    for role, path in staged.items():
        shutil.copyfile(path, kept[role])
    run.config = with_files(run.config, files, {role: path.resolve() for role, path in kept.items()})
    write_text_atomic(output / "config.yaml", run.config.to_yaml())
    write_checksums(output)


__all__ = ["keep_staged", "read_pool", "stage", "with_files"]
