"""Scores of generated or extracted text against one or several references per example.

Every score is a fraction in [0, 1] (sacrebleu's BLEU and chrF, which report 0-100, are divided by 100), so
that all of autoft's metrics share one scale. Each function takes ``predictions`` (one string per example) and
``references`` (a list of one or more strings per example). ``rouge_score`` and ``sacrebleu`` are imported
only when their metric is asked for.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from typing import cast

_PUNCTUATION = frozenset(string.punctuation)


def _check(predictions: list[str], references: list[list[str]]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} reference lists")
    if not predictions:
        raise ValueError("no predictions to score")
    if any(isinstance(refs, str) or not refs for refs in references):
        raise ValueError("each example needs a non-empty list of reference strings")


# --- SQuAD v1.1 -------------------------------------------------------------------------------------------------
# From the official evaluation script, evaluate-v1.1.py (rajpurkar.github.io/SQuAD-explorer; the same code is in
# 🤗 evaluate's metrics/squad/compute_score.py), rescaled from percent to fractions.


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and the articles a/an/the, collapse whitespace (SQuAD's normalisation)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _token_f1(prediction: str, reference: str) -> float:
    predicted, gold = normalize_answer(prediction).split(), normalize_answer(reference).split()
    same = sum((Counter(predicted) & Counter(gold)).values())
    if same == 0:  # as in v1.1, two empty answers score 0 (SQuAD v2's script scores them 1)
        return 0.0
    precision, recall = same / len(predicted), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: list[str], references: list[list[str]]) -> dict[str, float]:
    """SQuAD v1.1 ``exact_match`` and token ``f1``: the best over an example's references, averaged."""
    _check(predictions, references)
    exact = [max(normalize_answer(p) == normalize_answer(r) for r in refs) for p, refs in zip(predictions, references)]
    f1 = [max(_token_f1(p, r) for r in refs) for p, refs in zip(predictions, references)]
    return {"exact_match": sum(exact) / len(exact), "f1": sum(f1) / len(f1)}


# --- ROUGE ------------------------------------------------------------------------------------------------------


def rouge_scores(predictions: list[str], references: list[list[str]]) -> dict[str, float]:
    """ROUGE-1/2/L F-measure (Porter stemming), best reference per example and per score as in SciTLDR's
    evaluation, averaged over examples. rouge_score's tokenizer keeps only ASCII letters and digits."""
    _check(predictions, references)
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        raise ImportError("ROUGE needs the package rouge-score: pip install rouge-score") from None
    kinds = ("rouge1", "rouge2", "rougeL")
    scorer = rouge_scorer.RougeScorer(list(kinds), use_stemmer=True)
    totals = dict.fromkeys(kinds, 0.0)
    for prediction, refs in zip(predictions, references):
        scores = [scorer.score(ref, prediction) for ref in refs]  # score(target, prediction)
        for kind in kinds:
            totals[kind] += max(s[kind].fmeasure for s in scores)
    return {kind: total / len(predictions) for kind, total in totals.items()}


# --- BLEU and chrF ----------------------------------------------------------------------------------------------


def translation_scores(predictions: list[str], references: list[list[str]]) -> dict[str, float]:
    """Corpus ``bleu`` and ``chrf`` by sacrebleu (default tokenisation, so give it detokenised text).

    sacrebleu wants the references as streams of equal length (the k-th reference of every example); an
    example with fewer references is padded with ``None``, which sacrebleu skips (an empty string would count
    as a real, empty reference)."""
    _check(predictions, references)
    try:
        import sacrebleu
    except ImportError:
        raise ImportError("BLEU and chrF need the package sacrebleu: pip install sacrebleu") from None
    width = max(len(refs) for refs in references)
    # sacrebleu skips the None padding (its annotations say str only)
    streams = cast(
        "list[list[str]]", [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]
    )
    bleu = sacrebleu.corpus_bleu(predictions, streams).score
    chrf = sacrebleu.corpus_chrf(predictions, streams).score
    return {"bleu": min(bleu / 100, 1.0), "chrf": min(chrf / 100, 1.0)}  # 100.00000000000004 happens


def perplexity(mean_loss: float) -> float:
    """``exp`` of a mean token cross-entropy (nats); ``inf`` where that overflows, ``nan`` for a ``nan`` loss."""
    try:
        return math.exp(mean_loss)
    except OverflowError:
        return math.inf
