"""relation-extraction: SemEval-2010 Task 8 files, entity-start pooling, the official score, a whole run."""

import csv
import random
import shutil
import subprocess

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

import autoft
from autoft.cli import main
from autoft.data.loading import Example, load_examples
from autoft.errors import DataError
from autoft.modeling.load import resolve_model_name
from autoft.tasks.relation import RelationExtractionAdapter, official_scores
from autoft.training.callbacks import TrainerCallback
from benchmarks.public_data import DEFAULT_ROOT
from tests.conftest import tiny_config

SEMEVAL = DEFAULT_ROOT / "semeval2010_task8"


def write_semeval(path, rows, with_labels=True):
    lines = []
    for i, (sentence, relation) in enumerate(rows, 1):
        lines += [f'{i}\t"{sentence}"', *([relation] if with_labels else []), "Comment:", ""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def adapter():
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_name("default"))
    return RelationExtractionAdapter(["Cause-Effect(e1,e2)", "Cause-Effect(e2,e1)", "Other"], tokenizer, max_length=32)


def test_semeval_files_load_and_bad_markers_name_the_line(tmp_path):
    path = write_semeval(
        tmp_path / "train.txt",
        [
            ("The <e1>fire</e1> caused <e2>smoke</e2>.", "Cause-Effect(e1,e2)"),
            ("A <e1>cup</e1> on a <e2>table</e2>.", "Other"),
        ],
    )
    examples = load_examples(path, task="relation-extraction")
    assert [(e.text, e.label, e.origin) for e in examples] == [
        ("The <e1>fire</e1> caused <e2>smoke</e2>.", "Cause-Effect(e1,e2)", f"{path}:1"),
        ("A <e1>cup</e1> on a <e2>table</e2>.", "Other", f"{path}:5"),
    ]
    bad = write_semeval(tmp_path / "bad.txt", [("ok <e1>a</e1> <e2>b</e2>", "Other"), ("no <e1>a</e1> here", "Other")])
    with pytest.raises(DataError, match=r"bad.txt:5: expected one <e2>"):
        load_examples(bad, task="relation-extraction")
    with pytest.raises(DataError, match="relation extraction data, but task is 'classification'"):
        load_examples(path, task="classification", fmt="semeval")
    # A table may give character offsets (span columns) instead of inline markers.
    import json

    table = tmp_path / "spans.jsonl"
    table.write_text(
        json.dumps(
            {
                "text": "The fire caused smoke.",
                "label": "Cause-Effect(e1,e2)",
                "e1_start": 4,
                "e1_end": 8,
                "e2_start": 16,
                "e2_end": 21,
            }
        )
        + "\n"
        + json.dumps(
            {
                "text": "smoke after fire",
                "label": "Cause-Effect(e2,e1)",
                "e1_start": 0,
                "e1_end": 5,
                "e2_start": 12,
                "e2_end": 16,
            }
        )
        + "\n"
    )
    assert [e.text for e in load_examples(table, task="relation-extraction")] == [
        "The <e1>fire</e1> caused <e2>smoke</e2>.",
        "<e1>smoke</e1> after <e2>fire</e2>",
    ]
    table.write_text(
        json.dumps({"text": "The fire", "label": "Other", "e1_start": 4, "e1_end": 8, "e2_start": 6, "e2_end": 8})
        + "\n"
    )
    with pytest.raises(DataError, match=r"spans.jsonl:1: entity spans 4-8 and 6-8 must .* not overlap"):
        load_examples(table, task="relation-extraction")
    # Inputs to predict: a SemEval file without relations, or one marked sentence per line.
    from autoft.data.loading import read_texts

    unlabelled = write_semeval(tmp_path / "test.txt", [("The <e1>fire</e1> caused <e2>smoke</e2>.", "")], False)
    assert [e.text for e in read_texts(unlabelled, task="relation-extraction")] == [examples[0].text]
    (tmp_path / "lines.txt").write_text("The <e1>fire</e1> caused <e2>smoke</e2>.\n\nno markers here\n")
    with pytest.raises(DataError, match=r"lines.txt:3: expected one <e1>"):
        read_texts(tmp_path / "lines.txt", task="relation-extraction")


