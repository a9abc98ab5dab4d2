"""One small data set per task family, for the command matrix (tests/test_matrix.py): its files, the new data an
update learns from, an input file for predict, and what each family's tables and predictions must show."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import NER_SENTENCES, TOPICS, synthetic_rows, write_conll, write_csv

FILLER = ["the", "a", "and", "of", "today"]
WORDS = ["apple", "river", "stone", "cloud", "green", "music"]


@dataclass
class FamilyData:
    """A family's files: ``train``/``validation``/``test``, ``new`` (labelled, for ``update``) and ``inputs`` (for
    ``predict``: ``count`` inputs, the first of which, as ``serve`` takes it, is ``first``)."""

    files: dict[str, Path]
    new: Path
    inputs: Path
    count: int
    first: Any


@dataclass(frozen=True)
class Family:
    task: str
    model: str
    """The conftest fixture (or tests/test_matrix.py's) holding the tiny model it trains."""
    metrics: tuple[str, ...]
    """Its own metrics (docs/tasks.md), which every metrics table must show with numbers."""
    prediction_keys: frozenset[str]
    """What each line of ``autoft predict`` holds (docs/cli.md, ``predict``; docs/tasks.md)."""
    write: Callable[[Path], FamilyData]
    settings: dict[str, Any] = field(default_factory=dict)
    """Config sections beside ``tiny_config``'s (generation: the decoding length)."""


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def classification(folder: Path) -> FamilyData:
    files = {
        split: write_csv(folder / f"{split}.csv", synthetic_rows(n, seed))
        for split, n, seed in (("train", 24, 0), ("validation", 9, 1), ("test", 9, 2))
    }
    return FamilyData(
        files, write_csv(folder / "new.csv", synthetic_rows(12, 3)), files["test"], 9, synthetic_rows(9, 2)[0][0]
    )


def _label_sets(n: int, seed: int) -> list[tuple[str, str]]:
    """Texts mixing the words of up to three topics; their label set is exactly those topics ("a|b")."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        topics = sorted(rng.sample(sorted(TOPICS), k=i % 4))
        words = [w for t in topics for w in rng.choices(TOPICS[t], k=3)]
        words += rng.choices(FILLER, k=10 - len(words))
        rng.shuffle(words)
        rows.append((" ".join(words), "|".join(topics)))
    return rows


def multi_label(folder: Path) -> FamilyData:
    files = {
        split: write_csv(folder / f"{split}.csv", _label_sets(n, seed))
        for split, n, seed in (("train", 24, 0), ("validation", 8, 1), ("test", 8, 2))
    }
    return FamilyData(
        files, write_csv(folder / "new.csv", _label_sets(12, 3)), files["test"], 8, _label_sets(8, 2)[0][0]
    )


def ner(folder: Path) -> FamilyData:
    files = {
        split: write_conll(folder / f"{split}.conll", copies)
        for split, copies in (("train", 4), ("validation", 1), ("test", 1))
    }
    return FamilyData(
        files, write_conll(folder / "new.conll", 2), files["test"], len(NER_SENTENCES), NER_SENTENCES[0][0].split()
    )


def _relations(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    causes, effects = ["fire", "storm", "virus", "spark"], ["smoke", "flood", "fever", "blaze"]
    rows = []
    for i in range(n):
        c, e = rng.choice(causes), rng.choice(effects)
        rows.append(
            [
                (f"the <e1>{c}</e1> caused the <e2>{e}</e2> today", "Cause-Effect(e1,e2)"),
                (f"the <e1>{e}</e1> came from the <e2>{c}</e2> today", "Cause-Effect(e2,e1)"),
                (f"the <e1>{c}</e1> and the <e2>{e}</e2> were seen", "Other"),
            ][i % 3]
        )
    return rows


def _semeval(path: Path, rows: list[tuple[str, str]]) -> Path:
    """A SemEval-2010 Task 8 file: id and quoted sentence, relation, comment, blank line."""
    return _lines(
        path,
        [
            line
            for i, (sentence, relation) in enumerate(rows, 1)
            for line in (f'{i}\t"{sentence}"', relation, "Comment:", "")
        ],
    )


def relation(folder: Path) -> FamilyData:
    files = {
        split: _semeval(folder / f"{split}.txt", _relations(n, seed))
        for split, n, seed in (("train", 24, 0), ("validation", 9, 1), ("test", 9, 2))
    }
    inputs = [sentence for sentence, _ in _relations(6, 4)]
    return FamilyData(
        files,
        _semeval(folder / "new.txt", _relations(12, 3)),
        _lines(folder / "inputs.txt", inputs),
        len(inputs),
        inputs[0],
    )


def _questions(n: int, seed: int) -> list[dict[str, Any]]:
    """Who was born where: the answer is the city named after 'born in'."""
    rng = random.Random(seed)
    names, cities = ["Anna", "Bruno", "Carla", "Dario", "Elena"], ["Paris", "Rome", "Oslo", "Lima", "Cairo"]
    rows = []
    for _ in range(n):
        name, city, other = rng.choice(names), rng.choice(cities), rng.choice(cities)
        context = f"{name} was born in {city} and later moved to {other} for work."
        rows.append(
            {
                "context": context,
                "question": f"Where was {name} born?",
                "answers": [{"text": city, "answer_start": context.index(city)}],
            }
        )
    return rows


def question_answering(folder: Path) -> FamilyData:
    files = {
        split: _jsonl(folder / f"{split}.jsonl", _questions(n, seed))
        for split, n, seed in (("train", 16, 0), ("validation", 6, 1), ("test", 6, 2))
    }
    inputs = [{"context": r["context"], "question": r["question"]} for r in _questions(4, 4)]
    return FamilyData(
        files,
        _jsonl(folder / "new.jsonl", _questions(8, 3)),
        _jsonl(folder / "inputs.jsonl", inputs),
        len(inputs),
        inputs[0],
    )


def _pairs(n: int, offset: int, source: str, target: str, prompt: str = "") -> list[dict[str, str]]:
    return [{source: f"{prompt}{WORDS[(i + offset) % 6]}", target: WORDS[(i + offset) % 6]} for i in range(n)]


def _generative(folder: Path, source: str, target: str, prompt: str) -> FamilyData:
    # The agent values pairs on half the validation pairs, and needs at least 8 there.
    files = {
        split: _jsonl(folder / f"{split}.jsonl", _pairs(n, offset, source, target, prompt))
        for split, n, offset in (("train", 16, 0), ("validation", 16, 1), ("test", 6, 2))
    }
    inputs = [f"{prompt}{word}" for word in WORDS[:4]]
    return FamilyData(
        files,
        _jsonl(folder / "new.jsonl", _pairs(8, 3, source, target, prompt)),
        _lines(folder / "inputs.txt", inputs),
        len(inputs),
        inputs[0],
    )


def generation(folder: Path) -> FamilyData:
    return _generative(folder, "prompt", "response", "say ")


def seq2seq(folder: Path) -> FamilyData:
    return _generative(folder, "source", "target", "")


TEXT_METRICS = ("rouge1", "rouge2", "rougeL", "bleu", "chrf")
DECODING = {"generation": {"max_new_tokens": 3}}

FAMILIES: dict[str, Family] = {
    family.task: family
    for family in (
        Family(
            "classification",
            "tiny_model_dir",
            ("accuracy", "macro_f1"),
            frozenset({"text", "label", "probabilities"}),
            classification,
        ),
        Family(
            "multi-label-classification",
            "tiny_model_dir",
            ("micro_f1", "macro_f1", "subset_accuracy"),
            frozenset({"text", "labels", "probabilities"}),
            multi_label,
        ),
        Family(
            "token-classification",
            "tiny_model_dir",
            ("precision", "recall", "f1"),
            frozenset({"text", "entities", "tokens", "tags"}),
            ner,
        ),
        Family(
            "relation-extraction",
            "tiny_model_dir",
            ("macro_f1", "accuracy"),
            frozenset({"text", "label", "probabilities"}),
            relation,
        ),
        Family(
            "question-answering",
            "tiny_model_dir",
            ("exact_match", "f1"),
            frozenset({"question", "answer", "start", "end", "score"}),
            question_answering,
        ),
        Family("generation", "tiny_gpt2", TEXT_METRICS, frozenset({"input", "output"}), generation, DECODING),
        Family("seq2seq", "tiny_t5", TEXT_METRICS, frozenset({"input", "output"}), seq2seq, DECODING),
    )
}
