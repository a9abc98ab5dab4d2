"""Valuing prompt-response pairs: the mismatched share from a mixture of gains, and swapped responses found."""

import csv
import json

import numpy as np
import pytest

import autoft
from autoft.autonomous import value
from autoft.errors import ConfigError
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


def _write(folder, name, rows):
    path = folder / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture(scope="module")
def say_model(tmp_path_factory, tiny_gpt2):
    """A tiny GPT-2 that has learned that 'say X' is answered by X."""
    folder = tmp_path_factory.mktemp("say")
    pairs = [{"prompt": f"say {w}", "response": w} for w in WORDS]
    base = autoft.train(
        {
            "task": "generation",
            "model": str(tiny_gpt2),
            "output_dir": str(folder / "base"),
            "data": {"train": _write(folder, "learn", pairs * 12), "validation": _write(folder, "learn_val", pairs)},
            "training": {"epochs": 6, "batch_size": 8, "learning_rate": 3e-3, "peft": None, "progress": False},
        }
    )
    return base.path / "model"


def _swapped_data(folder, n=120, seed=1):
    """New 'say X' data with 30% of the responses swapped between prompts; the truth per row."""
    rng = np.random.default_rng(seed)
    rows, swapped = [], []
    for i in range(n):
        word = WORDS[i % len(WORDS)]
        wrong = rng.random() < 0.3
        response = WORDS[(i + 1 + rng.integers(len(WORDS) - 1)) % len(WORDS)] if wrong else word
        rows.append({"prompt": f"say {word}", "response": response})
        swapped.append(wrong and response != word)
    pairs = [{"prompt": f"say {w}", "response": w} for w in WORDS]
    return {
        "train": _write(folder, "new", rows),
        "validation": _write(folder, "new_val", pairs * 4),
        "test": _write(folder, "new_test", pairs),
    }, np.array(swapped)


def test_value_finds_the_responses_swapped_between_prompts(tmp_path, say_model, monkeypatch):
    """On new data with 30% of the responses swapped between prompts (the rate is not given), autoft value
    estimates the share and flags the swapped pairs (enough of them to act on: ``IDLE_ROWS``)."""
    data, swapped = _swapped_data(tmp_path, n=200)
    data["validation"] = _write(tmp_path, "val", [{"prompt": f"say {w}", "response": w} for w in WORDS] * 2)
    config = {
        "task": "generation",
        "model": str(say_model),
        "output_dir": str(tmp_path / "values"),
        "data": {"train": data["train"], "validation": data["validation"]},
    }
    import yaml

    from autoft.cli import main

    (tmp_path / "values.yaml").write_text(yaml.safe_dump(config))
    assert main(["value", str(tmp_path / "values.yaml"), "--show", "3"]) == 0
    path = tmp_path / "values" / "data_values.csv"
    first = path.read_text()

    def no_model(*args, **kwargs):
        raise AssertionError("the base model's losses of the same pairs come from the cache")

    monkeypatch.setattr("autoft.selection.pairs.load_model", no_model)
    assert value(config) == path and path.read_text() == first
    noise = json.loads((tmp_path / "values" / "noise.json").read_text())
    assert abs(noise["rate"] - np.mean(swapped)) < 0.12, noise
    assert noise["matched_gain"] > noise["mismatched_gain"]
    table = list(csv.DictReader(path.open()))
    flagged = [int(r["row_id"]) for r in table if r["flagged"] == "True"]
    assert flagged and np.mean([swapped[i] for i in flagged]) >= 0.8
    assert float(table[0]["mismatch_probability"]) >= float(table[-1]["mismatch_probability"])  # worst first


@pytest.mark.parametrize("policy", ["reinforce", "exp3"])
def test_the_agent_trains_on_the_matched_pairs_and_learns_from_the_validation_loss(tmp_path, say_model, policy):
    """An agent run on generative data leaves out the swapped pairs it estimates (the share is not given), is
    rewarded by the fall of its validation loss a few times an epoch, and its policy moves with the rewards."""
    data, swapped = _swapped_data(tmp_path)
    run = autoft.train(
        {
            "task": "generation",
            "model": str(say_model),
            "output_dir": str(tmp_path / "agent"),
            "data": data,
            "selection": {"policy": policy},
            "training": {"epochs": 2, "batch_size": 8, "learning_rate": 1e-3, "peft": None, "progress": False},
        }
    )
    table = list(csv.DictReader((run.path / "data_values.csv").open()))
    assert len(table) == len(swapped)
    flagged = np.array([r["flagged"] == "True" for r in sorted(table, key=lambda r: int(r["row_id"]))])
    assert flagged.any() and swapped[flagged].mean() >= 0.8
    never = np.array([r["times_trained"] == "0" for r in sorted(table, key=lambda r: int(r["row_id"]))])
    assert swapped[never].mean() > swapped.mean()  # what it left out while training was mostly swapped
    decisions = [json.loads(line) for line in (run.path / "decisions.jsonl").open()]
    rewards = [d for d in decisions if d.get("event") == "reward"]
    assert len(rewards) >= 4 and all("step" in d for d in rewards)  # several rewards an epoch, not one
    assert any(d.get("policy_update") is not None or d["reward"] != 0 for d in rewards[1:])
    assert run.metrics["noise"]["units"] == "prompt-response pairs"
    assert 0.1 < run.metrics["noise"]["rate"] < 0.5
    resolved = autoft.load(run.path).config.selection
    assert resolved.drop_fraction == run.metrics["noise"]["drop_fraction"] > 0


def test_the_agent_refuses_what_a_response_cannot_have(tmp_path, say_model):
    data, _ = _swapped_data(tmp_path)
    for selection, words in (
        ({"policy": "reinforce", "relabel_confidence": 0.9}, "never replaced"),
        ({"policy": "reinforce", "mode": "mask"}, "mask"),
    ):
        with pytest.raises(ConfigError, match=words):
            autoft.train(
                {
                    "task": "generation",
                    "model": str(say_model),
                    "output_dir": str(tmp_path / "x"),
                    "data": data,
                    "selection": selection,
                    "training": {"epochs": 1, "progress": False},
                },
                overwrite=True,
            )
