"""question-answering: SQuAD files and tables, spans through overlapping windows, the best span, a whole run."""

import json
import random

import numpy as np
import pytest
from transformers import AutoModelForQuestionAnswering, AutoTokenizer

import autoft
from autoft.data.loading import Example, load_examples, read_texts
from autoft.errors import ConfigError, DataError
from autoft.modeling.load import resolve_model_name
from autoft.tasks.qa import QuestionAnsweringAdapter
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_model_name("default"))


def squad(articles):
    """A SQuAD v1.1 document from [[(context, [(id, question, answer text, start)])]]."""
    return {
        "version": "1.1",
        "data": [
            {
                "title": f"a{a}",
                "paragraphs": [
                    {
                        "context": context,
                        "qas": [
                            {"id": qid, "question": q, "answers": [{"text": t, "answer_start": s}]}
                            for qid, q, t, s in qas
                        ],
                    }
                    for context, qas in paragraphs
                ],
            }
            for a, paragraphs in enumerate(articles)
        ],
    }


def test_squad_json_loads_with_the_line_of_each_question_and_checks_offsets(tmp_path):
    context = "Paris is the capital of France. Berlin is the capital of Germany."
    path = tmp_path / "train.json"
    path.write_text(
        json.dumps(
            squad(
                [[(context, [("q1", "Capital of France?", "Paris", 0), ("q2", "Capital of Germany?", "Berlin", 32)])]]
            ),
            indent=2,
        )
    )
    examples = load_examples(path, task="question-answering")
    lines = path.read_text().splitlines()
    assert [e.query for e in examples] == ["Capital of France?", "Capital of Germany?"]
    assert examples[1].label == [{"text": "Berlin", "start": 32}] and examples[1].text == context
    assert '"q2"' in lines[int(examples[1].origin.rpartition(":")[2]) - 1]
    path.write_text(
        json.dumps(squad([[(context, [("q1", "Capital?", "Paris", 0), ("q2", "Other?", "Berlin", 30)])]]), indent=2)
    )
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if '"q2"' in text)
    with pytest.raises(DataError, match=rf"train.json:{line}: answer 'Berlin' is not at offset 30 of its context"):
        load_examples(path, task="question-answering")
    with pytest.raises(DataError, match="question answering data, but task is 'classification'"):
        load_examples(path, task="classification", fmt="squad")


def test_tables_read_answers_as_datasets_writes_them_or_as_two_columns(tmp_path):
    rows = [
        {
            "context": "The sky is blue.",
            "question": "What colour?",
            "answers": {"text": ["blue"], "answer_start": [11]},
        },
        {"context": "Grass is green.", "question": "Grass?", "answers": [{"text": "green", "answer_start": 9}]},
    ]
    jsonl = tmp_path / "qa.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [e.label for e in load_examples(jsonl, task="question-answering")] == [
        [{"text": "blue", "start": 11}],
        [{"text": "green", "start": 9}],
    ]
    table = tmp_path / "qa.csv"
    table.write_text("passage,q,answer,answer_start\nThe sky is blue.,What colour?,blue,11\n")
    [example] = load_examples(table, task="question-answering", columns={"context": "passage", "question": "q"})
    assert (example.text, example.query, example.label) == (
        "The sky is blue.",
        "What colour?",
        [{"text": "blue", "start": 11}],
    )
    with pytest.raises(DataError, match=r"qa.csv:2: missing column 'context'"):
        load_examples(table, task="question-answering")
    table.write_text("context,question,answer,answer_start\nThe sky is blue.,What colour?,,11\n")
    with pytest.raises(DataError, match=r"qa.csv:2: empty answer text"):
        load_examples(table, task="question-answering")
    assert [e.query for e in read_texts(jsonl, task="question-answering")] == ["What colour?", "Grass?"]
    with pytest.raises(ConfigError, match="data.columns: unknown role 'prompt'"):
        autoft.config.parse_config({"task": "question-answering", "data": {"train": "x", "columns": {"prompt": "p"}}})