def test_the_relation_is_read_at_the_two_entity_starts(adapter):
    example = Example("The <e1>fire</e1> caused <e2>smoke</e2>.", "Cause-Effect(e2,e1)")
    feature = adapter.encode([example])[0]
    tokens = adapter.tokenizer.convert_ids_to_tokens(feature["input_ids"])
    assert "<e1>" in tokens and "</e2>" in tokens  # markers are single tokens
    marked = [tokens[p] for p, x in enumerate(feature["labels"]) if x != -100]
    assert marked == ["<e1>", "<e2>"] and {x for x in feature["labels"] if x != -100} == {1}
    batch = adapter.collate([feature])
    logits = torch.zeros(1, batch["input_ids"].shape[1], 3)
    e1, e2 = (p for p, x in enumerate(feature["labels"]) if x != -100)
    logits[0, e1, 1], logits[0, e2, 1], logits[0, 0, 0] = 2.0, 3.0, 50.0  # elsewhere does not count
    probabilities = adapter.batch_probabilities(logits, batch)[0]
    assert adapter.decode(probabilities) == "Cause-Effect(e2,e1)"
    np.testing.assert_allclose(probabilities, torch.softmax(torch.tensor([0.0, 5.0, 0.0]), 0).numpy(), rtol=1e-6)
    loss, units = adapter.per_sample_loss(logits, batch["labels"])
    assert loss.item() == pytest.approx(-np.log(probabilities[1]), rel=1e-5) and units.item() == 1


