"""Valuing prompt-response pairs: the mismatched share from a mixture of gains, and swapped responses found."""

import csv
import json

import numpy as np

import autoft
from autoft.autonomous import value
from autoft.selection.pairs import mixture_share


def test_the_mixture_share_recovers_the_mismatched_share_and_ranks_them_first():
    rng = np.random.default_rng(0)
    matched, mismatched = rng.normal(2.0, 0.5, 200), rng.normal(0.0, 0.5, 200)
    truth = rng.random(1000) < 0.3
    gains = np.where(truth, rng.normal(0.0, 0.5, 1000), rng.normal(2.0, 0.5, 1000))
    share, posterior = mixture_share(gains, matched, mismatched)
    assert abs(share - truth.mean()) < 0.04
    top = np.argsort(-posterior)[: truth.sum()]
    assert truth[top].mean() > 0.9
    share, _ = mixture_share(rng.normal(2.0, 0.5, 500), matched, mismatched)  # clean data
    assert share < 0.05


WORDS = ["apple", "river", "stone", "cloud", "green", "music", "paper", "light", "sugar", "tiger"]


def test_value_finds_the_responses_swapped_between_prompts(tmp_path, tiny_gpt2):
    """A tiny GPT-2 first learns that 'say X' is answered by X; on new data with 30% of the responses swapped
    between prompts (the rate is not given), autoft value estimates the share and flags the swapped pairs."""
    def write(name, rows):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return str(path)

    pairs = [{"prompt": f"say {w}", "response": w} for w in WORDS]
    base = autoft.train({"task": "generation", "model": str(tiny_gpt2), "output_dir": str(tmp_path / "base"),
                         "data": {"train": write("learn", pairs * 12), "validation": write("learn_val", pairs)},
                         "training": {"epochs": 6, "batch_size": 8, "learning_rate": 3e-3, "peft": None,
                                      "progress": False}})
    rng = np.random.default_rng(1)
    rows, swapped = [], []
    for i in range(60):
        word = WORDS[i % len(WORDS)]
        wrong = rng.random() < 0.3
        response = WORDS[(i + 1 + rng.integers(len(WORDS) - 1)) % len(WORDS)] if wrong else word
        rows.append({"prompt": f"say {word}", "response": response})
        swapped.append(wrong and response != word)
    config = {"task": "generation", "model": str(base.path / "model"), "output_dir": str(tmp_path / "values"),
              "data": {"train": write("new", rows), "validation": write("new_val", pairs * 2)}}
    import yaml

    from autoft.cli import main

    (tmp_path / "values.yaml").write_text(yaml.safe_dump(config))
    assert main(["value", str(tmp_path / "values.yaml"), "--show", "3"]) == 0
    path = tmp_path / "values" / "data_values.csv"
    assert value(config) == path
    noise = json.loads((tmp_path / "values" / "noise.json").read_text())
    assert abs(noise["rate"] - np.mean(swapped)) < 0.12, noise
    assert noise["matched_gain"] > noise["mismatched_gain"]
    table = list(csv.DictReader(path.open()))
    flagged = [int(r["row_id"]) for r in table if r["flagged"] == "True"]
    assert flagged and np.mean([swapped[i] for i in flagged]) >= 0.8
    assert float(table[0]["mismatch_probability"]) >= float(table[-1]["mismatch_probability"])  # worst first
