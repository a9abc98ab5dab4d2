"""autoft report: one self-contained page, looked at in headless Chromium (every plot renders, the tables hold the
run's numbers, nothing is logged to the console), for the job of ``autoft run`` with both of its runs side by side
and for a run of every task family; a missing or half-written run is a one-line error."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

import autoft
from autoft.autonomous import run as full_job
from autoft.cli import main
from autoft.reporting import render
from autoft.reporting.predictions import SECTIONS
from autoft.tasks.text_metrics import normalize_answer
from tests.chromium import console_problems, look
from tests.conftest import TOPICS, synthetic_rows, tiny_config, write_conll, write_csv


def _noisy(tmp_path):
    rng = random.Random(0)
    labels = sorted({label for _, label in synthetic_rows(30, 0)})
    rows = [
        (text, rng.choice([x for x in labels if x != label]) if rng.random() < 0.3 else label)
        for text, label in synthetic_rows(150, 0)
    ]
    return {
        "train": write_csv(tmp_path / "train.csv", rows),
        "validation": write_csv(tmp_path / "val.csv", synthetic_rows(45, 1)),
        "test": write_csv(tmp_path / "test.csv", synthetic_rows(30, 2)),
    }


def test_the_report_of_an_agent_job_shows_both_runs_and_holds_their_numbers(tmp_path, tiny_model_dir):
    config = tiny_config(tiny_model_dir, _noisy(tmp_path), tmp_path / "job", epochs=2)
    config["selection"] = {"policy": "exp3", "drop_fraction": 0.3}
    comparison = full_job(config)
    page = tmp_path / "job" / "report.html"
    assert comparison["report"] == str(page) and page.is_file()  # autoft run writes it
    seen = look(page, tmp_path)
    assert not console_problems(seen), console_problems(seen)
    assert {"learning-curves", "rewards", "actions", "values", "confusion"} <= set(seen["figures"])
    assert seen["sizes"] and all(w > 50 and h > 50 for w, h in seen["sizes"]), seen["sizes"]
    table = {row[0]: row[1:] for row in seen["tables"]["before-after"][1:]}
    for key in ("macro_f1", "accuracy"):
        plain, agent = comparison["plain"]["test"][key], comparison["autonomous"]["test"][key]
        assert table[key][:2] == [f"{plain:.4f}", f"{agent:.4f}"], (key, table[key])
    noise = json.loads((tmp_path / "job" / "noise.json").read_text())
    assert dict(seen["tables"]["noise"][1:])["estimated noise rate"] == f"{noise['rate']:.4f}"
    suspects = seen["tables"]["suspects"]
    assert suspects[0][:4] == ["given class", "text", "given label", "suggested label"] and len(suspects) > 3
    # Both runs side by side: the summary, each run's epochs, both learning curves and both confusion matrices.
    summary = {row[0]: row[1:] for row in seen["tables"]["summary"]}
    assert summary["run"] == ["plain fine-tuning", "autonomous (exp3)"] and summary["policy"] == ["none", "exp3"]
    for name in ("plain", "autonomous"):
        epochs = json.loads((tmp_path / "job" / name / "metrics.json").read_text())["epochs"]
        assert [row[0] for row in seen["tables"][f"epochs-{name}"][1:]] == [str(e["epoch"]) for e in epochs]
        assert [row[-1] for row in seen["tables"][f"epochs-{name}"][1:]] == [str(e["samples"]) for e in epochs]
    assert "plain fine-tuning: training" in seen["texts"]["learning-curves"]
    assert "autonomous (exp3): training" in seen["texts"]["learning-curves"]
    for name, title in (("plain", "plain fine-tuning"), ("autonomous", "autonomous (exp3)")):
        accuracy = comparison[name]["test"]["accuracy"]
        assert f"{title}: 30 test samples, accuracy {accuracy:.4f}" in seen["texts"]["confusion"]
    if isinstance(comparison.get("better"), dict):  # the run a command given this folder uses, when the job names it
        assert f"<b>{comparison['better']['run']}</b> run, the better on validation" in page.read_text()
    # autoft report rewrites it; a single run directory has a page too.
    page.unlink()
    assert main(["report", str(tmp_path / "job")]) == 0 and page.is_file()
    assert main(["report", str(tmp_path / "job" / "plain")]) == 0
    single = look(tmp_path / "job" / "plain" / "report.html", tmp_path)
    assert "confusion" in single["figures"] and "rewards" not in single["figures"] and "epochs" in single["tables"]
    assert "autonomous" not in single["texts"]["learning-curves"] and not console_problems(single)


# --- every task family: a tiny run of one epoch on a few rows, its page opened in Chromium ------------------------


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _label_sets(n, seed):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        topics = sorted(rng.sample(sorted(TOPICS), k=i % 3 + 1))
        words = [w for t in topics for w in rng.choices(TOPICS[t], k=3)]
        rows.append((" ".join(words), "|".join(topics)))
    return rows


def _relations(n):
    rows = [
        ("the <e1>fire</e1> caused the <e2>smoke</e2>", "Cause-Effect(e1,e2)"),
        ("the <e1>smoke</e1> came from the <e2>fire</e2>", "Cause-Effect(e2,e1)"),
        ("the <e1>cup</e1> and the <e2>table</e2>", "Other"),
    ]
    return [rows[i % 3] for i in range(n)]


def _questions(n, seed):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        name, city = rng.choice(["Anna", "Bruno", "Carla", "Hugo"]), rng.choice(["Paris", "Rome", "Oslo", "Lima"])
        context = f'{name} was born in {city} & moved <later> to a "bigger" town.'  # characters HTML escapes
        rows.append(
            {
                "context": context,
                "question": f"Where was {name} born?",
                "answers": [{"text": city, "answer_start": context.index(city)}],
            }
        )
    return rows


def _family_data(task, folder):
    """Train, validation and test files of ``task``: a few rows each (the test set 6 rows, all shown)."""
    if task == "classification":
        return {
            split: write_csv(folder / f"{split}.csv", synthetic_rows(n, seed))
            for split, n, seed in (("train", 24, 0), ("validation", 6, 1), ("test", 6, 2))
        }
    if task == "multi-label-classification":
        return {
            split: write_csv(folder / f"{split}.csv", _label_sets(n, seed))
            for split, n, seed in (("train", 24, 0), ("validation", 6, 1), ("test", 6, 2))
        }
    if task == "token-classification":
        return {
            split: write_conll(folder / f"{split}.conll", copies)
            for split, copies in (("train", 4), ("validation", 1), ("test", 1))
        }
    if task == "relation-extraction":
        return {
            split: write_csv(folder / f"{split}.csv", _relations(n))
            for split, n in (("train", 24), ("validation", 6), ("test", 6))
        }
    if task == "question-answering":
        return {
            split: _jsonl(folder / f"{split}.jsonl", _questions(n, seed))
            for split, n, seed in (("train", 16, 0), ("validation", 6, 1), ("test", 6, 2))
        }
    words = ["apple", "river", "stone", "cloud", "green", "music"]
    key, value = ("prompt", "response") if task == "generation" else ("source", "target")
    return {
        split: _jsonl(
            folder / f"{split}.jsonl", [{key: f"say {w}" if task == "generation" else w, value: w} for w in words[:n]]
        )
        for split, n in (("train", 6), ("validation", 3), ("test", 6))
    }


FAMILIES = [
    "classification",
    "multi-label-classification",
    "token-classification",
    "relation-extraction",
    "question-answering",
    "generation",
    "seq2seq",
]
MODELS = {"generation": "tiny_gpt2", "seq2seq": "tiny_t5"}


@pytest.mark.parametrize("task", FAMILIES)
def test_the_report_of_every_task_family_opens_without_console_errors(task, tmp_path, request):
    model = request.getfixturevalue(MODELS.get(task, "tiny_model_dir"))
    config = tiny_config(
        model, _family_data(task, tmp_path), tmp_path / "run", task=task, epochs=1, batch_size=8, max_length=48
    )
    if task in ("generation", "seq2seq"):
        config["generation"] = {"max_new_tokens": 3}
        config["training"].update(learning_rate=1e-2, peft=None)  # a tiny model trains whole, faster than LoRA
    if task == "question-answering":  # through autoft run, which fine-tunes once and compares with the model before
        page = Path(full_job(config)["report"])
        folder = tmp_path / "run" / "plain"
    else:
        folder = autoft.train(config).path
        assert main(["report", str(folder)]) == 0
        page = folder / "report.html"
    metrics = json.loads((folder / "metrics.json").read_text())
    predictions = [json.loads(line) for line in (folder / "test_predictions.jsonl").open()]
    # The same run twice as the plain and autonomous runs of a job: every section shows both side by side.
    job = tmp_path / "job"
    for name in ("plain", "autonomous"):
        shutil.copytree(folder, job / name)
    scores = {"test": {k: v for k, v in metrics["test"].items() if not isinstance(v, dict)}, "wall_seconds": 1.0}
    (job / "comparison.json").write_text(
        json.dumps({"policy": "exp3", "plain": scores, "autonomous": scores, "zero_shot": metrics["zero_shot"]})
    )
    both = render(job)
    section = both[both.index(f"<h2>{SECTIONS[task][0]}") :]
    assert "plain fine-tuning" in section and "autonomous (exp3)" in section, section[:2000]
    assert "plain fine-tuning: training" in both and "autonomous (exp3): training" in both
    # The run's own page, in Chromium (the test is skipped here without it).
    seen = look(page, tmp_path)
    assert not console_problems(seen), console_problems(seen)
    assert "learning-curves" in seen["figures"] and all(w > 50 and h > 50 for w, h in seen["sizes"]), seen["sizes"]
    before_after = {row[0]: row[1:] for row in seen["tables"]["before-after"][1:]}
    for key, value in metrics["test"].items():
        if isinstance(value, float):
            assert before_after[key][-1 if len(before_after[key]) == 1 else 1] == f"{value:.4f}", (key, before_after)
    CHECKS[task](seen, metrics, predictions, page.read_text(encoding="utf-8"))


def _check_one_label(seen, metrics, predictions, page):
    assert f"6 test samples, accuracy {metrics['test']['accuracy']:.4f}" in seen["texts"]["confusion"]
    wrong = [p for p in predictions if p["prediction"] != p["gold"]]
    assert len(seen["tables"].get("mistakes", [[]])) - 1 == len(wrong)


def _check_label_sets(seen, metrics, predictions, page):
    assert "label-scores" in seen["figures"] and "food (" in seen["texts"]["label-scores"]
    outputs = seen["tables"]["outputs"]
    assert outputs[0] == ["text", "gold labels", "predicted: fine-tuned"]
    assert [row[1:] for row in outputs[1:]] == [
        [", ".join(p["gold"]) or "(none)", ", ".join(p["prediction"]) or "(none)"] for p in predictions
    ]


def _check_entities(seen, metrics, predictions, page):
    examples = seen["tables"]["ner-examples"]
    assert examples[0] == ["gold entities", "predicted entities"]
    assert len(examples) > 1 and any("PER" in cell for cell in examples[1])
    assert '<mark class="gold"' in page


def _check_answers(seen, metrics, predictions, page):
    outputs = seen["tables"]["outputs"]
    assert outputs[0] == ["question", "context", "gold answers", "before (zero-shot)", "after", "exact match"]
    assert [row[0] for row in outputs[1:]] == [p["question"] for p in predictions]
    assert [row[2] for row in outputs[1:]] == [p["gold"][0]["text"] for p in predictions]
    assert [row[4] for row in outputs[1:]] == [p["prediction"].strip() for p in predictions]
    assert all(row[1].count(p["gold"][0]["text"]) >= 1 and "&" in row[1] for row, p in zip(outputs[1:], predictions))
    exact = [row[5] == "yes" for row in outputs[1:]]
    assert sum(exact) / len(exact) == pytest.approx(metrics["test"]["exact_match"])
    assert exact == [normalize_answer(p["prediction"]) == normalize_answer(p["gold"][0]["text"]) for p in predictions]


def _check_outputs(seen, metrics, predictions, page):
    outputs = seen["tables"]["outputs"]
    assert outputs[0] == ["prompt", "reference", "before (zero-shot)", "after"]
    assert [row[0] for row in outputs[1:]] == [p["input"] for p in predictions]
    assert [row[3] for row in outputs[1:]] == [p["prediction"].strip() for p in predictions]
    assert "zero_shot" in predictions[0]
    zero = {row[0]: row[1] for row in seen["tables"]["before-after"][1:]}
    assert zero["loss"] == f"{metrics['zero_shot']['loss']:.4f}"


CHECKS = {
    "classification": _check_one_label,
    "relation-extraction": _check_one_label,
    "multi-label-classification": _check_label_sets,
    "token-classification": _check_entities,
    "question-answering": _check_answers,
    "generation": _check_outputs,
    "seq2seq": _check_outputs,
}


def test_a_missing_or_half_written_run_is_one_line_exit_2(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "run directory not found" in capsys.readouterr().err
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.yaml").write_text("task: classification\n")
    assert main(["report", str(tmp_path / "half")]) == 2
    err = capsys.readouterr().err
    assert "missing metrics.json" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "half" / "metrics.json").write_text('{"task": ')
    assert main(["report", str(tmp_path / "half")]) == 2
    assert "damaged" in capsys.readouterr().err and not (tmp_path / "half" / "report.html").exists()