def test_answer_spans_are_found_in_the_window_that_holds_them(tokenizer):
    filler = " ".join(f"word{i}" for i in range(60))
    context = f"{filler} The treasure lies under the old oak tree. {filler}"
    start = context.index("the old oak")
    example = Example(context, [{"text": "the old oak tree", "start": start}], "x:1", query="Where is the treasure?")
    adapter = QuestionAnsweringAdapter([], tokenizer, max_length=48)
    [feature] = adapter.encode([example])
    assert len(feature["windows"]) > 3  # the context needs several overlapping windows
    found = []
    for window, offsets in zip(feature["windows"], feature["offsets"]):
        first, last = window["span"]
        if (first, last) == (0, 0):
            assert all(o is None or not (o[0] <= start < o[1]) for o in offsets) or offsets[-2][1] < start + 16
            continue
        found.append(context[offsets[first][0] : offsets[last][1]])
    assert found and set(found) == {"the old oak tree"}
    # finalize: logits that point at the answer's tokens in one window give back its text and offsets.
    w = next(i for i, window in enumerate(feature["windows"]) if window["span"] != (0, 0))
    logits = np.zeros((len(feature["windows"]), 48, 2), dtype=np.float32)
    first, last = feature["windows"][w]["span"]
    logits[w, first, 0] = logits[w, last, 1] = 10.0
    best = adapter.finalize(logits, feature)
    assert (best["answer"], best["start"], best["end"]) == ("the old oak tree", start, start + 16)
    assert 0.5 < best["score"] <= 1.0
    # The collated batch lays the windows out as rows and keeps which example each belongs to.
    batch = adapter.collate_indexed([feature, adapter.encode([example])[0]])
    assert batch["input_ids"].shape[0] == 2 * len(feature["windows"])
    assert batch["labels"][:, 2].tolist() == [0] * len(feature["windows"]) + [1] * len(feature["windows"])


CITIES = ["Paris", "Rome", "Oslo", "Lima", "Cairo", "Delhi", "Tokyo", "Quito", "Dakar", "Hanoi"]
NAMES = ["Anna", "Bruno", "Carla", "Dario", "Elena", "Fabio", "Gina", "Hugo", "Irene", "Jonas"]


def toy_questions(n, seed):
    """Who was born where: the answer is the city named after 'born in'."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        name, city, other = rng.choice(NAMES), rng.choice(CITIES), rng.choice(CITIES)
        context = f"{name} was born in {city} and later moved to {other} for work."
        rows.append(
            {
                "context": context,
                "question": f"Where was {name} born?",
                "answers": [{"text": city, "answer_start": context.index(city)}],
            }
        )
    return rows


def test_a_run_learns_to_answer_and_loads_in_plain_transformers(tmp_path, tiny_model_dir, monkeypatch, capsys):
    files = {}
    for split, n, seed in (("train", 160, 0), ("validation", 40, 1), ("test", 40, 2)):
        files[split] = tmp_path / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps(r) + "\n" for r in toy_questions(n, seed)))
    run = autoft.train(
        tiny_config(
            tiny_model_dir, files, tmp_path / "run", task="question-answering", epochs=8, max_length=64, batch_size=16
        )
    )
    assert run.metrics["test"]["f1"] > 0.9, run.metrics["test"]
    assert set(run.metrics["test"]) >= {"exact_match", "f1", "loss"}
    [prediction] = run.predict(
        [Example("Hugo was born in Oslo and later moved to Rome for work.", None, query="Where was Hugo born?")]
    )
    assert prediction["answer"] == "Oslo" and (prediction["start"], prediction["end"]) == (17, 21)
    model = AutoModelForQuestionAnswering.from_pretrained(tmp_path / "run" / "model")
    assert model.config.num_labels == 2
    reloaded = autoft.load(tmp_path / "run")
    assert reloaded.evaluate(files["test"])["f1"] == pytest.approx(run.metrics["test"]["f1"])
    # autoft predict reads JSON lines of context and question from stdin; a line without a question names itself.
    import io
    import sys

    from autoft.cli import main

    line = json.dumps(
        {"context": "Gina was born in Lima and later moved to Cairo for work.", "question": "Where was Gina born?"}
    )
    monkeypatch.setattr(sys, "stdin", io.StringIO(line + "\n"))
    assert main(["predict", str(tmp_path / "run")]) == 0
    assert json.loads(capsys.readouterr().out)["answer"] == "Lima"
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps({"context": "no question here"}) + "\n"))
    assert main(["predict", str(tmp_path / "run")]) == 2
    assert "<stdin>:1: missing column 'question'" in capsys.readouterr().err


def test_a_lora_run_trains_the_span_head_whole_and_reloads(tmp_path, tiny_model_dir):
    files = {}
    for split, n, seed in (("train", 48, 0), ("validation", 16, 1)):
        files[split] = tmp_path / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps(r) + "\n" for r in toy_questions(n, seed)))
    run = autoft.train(
        tiny_config(
            tiny_model_dir,
            files,
            tmp_path / "run",
            task="question-answering",
            epochs=2,
            max_length=64,
            batch_size=16,
            peft="lora",
        )
    )
    trainable = {name for name, p in run.model.named_parameters() if p.requires_grad}
    assert any("qa_outputs" in name and "lora" not in name for name in trainable)  # the head trains whole
    assert autoft.load(tmp_path / "run").evaluate(files["validation"])["f1"] == pytest.approx(
        run.metrics["validation"]["f1"]
    )
