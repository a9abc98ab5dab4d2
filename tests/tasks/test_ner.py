import numpy as np
import pytest
from transformers import AutoTokenizer

from autoft.data.loading import Example
from autoft.modeling.load import resolve_model_name
from autoft.tasks.ner import IGNORE, TokenClassificationAdapter, bio_spans

LABELS = ["O", "B-LOC", "B-PER", "I-LOC", "I-PER"]


@pytest.fixture(scope="module")
def adapter():
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_name("default"))
    return TokenClassificationAdapter(LABELS, tokenizer, max_length=32)


@pytest.mark.parametrize(
    "tags, spans",
    [
        (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 1), ("LOC", 3, 3)]),
        (["B-PER", "B-PER"], [("PER", 0, 0), ("PER", 1, 1)]),
        (["I-LOC", "I-LOC", "O"], [("LOC", 0, 1)]),
        (["B-PER", "I-LOC"], [("PER", 0, 0), ("LOC", 1, 1)]),
        (["O", "O"], []),
    ],
)
def test_bio_spans(tags, spans):
    assert bio_spans(tags) == spans


def test_first_subtoken_carries_the_word_label(adapter):
    example = Example(["Schwarzenegger", "visited", "Kathmandu"], ["B-PER", "O", "B-LOC"])
    (feature,) = adapter.encode([example])
    tokens = adapter.tokenizer.convert_ids_to_tokens(feature["input_ids"])
    labelled = [(t, adapter.labels[l]) for t, l in zip(tokens, feature["labels"]) if l != IGNORE]
    assert [l for _, l in labelled] == ["B-PER", "O", "B-LOC"]
    assert not labelled[0][0].startswith("##") and len(tokens) > 5  # words were split into sub-tokens
    assert feature["labels"][0] == IGNORE  # [CLS]


def test_blank_and_truncated_words_get_outside(adapter):
    words = ["Bob", "", "runs"] + ["far"] * 60
    (feature,) = adapter.encode([Example(words, ["B-PER", "O", "O"] + ["O"] * 60)])
    assert feature["word_index"][:2] == [0, 2]
    n = len(feature["word_index"])
    probs = np.tile(np.eye(len(LABELS))[2], (n, 1))  # every present word predicted B-PER
    full = adapter.finalize(probs, feature)
    tags = adapter.decode(full)
    assert len(tags) == len(words)
    assert tags[0] == "B-PER" and tags[1] == "O" and tags[-1] == "O"


def test_format_prediction_gives_character_offsets(adapter):
    example = Example("Hi, Carol Smith lives in New York!", None)
    text, words, _offsets = adapter.words(example)
    assert words[:4] == ["Hi", ",", "Carol", "Smith"]
    tags = ["O", "O", "B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "O"]
    probs = np.stack([np.eye(len(LABELS))[LABELS.index(t)] for t in tags])
    record = adapter.format_prediction(example, probs)
    assert [(e["type"], e["text"]) for e in record["entities"]] == [("PER", "Carol Smith"), ("LOC", "New York")]
    for entity in record["entities"]:
        assert text[entity["start"] : entity["end"]] == entity["text"]


def test_entity_level_metrics(adapter):
    gold = [Example(["Bob", "in", "Rome"], ["B-PER", "O", "B-LOC"])]
    metrics = adapter.metrics(gold, [["B-PER", "O", "O"]])
    assert metrics["precision"] == 1.0 and metrics["recall"] == 0.5
    assert metrics["f1"] == pytest.approx(2 / 3)


def test_per_sample_loss_counts_labelled_tokens(adapter):
    import torch

    logits = torch.zeros(2, 4, len(LABELS))
    labels = torch.tensor([[IGNORE, 0, 1, IGNORE], [IGNORE, 2, IGNORE, IGNORE]])
    losses, units = adapter.per_sample_loss(logits, labels)
    assert units.tolist() == [2, 1]
    assert losses.tolist() == pytest.approx([2 * np.log(5), np.log(5)], rel=1e-5)
    with pytest.raises(NotImplementedError, match="forward-correct"):
        adapter.per_sample_loss(logits, labels, torch.eye(len(LABELS)))


def test_label_margin_is_the_worst_tagged_word(adapter):
    (feature,) = adapter.encode([Example(["Bob", "runs", "home"], ["B-PER", "O", "O"])])
    probabilities = np.zeros((3, len(LABELS)))
    outside, person = LABELS.index("O"), LABELS.index("B-PER")
    probabilities[:, outside] = [0.3, 0.9, 0.6]
    probabilities[:, person] = [0.7, 0.1, 0.4]
    # Bob: 0.7 - 0.3; runs: 0.9 - 0.1; home: 0.6 - 0.4 -> the lowest is 0.2
    assert adapter.label_margin(probabilities, feature) == pytest.approx(0.2)


def test_mask_words_leaves_their_tags_out_of_the_loss(adapter):
    (feature,) = adapter.encode([Example(["Schwarzenegger", "visited", "Kathmandu"], ["B-PER", "O", "B-LOC"])])
    masked = adapter.mask_words(feature, [0])
    tags = [adapter.labels[label] for label in masked["labels"] if label != IGNORE]
    assert tags == ["O", "B-LOC"] and masked["word_index"] == feature["word_index"]
    assert next(label for label in feature["labels"] if label != IGNORE) == adapter.label2id["B-PER"]  # untouched
