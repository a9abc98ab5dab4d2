"""Text metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest

from autoft.tasks.text_metrics import normalize_answer, perplexity, rouge_scores, squad_scores, translation_scores


def test_squad_normalisation_and_exact_match():
    assert normalize_answer("  The Cat, a  dog!") == "cat dog"
    assert squad_scores(["The cat"], [["cat"]]) == {"exact_match": 1.0, "f1": 1.0}


def test_squad_partial_f1_best_reference_and_mean():
    # "black cat sat" vs "the cat sat down" -> {cat, sat} shared: P = 2/3, R = 2/3 -> F1 = 2/3
    scores = squad_scores(["black cat sat", "Paris"], [["dog", "the cat sat down"], ["paris", "France"]])
    assert scores["exact_match"] == pytest.approx(0.5)
    assert scores["f1"] == pytest.approx((2 / 3 + 1.0) / 2)


def test_squad_empty_prediction():
    assert squad_scores([""], [["cat"]]) == {"exact_match": 0.0, "f1": 0.0}
    assert squad_scores([""], [["The"]]) == {"exact_match": 1.0, "f1": 0.0}  # v1.1's own quirk, kept


def test_rouge_by_hand_with_stemming_and_best_reference():
    # pred [the, cat, sat] vs ref [the, cat, was, sit]: ROUGE-1 P = 2/3, R = 1/2 -> 4/7; ROUGE-2 1/2, 1/3 -> 2/5
    one = rouge_scores(["the cat sat"], [["the cat was sitting"]])
    assert one == pytest.approx({"rouge1": 4 / 7, "rouge2": 2 / 5, "rougeL": 4 / 7})
    # with a second reference "a cat sat": ROUGE-1 2/3 and ROUGE-2 1/2 there, the best taken per score
    two = rouge_scores(["the cat sat", ""], [["the cat was sitting", "a cat sat"], ["anything"]])
    assert two == pytest.approx({"rouge1": (2 / 3) / 2, "rouge2": (1 / 2) / 2, "rougeL": (2 / 3) / 2})


def test_translation_identical_is_one_and_known_value():
    assert translation_scores(["the cat sat on the mat"], [["the cat sat on the mat"]]) == {"bleu": 1.0, "chrf": 1.0}
    scores = translation_scores(["the cat is on the mat"], [["the cat sat on the mat"]])
    # n-gram precisions 5/6, 3/5, 1/4 and 0/3 -> sacrebleu's exp smoothing 1/(2*3); brevity penalty 1
    assert scores["bleu"] == pytest.approx((5 / 6 * 3 / 5 * 1 / 4 * 1 / 6) ** 0.25)
    assert scores["chrf"] == pytest.approx(0.6193, abs=1e-4)  # sacrebleu 2.x prints chrF2 = 61.93


def test_translation_varying_reference_counts():
    predictions = ["hello", "the cat is on the mat"]
    ragged = translation_scores(predictions, [["hello there my friend"], ["the cat sat on the mat", "the cat is here"]])
    # repeating a reference changes nothing, so the missing one must act like a repeat: not like an empty
    # reference, which would be the closest length to "hello" and lift the brevity penalty (BLEU 0.51, not 0.33)
    repeated = translation_scores(
        predictions, [["hello there my friend"] * 2, ["the cat sat on the mat", "the cat is here"]]
    )
    assert ragged == pytest.approx(repeated)
    assert ragged["bleu"] == pytest.approx(0.3310, abs=1e-4)
    assert translation_scores([""], [["a reference"]]) == {"bleu": 0.0, "chrf": 0.0}


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="2 predictions but 1 reference"):
        squad_scores(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="non-empty list"):
        rouge_scores(["a"], [[]])
    with pytest.raises(ValueError, match="non-empty list"):
        translation_scores(["a"], ["a"])
    with pytest.raises(ValueError, match="no predictions"):
        squad_scores([], [])


def test_perplexity():
    assert perplexity(0.0) == 1.0
    assert perplexity(math.log(20)) == pytest.approx(20)
    assert perplexity(1e6) == math.inf
