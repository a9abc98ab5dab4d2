"""The public, human-labelled sets in a shared data folder (``../shared/data`` beside a checkout),
materialised as ordinary autoft data files with the split conventions of that folder's README:

- ``tweeteval_emotion``: the given train / val / test split.
- ``banking77``: after a seeded shuffle (seed 0) the last 1,000 rows of train.csv are validation.
- ``btc_ner``: sections a b e f g for train (a seeded 10% of their sentences as validation), h for test.
- ``sgd_acts`` (multi-label): each USER turn of Schema-Guided Dialogue → the set of dialogue acts its frames
  annotate (INFORM, REQUEST, AFFIRM, ... — 11 acts, a third of the turns carry two or more); the README's
  file split (``dialogues_001``–``012`` train, ``013``–``014`` validation, ``016``–``020`` test).
- ``scitldr`` (generation, summarisation): SciTLDR-A, the abstract's sentences joined by spaces after an
  instruction → its TLDR (train: the first; dev and test: every TLDR, as references); the given splits.
- ``multi30k`` (generation, translation): Multi30k English → German after an instruction; the given train / val /
  test_2016_flickr.
- ``sgd_responses`` (generation, dialogue): each SYSTEM turn of Schema-Guided Dialogue → the dialogue so far as chat
  messages (USER: user, SYSTEM: assistant; the last ``SGD_HISTORY`` turns), the README's file split.
- ``xquad`` (extractive question answering): XQuAD English, articles 0–35 in file order train (925 questions),
  36–39 validation (88), 40–47 test (177).

Benchmarks and integration tests use these; nothing is copied into the project.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from autoft.data.loading import Example, load_examples
from autoft.data.writing import write_examples
from autoft.errors import DataError

DEFAULT_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NAMES = ("tweeteval_emotion", "banking77", "btc_ner", "sgd_acts", "xquad", "scitldr", "multi30k", "sgd_responses")
SUMMARISE = "Summarise this paper abstract in one sentence (a TL;DR).\n\n"
TRANSLATE = "Translate this English sentence into German.\n\n"
SGD_HISTORY = 5
XQUAD_ARTICLES = {"train": range(36), "validation": range(36, 40), "test": range(40, 48)}
SGD_FILES = {"train": range(1, 13), "validation": range(13, 15), "test": range(16, 21)}


def shared_root(root: str | Path | None = None) -> Path:
    path = Path(root) if root is not None else DEFAULT_ROOT
    if not path.is_dir():
        raise DataError(f"{path}: shared data folder not found (pass --data-root)")
    return path


def _tweeteval(root: Path) -> dict[str, list[Example]]:
    folder = root / "tweeteval_emotion"
    names = dict(line.split("\t") for line in (folder / "mapping.txt").read_text().strip().splitlines())
    splits = {}
    for split, file in (("train", "train"), ("validation", "val"), ("test", "test")):
        texts = (folder / f"{file}_text.txt").read_text(encoding="utf-8").splitlines()
        labels = (folder / f"{file}_labels.txt").read_text(encoding="utf-8").splitlines()
        if len(texts) != len(labels):
            raise DataError(f"{folder / f'{file}_text.txt'}: {len(texts)} texts but {len(labels)} labels")
        splits[split] = [
            Example(t.strip(), names[l.strip()], f"{folder / f'{file}_text.txt'}:{i}")
            for i, (t, l) in enumerate(zip(texts, labels), start=1)
        ]
    return splits


def _banking77(root: Path, seed: int = 0) -> dict[str, list[Example]]:
    folder = root / "banking77"
    train = load_examples(folder / "train.csv", task="classification", label_column="category")
    order = np.random.default_rng(seed).permutation(len(train))
    return {
        "train": [train[i] for i in order[:-1000]],
        "validation": [train[i] for i in order[-1000:]],
        "test": load_examples(folder / "test.csv", task="classification", label_column="category"),
    }


def _btc(
    root: Path, seed: int = 0, train_sections: str = "abefg", test_sections: str = "h"
) -> dict[str, list[Example]]:
    folder = root / "btc_ner"
    pool = [e for s in train_sections for e in load_examples(folder / f"{s}.conll", task="token-classification")]
    order = np.random.default_rng(seed).permutation(len(pool))
    n_val = round(0.1 * len(pool))
    return {
        "train": [pool[i] for i in sorted(order[n_val:])],
        "validation": [pool[i] for i in sorted(order[:n_val])],
        "test": [e for s in test_sections for e in load_examples(folder / f"{s}.conll", task="token-classification")],
    }


def _sgd_dialogues(root: Path):
    """Yield (split, file, dialogue) over the README's SGD file split."""
    import gzip

    for split, numbers in SGD_FILES.items():
        for number in numbers:
            path = root / "sgd_dialogue" / f"dialogues_{number:03d}.json.gz"
            if not path.exists():  # the shared copy lacks the release's largest files
                continue
            with gzip.open(path, "rt", encoding="utf-8") as stream:
                for dialogue in json.load(stream):
                    yield split, path, dialogue


