import random

import pytest

from tests.conftest import synthetic_rows, write_csv
from tests.selection.synthetic import mixed_sources, noisy_clusters

LABELS = ["food", "sport", "tech"]


@pytest.fixture(scope="session")
def noisy():
    """600 training samples in 4 overlapping clusters (24 dims), 35% of labels flipped; 150 clean validation samples."""
    return noisy_clusters()


@pytest.fixture(scope="session")
def mixed():
    """Two sources: 0 consistent with validation, 1 shifted with 80% of its labels mapped to the next class."""
    return mixed_sources()


@pytest.fixture()
def noisy_files(tmp_path):
    """Synthetic topics with 30% of training labels flipped; returns files and the flipped row ids."""
    rng = random.Random(0)
    rows, flipped = [], set()
    for i, (text, label) in enumerate(synthetic_rows(150, 0)):
        if rng.random() < 0.3:
            label = rng.choice([x for x in LABELS if x != label])
            flipped.add(i)
        rows.append((text, label))
    files = {
        "train": write_csv(tmp_path / "train.csv", rows),
        "validation": write_csv(tmp_path / "val.csv", synthetic_rows(45, 1)),
        "test": write_csv(tmp_path / "test.csv", synthetic_rows(30, 2)),
    }
    return files, flipped
