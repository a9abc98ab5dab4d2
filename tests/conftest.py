"""Shared fixtures: a tiny random BERT (built from a config, trains a step in milliseconds) and data."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _embedding_cache(tmp_path_factory):
    """Keep the frozen-encoder embedding cache out of the user's home."""
    os.environ["AUTOFT_CACHE"] = str(tmp_path_factory.mktemp("autoft-cache"))


def require_shared(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (it lies in ../shared/data beside the checkout)")
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer, 64-hidden BERT (no dropout) with the packaged MiniLM tokenizer, in save_pretrained format."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from autoft.modeling.load import resolve_model_name

    path = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_name("default"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=256,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory):
    """A 2-layer, 64-hidden GPT-2 with the packaged MiniLM tokenizer (no chat template), save_pretrained format."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from autoft.modeling.load import resolve_model_name

    path = tmp_path_factory.mktemp("tiny-gpt2")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_name("default"))
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=64,
        n_layer=2,
        n_head=4,
        n_positions=128,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        eos_token_id=tokenizer.sep_token_id,
        bos_token_id=tokenizer.cls_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(path)
    tokenizer.eos_token = tokenizer.sep_token
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_t5(tmp_path_factory) -> Path:
    """A 2-layer, 64-wide T5 (no dropout) with the packaged MiniLM tokenizer, save_pretrained format."""
    import torch
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    from autoft.modeling.load import resolve_model_name

    path = tmp_path_factory.mktemp("tiny-t5")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_name("default"))
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=64,
        d_kv=16,
        d_ff=128,
        num_layers=2,
        num_heads=4,
        dropout_rate=0.0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.sep_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    T5ForConditionalGeneration(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def write_csv(path: Path, rows: list[tuple[str, str]], header: tuple[str, str] = ("text", "label")) -> Path:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows)
    return path


TOPICS = {
    "sport": ["match", "goal", "team", "league", "coach", "score", "player", "season"],
    "tech": ["software", "chip", "computer", "internet", "phone", "code", "robot", "data"],
    "food": ["pizza", "bread", "cheese", "soup", "recipe", "dinner", "salad", "cake"],
}


def synthetic_rows(n: int, seed: int) -> list[tuple[str, str]]:
    """Easily separable three-topic sentences."""
    import random

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = list(TOPICS)[i % 3]
        words = rng.choices(TOPICS[label], k=6) + rng.choices(["the", "a", "and", "of", "today"], k=3)
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


@pytest.fixture()
def classification_files(tmp_path) -> dict[str, Path]:
    return {
        "train": write_csv(tmp_path / "train.csv", synthetic_rows(90, 0)),
        "validation": write_csv(tmp_path / "val.csv", synthetic_rows(30, 1)),
        "test": write_csv(tmp_path / "test.csv", synthetic_rows(30, 2)),
    }


NER_SENTENCES = [
    ("Alice lives in Paris", ["B-PER", "O", "O", "B-LOC"]),
    ("Bob works at Google", ["B-PER", "O", "O", "B-ORG"]),
    ("Carol Smith visited New York", ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]),
    ("Microsoft hired Dave", ["B-ORG", "O", "B-PER"]),
    ("the weather is nice", ["O", "O", "O", "O"]),
]


def write_conll(path: Path, copies: int = 6) -> Path:
    lines = []
    for _ in range(copies):
        for text, tags in NER_SENTENCES:
            lines.extend(f"{word}\t{tag}" for word, tag in zip(text.split(), tags))
            lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture()
def ner_files(tmp_path) -> dict[str, Path]:
    return {
        "train": write_conll(tmp_path / "train.conll", 8),
        "validation": write_conll(tmp_path / "val.conll", 2),
        "test": write_conll(tmp_path / "test.conll", 2),
    }


def tiny_config(model_dir: Path, files: dict[str, Path], out: Path, task: str = "classification", **training) -> dict:
    return {
        "task": task,
        "model": str(model_dir),
        "data": {k: str(v) for k, v in files.items()},
        "training": {
            "epochs": 2,
            "batch_size": 8,
            "max_length": 32,
            "learning_rate": 1e-3,
            "progress": False,
            **training,
        },
        "output_dir": str(out),
    }