def _sgd_acts(root: Path) -> dict[str, list[Example]]:
    splits: dict[str, list[Example]] = {split: [] for split in SGD_FILES}
    for split, path, dialogue in _sgd_dialogues(root):
        for t, turn in enumerate(dialogue["turns"]):
            if turn["speaker"] == "USER":
                acts = sorted({a["act"] for frame in turn["frames"] for a in frame["actions"]})
                splits[split].append(Example(turn["utterance"], acts, f"{path}:{dialogue['dialogue_id']}:{t}"))
    return splits


def _sgd_responses(root: Path) -> dict[str, list[Example]]:
    splits: dict[str, list[Example]] = {split: [] for split in SGD_FILES}
    for split, path, dialogue in _sgd_dialogues(root):
        turns = dialogue["turns"]
        for t, turn in enumerate(turns):
            if turn["speaker"] == "SYSTEM" and t > 0:
                history = [
                    {"role": "user" if x["speaker"] == "USER" else "assistant", "content": x["utterance"]}
                    for x in turns[max(0, t - SGD_HISTORY) : t]
                ]
                while history[0]["role"] != "user":  # a transcript opens with the user
                    history = history[1:]
                splits[split].append(Example(history, [turn["utterance"]], f"{path}:{dialogue['dialogue_id']}:{t}"))
    return splits


def _scitldr(root: Path) -> dict[str, list[Example]]:
    splits = {}
    for split, name in (("train", "train"), ("validation", "dev"), ("test", "test")):
        path = root / "scitldr_a" / f"{name}.jsonl"
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        splits[split] = [
            Example(
                SUMMARISE + " ".join(r["source"]), r["target"][:1] if split == "train" else r["target"], f"{path}:{n}"
            )
            for n, r in enumerate(rows, start=1)
        ]
    return splits


def _multi30k(root: Path) -> dict[str, list[Example]]:
    import gzip

    splits = {}
    for split, name in (("train", "train"), ("validation", "val"), ("test", "test_2016_flickr")):
        folder = root / "multi30k_en_de"
        with (
            gzip.open(folder / f"{name}.en.gz", "rt", encoding="utf-8") as en,
            gzip.open(folder / f"{name}.de.gz", "rt", encoding="utf-8") as de,
        ):
            pairs = list(zip(en.read().splitlines(), de.read().splitlines()))
        splits[split] = [
            Example(TRANSLATE + e.strip(), [d.strip()], f"{folder / name}.en.gz:{n}")
            for n, (e, d) in enumerate(pairs, start=1)
            if e.strip() and d.strip()
        ]
    return splits


def _xquad(root: Path) -> dict[str, list[Example]]:
    path = root / "xquad" / "xquad.en.json"
    examples = load_examples(path, task="question-answering")
    article_of, article = [], -1  # each question's article: the questions come in file order
    for paragraphs in json.loads(path.read_text(encoding="utf-8"))["data"]:
        article += 1
        article_of += [article] * sum(len(p["qas"]) for p in paragraphs["paragraphs"])
    return {
        split: [e for e, a in zip(examples, article_of) if a in articles] for split, articles in XQUAD_ARTICLES.items()
    }


def load_public(name: str, root: str | Path | None = None) -> dict[str, list[Example]]:
    """Splits (train / validation / test) of a named shared set."""
    root = shared_root(root)
    if name == "tweeteval_emotion":
        return _tweeteval(root)
    if name == "banking77":
        return _banking77(root)
    if name == "btc_ner":
        return _btc(root)
    if name == "sgd_acts":
        return _sgd_acts(root)
    if name == "xquad":
        return _xquad(root)
    loaders = {"scitldr": _scitldr, "multi30k": _multi30k, "sgd_responses": _sgd_responses}
    if name in loaders:
        return loaders[name](root)
    raise DataError(f"unknown shared data set {name!r}; known: {', '.join(NAMES)}")


def task_of(name: str) -> str:
    return {
        "btc_ner": "token-classification",
        "sgd_acts": "multi-label-classification",
        "xquad": "question-answering",
        "scitldr": "generation",
        "multi30k": "generation",
        "sgd_responses": "generation",
    }.get(name, "classification")


def materialise(
    name: str, folder: str | Path, *, root: str | Path | None = None, limits: dict[str, int] | None = None
) -> dict[str, str]:
    """Write a named set's splits as data files under ``folder``; ``limits`` keeps the first N per split."""
    folder = Path(folder)
    files = {}
    for split, examples in load_public(name, root).items():
        if limits and split in limits:
            examples = examples[: limits[split]]
        files[split] = str(write_examples(folder / split, examples, task=task_of(name)))
    return files