@pytest.mark.skipif(
    shutil.which("perl") is None or not SEMEVAL.is_dir(),
    reason="needs perl and ../shared/data/semeval2010_task8 (the official scorer)",
)
def test_the_score_equals_the_official_scorer(tmp_path):
    gold = [e.label for e in load_examples(SEMEVAL / "TEST_FILE_FULL.TXT", task="relation-extraction")][:600]
    labels = sorted(set(gold))
    rng = random.Random(0)  # a noisy system: right 60%, else a random label (some only the direction wrong)
    predicted = [g if rng.random() < 0.6 else rng.choice(labels) for g in gold]
    for name, rows in (("key.txt", gold), ("answer.txt", predicted)):
        (tmp_path / name).write_text("".join(f"{i}\t{r}\n" for i, r in enumerate(rows, 1)))
    out = subprocess.run(
        [
            "perl",
            str(SEMEVAL / "semeval2010_task8_scorer-v1.2.pl"),
            str(tmp_path / "answer.txt"),
            str(tmp_path / "key.txt"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    official = out.split("(9+1)-WAY EVALUATION TAKING DIRECTIONALITY INTO ACCOUNT")[1]
    macro = float(official.split("MACRO-averaged result (excluding Other):")[1].split("F1 =")[1].split("%")[0])
    micro = float(official.split("Micro-averaged result (excluding Other):")[1].split("F1 =")[1].split("%")[0])
    scores = official_scores(gold, predicted)
    assert 100 * scores["macro_f1"] == pytest.approx(macro, abs=0.006)
    assert 100 * scores["micro_f1"] == pytest.approx(micro, abs=0.006)


def test_a_relation_run_learns_direction_and_reloads(tiny_model_dir, tmp_path):
    rng = random.Random(0)
    causes, effects = ["fire", "storm", "virus", "spark"], ["smoke", "flood", "fever", "blaze"]

    def rows(n):
        out = []
        for i in range(n):
            c, e = rng.choice(causes), rng.choice(effects)
            if i % 3 == 0:
                out.append((f"the <e1>{c}</e1> caused the <e2>{e}</e2> today", "Cause-Effect(e1,e2)"))
            elif i % 3 == 1:
                out.append((f"the <e1>{e}</e1> came from the <e2>{c}</e2> today", "Cause-Effect(e2,e1)"))
            else:
                out.append((f"the <e1>{c}</e1> and the <e2>{e}</e2> were seen", "Other"))
        return out

    files = {
        "train": write_semeval(tmp_path / "train.txt", rows(150)),
        "validation": write_semeval(tmp_path / "val.txt", rows(30)),
        "test": write_semeval(tmp_path / "test.txt", rows(30)),
    }
    run = autoft.train(
        tiny_config(
            tiny_model_dir,
            files,
            tmp_path / "run",
            task="relation-extraction",
            epochs=6,
            learning_rate=3e-3,
            batch_size=16,
        )
    )
    assert run.metrics["test"]["macro_f1"] > 0.9, run.metrics["test"]
    loaded = autoft.load(tmp_path / "run")
    texts = [
        "the <e1>storm</e1> caused the <e2>flood</e2> today",
        "the <e1>fever</e1> came from the <e2>virus</e2> today",
    ]
    assert [p["label"] for p in loaded.predict(texts)] == ["Cause-Effect(e1,e2)", "Cause-Effect(e2,e1)"]
    assert loaded.predict(texts) == run.predict(texts)
    # The agent values relation samples as it does classification ones: flipped directions are the noise (enough
    # of them to act on: selection.valuation.IDLE_ROWS).
    noisy = rows_clean = rows(300)
    flipped = set(range(0, 300, 5))
    noisy = [
        (
            t,
            {
                "Cause-Effect(e1,e2)": "Cause-Effect(e2,e1)",
                "Cause-Effect(e2,e1)": "Cause-Effect(e1,e2)",
                "Other": "Other",
            }[r]
            if i in flipped
            else r,
        )
        for i, (t, r) in enumerate(noisy)
    ]
    files["train"] = write_semeval(tmp_path / "noisy.txt", noisy)
    config = tiny_config(
        tiny_model_dir,
        files,
        tmp_path / "agent",
        task="relation-extraction",
        epochs=4,
        learning_rate=3e-3,
        batch_size=16,
    )
    config["selection"] = {"policy": "exp3"}
    agent = autoft.train(config)
    with (tmp_path / "agent" / "data_values.csv").open(newline="") as stream:
        values = {int(r["row_id"]): r for r in csv.DictReader(stream)}
    wrong = [i for i in flipped if noisy[i][1] != "Other"]  # the flips that changed a label
    assert len(values) == 300 and agent.metrics["test"]["macro_f1"] > 0.5
    assert sum(values[i]["flagged"] == "True" for i in wrong) >= 0.8 * len(wrong)
    true_relation = {i: r for i, (_, r) in enumerate(rows_clean)}
    assert sum(values[i]["suggested_label"] == true_relation[i] for i in wrong) >= 0.8 * len(wrong)


def test_a_lora_relation_run_keeps_its_marker_embeddings(tiny_model_dir, tmp_path):
    rows = [
        ("the <e1>fire</e1> caused the <e2>smoke</e2>", "Cause-Effect(e1,e2)"),
        ("the <e1>cup</e1> on the <e2>table</e2>", "Other"),
    ] * 20
    files = {
        "train": write_semeval(tmp_path / "t.txt", rows),
        "validation": write_semeval(tmp_path / "v.txt", rows[:10]),
    }
    run = autoft.train(tiny_config(tiny_model_dir, files, tmp_path / "run", task="relation-extraction", peft="lora"))
    texts = [r[0] for r in rows[:2]]
    assert autoft.load(tmp_path / "run").predict(texts) == run.predict(texts)  # the grown embeddings were saved


class RepairingAgent(TrainerCallback):
    """Stands in for the agent at the end of a run: leaves out row 0 and relabels row 1 to row 0's relation."""

    valuation, decisions = None, []

    def noise_summary(self):
        return None

    def repairs(self):
        return np.array([0]), {1: 0}


def test_the_corrected_semeval_file_trains_and_markerless_inputs_are_errors(tiny_model_dir, tmp_path, capsys):
    rows = [
        ("the <e1>fire</e1> caused the <e2>smoke</e2>", "Cause-Effect(e1,e2)"),
        ("the <e1>cup</e1> on the <e2>table</e2>", "Other"),
        ("the <e1>smoke</e1> came from the <e2>fire</e2>", "Cause-Effect(e2,e1)"),
    ] * 4
    files = {
        split: write_semeval(tmp_path / f"{split}.txt", part)
        for split, part in (("train", rows), ("validation", rows), ("test", rows[:3]))
    }
    first = autoft.train(
        tiny_config(tiny_model_dir, files, tmp_path / "run", task="relation-extraction", epochs=1),
        callback=RepairingAgent(),
    )
    corrected = tmp_path / "run" / "corrected.txt"  # SemEval text under the suffix it is read back from
    assert [p.name for p in (tmp_path / "run").glob("corrected*")] == [corrected.name]
    labels = [e.label for e in load_examples(corrected, task="relation-extraction")]
    assert labels == [first.labels[0]] + [r for _, r in rows[2:]]  # row 0 left out, row 1 relabelled
    run = autoft.train(
        tiny_config(
            tiny_model_dir, {**files, "train": corrected}, tmp_path / "again", task="relation-extraction", epochs=1
        )
    )
    assert run.metrics["sizes"]["train"] == len(rows) - 1
    # A text without its entity markers has no pair to relate: an error naming the input and the marker.
    with pytest.raises(DataError, match=r"^<input>:2: expected one <e1> in the text"):
        run.predict([rows[0][0], "the fire caused the smoke"])
    with pytest.raises(DataError, match=r"^notes.csv:7: expected one </e2>"):
        run.predict([Example("the <e1>fire</e1> caused the <e2>smoke", None, "notes.csv:7")])
    (tmp_path / "inputs.csv").write_text(f"text\n{rows[0][0]}\nthe fire caused the smoke\n")
    assert main(["predict", str(tmp_path / "again"), "--input", str(tmp_path / "inputs.csv")]) == 2
    err = capsys.readouterr().err
    assert f"autoft: error: {tmp_path / 'inputs.csv'}:3: expected one <e1> in the text" in err
    assert "Traceback" not in err
