import csv

import numpy as np

from autoft.demo import bbc_news, inject_noise, prepare_data


def test_bbc_news_comes_from_the_package():
    texts, labels = bbc_news()
    assert len(texts) == 2225
    assert sorted(set(labels)) == ["business", "entertainment", "politics", "sports", "tech"]


def test_inject_noise_flips_to_a_different_label_at_the_rate():
    labels = ["a", "b", "c", "d"] * 500
    noisy, flipped = inject_noise(labels, 0.3, seed=1)
    assert abs(flipped.mean() - 0.3) < 0.03
    assert all((n != l) == f for n, l, f in zip(noisy, labels, flipped))
    again, _ = inject_noise(labels, 0.3, seed=1)
    assert again == noisy


def test_prepare_data_keeps_validation_and_test_clean(tmp_path):
    files, flipped = prepare_data(tmp_path, train_size=100, validation_size=50, test_size=50, seed=0, noise=0.4)
    texts, labels = bbc_news()
    truth = dict(zip(texts, labels))
    for split in ("validation", "test"):
        with open(files[split], encoding="utf-8") as stream:
            rows = list(csv.DictReader(stream))
        assert len(rows) == 50 and all(truth[r["text"]] == r["label"] for r in rows)
    with open(files["train"], encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    wrong = np.array([truth[r["text"]] != r["label"] for r in rows])
    assert (wrong == flipped).all() and 25 <= wrong.sum() <= 55
