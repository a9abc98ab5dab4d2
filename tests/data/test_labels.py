"""The label set load_splits fixes, and what it warns about: labels validation or test never has (each scores
F1 0 in a macro-F1 over the label set), and labels spelt two ways (case, surrounding white space)."""

import logging

import pytest

from autoft.config import DataConfig
from autoft.data.splits import load_splits
from autoft.errors import DataError
from tests.conftest import write_conll, write_csv

EMOTIONS = ["anger", "joy", "sadness", "fear"]


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_training_label_missing_from_validation_and_test_is_named_once_per_split(tmp_path, caplog):
    train = write_csv(tmp_path / "train.csv", [(f"text {i}", EMOTIONS[i % 4]) for i in range(12)])
    validation = write_csv(tmp_path / "val.csv", [("a", "anger"), ("b", "joy"), ("c", "fear")])
    test = write_csv(tmp_path / "test.csv", [("a", "anger"), ("b", "joy")])
    data = DataConfig(train=str(train), validation=str(validation), test=str(test))
    with caplog.at_level(logging.WARNING, logger="autoft.data.splits"):
        splits = load_splits(data, task="classification", seed=0)
    assert splits.labels == sorted(EMOTIONS)
    said = _warnings(caplog)
    assert said == [
        (
            f"the validation data ({validation}) has no row with training label 'sadness': never validated, and each "
            "scores F1 0 in the validation macro-F1"
        ),
        (
            f"the test data ({test}) has no row with training labels 'fear', 'sadness': never tested, and each scores "
            "F1 0 in the test macro-F1"
        ),
    ]

    caplog.clear()  # read again (a continual update's lineage): no warning the second time
    load_splits(data, task="classification", seed=0, warn=False)
    assert _warnings(caplog) == []


def test_every_label_in_every_split_warns_nothing(tmp_path, caplog):
    rows = [(f"text {i}", EMOTIONS[i % 4]) for i in range(8)]
    t, v, test = (str(write_csv(tmp_path / name, rows)) for name in ("t.csv", "v.csv", "test.csv"))
    data = DataConfig(train=t, validation=v, test=test)
    with caplog.at_level(logging.WARNING, logger="autoft.data.splits"):
        load_splits(data, task="classification", seed=0)
    assert _warnings(caplog) == []


def test_tags_missing_from_test_are_named_without_the_f1_claim(tmp_path, caplog):
    """NER's entity-level F1 counts only the types that occur: a missing tag is untested, not scored 0."""
    (tmp_path / "test.conll").write_text("Alice\tB-PER\nruns\tO\n", encoding="utf-8")
    data = DataConfig(
        train=str(write_conll(tmp_path / "train.conll", 2)),
        validation=str(tmp_path / "test.conll"),
        test=str(tmp_path / "test.conll"),
    )
    with caplog.at_level(logging.WARNING, logger="autoft.data.splits"):
        load_splits(data, task="token-classification", seed=0)
    said = _warnings(caplog)
    assert len(said) == 2 and all("'B-LOC', 'B-ORG', 'I-LOC', 'I-PER'" in s and "F1" not in s for s in said), said


def test_labels_that_differ_only_in_case_or_white_space_are_named_with_their_lines_and_kept(tmp_path, caplog):
    train = tmp_path / "train.csv"
    train.write_text('text,label\na,joy\nb,anger\nc,"Joy "\nd,anger\ne,joy\n', encoding="utf-8")
    data = DataConfig(
        train=str(train), validation=str(write_csv(tmp_path / "v.csv", [("a", "joy"), ("b", "anger"), ("c", "Joy")]))
    )
    with caplog.at_level(logging.WARNING, logger="autoft.data.splits"):
        splits = load_splits(data, task="classification", seed=0)
    assert splits.labels == ["Joy", "anger", "joy"]  # a warning, not a change of the data
    assert _warnings(caplog) == [
        (
            f"labels 'joy' ({train}:2), 'Joy' ({train}:4) differ only in case or surrounding white space: they are 2 "
            "different classes (write them one way if they mean one thing)"
        )
    ]


def test_a_continual_update_spelling_a_known_label_another_way_is_named(tmp_path, caplog):
    train = write_csv(tmp_path / "new.csv", [("a", "Anger"), ("b", "joy")])
    data = DataConfig(
        train=str(train), validation=str(write_csv(tmp_path / "v.csv", [("a", "Anger"), ("b", "joy"), ("c", "anger")]))
    )
    with caplog.at_level(logging.WARNING, logger="autoft.data.splits"):
        load_splits(data, task="classification", seed=0, known=["anger", "joy"])
    assert any(f"'Anger' ({train}:2), 'anger' (the model's labels) differ only in case" in s for s in _warnings(caplog))


def test_a_test_label_the_training_data_spells_another_way_is_a_data_error_naming_both(tmp_path):
    data = DataConfig(
        train=str(write_csv(tmp_path / "t.csv", [("a", "joy"), ("b", "anger")])),
        validation=str(write_csv(tmp_path / "v.csv", [("a", "joy"), ("b", "anger")])),
        test=str(write_csv(tmp_path / "test.csv", [("a", "joy"), ("b", "Anger")])),
    )
    with pytest.raises(
        DataError,
        match=r"test.csv:3: test label 'Anger' never occurs in the training data \(it has "
        r"'anger': the two differ only in case or surrounding white space\)",
    ):
        load_splits(data, task="classification", seed=0)
