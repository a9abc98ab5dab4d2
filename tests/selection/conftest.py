import pytest

from tests.selection.synthetic import mixed_sources, noisy_clusters


@pytest.fixture(scope="session")
def noisy():
    """600 training samples in 4 overlapping clusters (24 dims), 35% of labels flipped; 150 clean validation samples."""
    return noisy_clusters()


@pytest.fixture(scope="session")
def mixed():
    """Two sources: 0 consistent with validation, 1 shifted with 80% of its labels mapped to the next class."""
    return mixed_sources()
