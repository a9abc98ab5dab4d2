"""Every task family through every command (issue 25): ``autoft train``, ``run``, ``report``, ``predict``,
``evaluate``, ``export``, ``serve`` (one request), ``update`` and ``lineage`` exit 0 and write what docs/cli.md and
docs/run-directory.md say they write; each report opens in headless Chromium without a console
error; every table a command prints shows the family's own metrics with numbers.

The families come from the task registry and the commands from the CLI's parser: a new one joins the matrix (or
:data:`EXEMPT`, with its reason) or ``test_every_family_and_command_is_in_the_matrix`` fails.

The commands run in-process (``autoft.cli.main``) on tiny random models, a handful of rows and one epoch; each
family trains once for ``train`` (the run every later command reads), once for ``run`` and once for ``update``.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoft.cli import build_parser, main
from autoft.tasks.registry import TASKS
from tests.chromium import console_problems, look
from tests.conftest import tiny_config
from tests.families import FAMILIES, Family

COMMANDS = ("train", "run", "report", "predict", "evaluate", "export", "serve", "update", "lineage")
EXEMPT = {
    "value": "the agent's offline phase alone, which `run` runs for every family whose samples the agent values "
    "(its data_values.csv and noise.json are checked there); `autoft value` itself is tested in "
    "tests/selection/test_agent.py (labels) and tests/selection/test_pairs.py (prompt-response pairs)",
    "demo": "not per family: classification of the packaged BBC News with the packaged MiniLM, minutes long "
    "(tests/test_demo.py)",
    "config": "not per family: prints the config reference, which tests/test_docs.py loads and checks",
}
AGENT_SKIPS = {"question-answering", "multi-label-classification"}
"""Families whose samples the agent does not value yet, where ``run`` fine-tunes once (``plain/``) and writes no
``autonomous/``. docs/tasks.md: "On question answering the agent does not value samples yet: autoft run fine-tunes
on every question and compares the result with the model before fine-tuning"; on multi-label classification: "The
agent does not value label sets yet"."""
RUN_FILES = ("config.yaml", "labels.json", "metrics.json", "metrics.jsonl", "test_predictions.jsonl", "model")
"""docs/run-directory.md: what every run directory holds (the rest is per setting)."""
NUMBER = re.compile(r"^[-+]?\d+(\.\d+)?([eE][-+]?\d+)?$")
per_family = pytest.mark.parametrize("task", list(FAMILIES))


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One torch thread: the tiny models' operations take microseconds, and a second thread only adds its
    synchronisation, which on busy shared cores made them 35 times slower (a 64-wide linear layer: 4.5 ms a
    call with two threads, 0.13 ms with one, on this machine under load)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass
class Outcome:
    code: int | str
    out: str
    err: str


class Job:
    """One family's trip through the commands: each command runs once (``autoft.cli.main``), its outcome kept for
    the checks of every command that reads what it wrote."""

    def __init__(self, family: Family, model: Path, folder: Path) -> None:
        self.family, self.folder = family, folder
        (folder / "data").mkdir()
        self.data = family.write(folder / "data")
        config = tiny_config(model, self.data.files, folder / "train", task=family.task, epochs=1)
        self.config = folder / "config.yaml"
        self.config.write_text(yaml.safe_dump({**config, **family.settings}), encoding="utf-8")
        self.train_dir, self.job_dir = folder / "train", folder / "job"
        self.outcomes: dict[str, Outcome] = {}
        self.capsys: Any = None

    def cli(self, *argv: str) -> Outcome:
        """``autoft ARGV`` in this process: its exit code (an exception's traceback as ``err``) and output, read
        through the current test's ``capsys``."""
        self.capsys.readouterr()
        try:
            code: int | str = main(list(argv))
            tail = ""
        except (Exception, SystemExit):  # noqa: BLE001 - a crash (or argparse's exit) fails this cell, not the matrix
            code, tail = "exception", traceback.format_exc()
        captured = self.capsys.readouterr()
        return Outcome(code, captured.out, captured.err + tail)

    def once(self, name: str, *argv: str) -> Outcome:
        if name not in self.outcomes:
            self.outcomes[name] = self.cli(*argv)
        return self.outcomes[name]

    def needs(self, name: str) -> Outcome:
        """The outcome of an earlier command this one reads; skipped (the earlier cell fails) when it failed."""
        outcome = getattr(self, name.replace("-", "_"))()
        if outcome.code != 0:
            pytest.skip(f"needs `autoft {name}`, which failed ({outcome.code})")
        return outcome

    def train(self) -> Outcome:
        return self.once("train", "train", str(self.config), "--no-progress")

    def run(self) -> Outcome:
        return self.once("run", "run", str(self.config), "--no-progress", "--set", f"output_dir={self.job_dir}")

    def predict(self) -> Outcome:
        self.needs("train")
        return self.once(
            "predict",
            "predict",
            str(self.train_dir),
            "--input",
            str(self.data.inputs),
            "--output",
            str(self.folder / "predictions.jsonl"),
            "--no-progress",
        )

    def update(self) -> Outcome:
        self.needs("train")
        return self.once(
            "update",
            "update",
            str(self.train_dir),
            "--data",
            str(self.data.new),
            "--validation",
            str(self.data.files["validation"]),
            "--output",
            str(self.folder / "update"),
            "--no-progress",
        )

    def ran(self, outcome: Outcome, what: str) -> None:
        assert outcome.code == 0, f"autoft {what} ({self.family.task}) exited {outcome.code}:\n{outcome.err[-3000:]}"

    @property
    def metrics(self) -> dict[str, Any]:
        return json.loads((self.train_dir / "metrics.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def jobs() -> dict[str, Job]:
    return {}


@pytest.fixture()
def job(task: str, jobs: dict[str, Job], request, tmp_path_factory, capsys) -> Job:
    if task not in jobs:
        family = FAMILIES[task]
        jobs[task] = Job(family, request.getfixturevalue(family.model), tmp_path_factory.mktemp(task))
    jobs[task].capsys = capsys
    return jobs[task]


# --- what a table must show ---------------------------------------------------------------------------------------


def is_number(cell: Any) -> bool:
    if isinstance(cell, str):
        return bool(NUMBER.match(cell.strip()))
    return isinstance(cell, (int, float)) and not isinstance(cell, bool)


def assert_numbers(metrics: dict[str, Any], family: Family, where: str) -> None:
    missing = [m for m in family.metrics if not is_number(metrics.get(m))]
    assert not missing, f"{where}: no number for {missing} in {sorted(metrics)}"


def assert_plain_table(out: str, family: Family) -> None:
    """``train``'s table (split, then one column per metric): the family's metrics, with numbers on the test row,
    and no column of ``-`` alone."""
    lines = out.splitlines()
    start = next((i for i, line in enumerate(lines) if line.split()[:1] == ["split"]), None)
    assert start is not None, f"no metrics table in:\n{out}"
    header = lines[start].split()
    rows = {line.split()[0]: line.split()[1:] for line in lines[start + 1 :] if line.split()}
    assert "test" in rows, f"no test row in:\n{out}"
    test = dict(zip(header[1:], rows["test"]))
    assert_numbers(test, family, f"the table's test row\n{out}\n")
    dashes = [name for i, name in enumerate(header[1:]) if all(row[i] == "-" for row in rows.values())]
    assert not dashes, f"columns of '-' alone: {dashes}\n{out}"


def markdown_rows(text: str) -> dict[str, list[str]]:
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.strip().startswith("|")
    ]
    return {row[0]: row[1:] for row in rows if row}


def assert_row_table(rows: dict[str, list[str]], family: Family, where: str) -> None:
    """A table with a row per metric (``run``'s comparison, the report's before/after): each of the family's
    metrics has a row, with a number in every column (before fine-tuning where shown, each run, the change)."""
    missing = [m for m in family.metrics if not rows.get(m) or not all(is_number(c) for c in rows[m])]
    assert not missing, f"{where}: no row with a number for {missing}; rows: {rows}"


def assert_run_directory(path: Path) -> None:
    missing = [name for name in RUN_FILES if not (path / name).exists()]
    assert not missing, f"{path} lacks {missing}"
    assert any((path / "model").glob("*.safetensors")), f"{path / 'model'}: no weights"


def count_examples(path: Path, task: str) -> int:
    from autoft.data.loading import load_examples

    return len(load_examples(path, task=task))


def same(a: Any, b: Any) -> bool:
    """Equal, numbers to 1e-4 (a served batch pads differently from a file's)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return a == pytest.approx(b, abs=1e-4)
    return a == b


def assert_report(job: Job, outcome: Outcome, folder: Path) -> None:
    job.ran(outcome, f"report {folder}")
    page = folder / "report.html"
    assert outcome.out.strip() == str(page) and page.is_file(), outcome.out
    looked = job.folder / f"look-{folder.name}"
    looked.mkdir(exist_ok=True)
    seen = look(page, looked)
    assert not console_problems(seen), f"{page}: {console_problems(seen)}"
    assert "before-after" in seen["tables"], f"{page}: no before/after table ({sorted(seen['tables'])})"
    assert_row_table(
        {row[0]: row[1:] for row in seen["tables"]["before-after"][1:] if row}, job.family, f"{page} before/after table"
    )


# --- the matrix ---------------------------------------------------------------------------------------------------


def cli_commands() -> set[str]:
    [commands] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return set(commands.choices)


def test_every_family_and_command_is_in_the_matrix():
    assert set(FAMILIES) == set(TASKS), "a task family without data here, or data for a family no longer registered"
    assert cli_commands() == set(COMMANDS) | set(EXEMPT), "a command neither in the matrix nor exempt (with why)"
    assert not set(COMMANDS) & set(EXEMPT)
    missing = [c for c in COMMANDS if not callable(globals().get(f"test_{c}"))]
    assert not missing, f"commands of the matrix without their test_<command>: {missing}"


@per_family
def test_train(job: Job):
    outcome = job.train()
    job.ran(outcome, "train")
    assert f"run: {job.train_dir}" in outcome.out
    assert_plain_table(outcome.out, job.family)
    assert_run_directory(job.train_dir)
    metrics = job.metrics
    assert_numbers(metrics["test"], job.family, "metrics.json test")
    assert len(metrics["epochs"]) == 1 and metrics["best_epoch"] == metrics["epochs"][0]["epoch"], metrics["epochs"]
    labels = json.loads((job.train_dir / "labels.json").read_text(encoding="utf-8"))
    assert labels["task"] == job.family.task
    predictions = [json.loads(line) for line in (job.train_dir / "test_predictions.jsonl").open(encoding="utf-8")]
    assert len(predictions) == count_examples(job.data.files["test"], job.family.task)
    text_targets = job.family.task in ("question-answering", "generation", "seq2seq")
    for row in predictions:
        assert {"input", "gold", "prediction"} <= set(row), row
        assert ("zero_shot" in row) == text_targets, row  # docs/run-directory.md: QA and generative: the model before
    for line in (job.train_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        assert json.loads(line)["type"] in ("step", "epoch", "agent"), line


RULES = {"data.format", "training.checkpoint_every", "training.peft.target_modules"}
"""Settings whose ``auto`` is a rule, not a value to choose once: each file's format is detected when it is read
(an update reads other files), ``checkpoint_every: auto`` means every 10 minutes of training, and
``peft.target_modules: auto`` every linear layer of the architecture but its task head."""


@per_family
def test_the_saved_config_is_resolved(job: Job):
    """docs/run-directory.md: config.yaml is "the resolved config: every auto replaced by the value
    chosen" (in the data and training settings, which every run uses; :data:`RULES` aside)."""
    job.needs("train")
    saved = yaml.safe_load((job.train_dir / "config.yaml").read_text(encoding="utf-8"))

    def autos(value: Any, where: str) -> list[str]:
        if isinstance(value, dict):
            return [name for key, inner in value.items() for name in autos(inner, f"{where}.{key}")]
        return [where] if value == "auto" and where not in RULES else []

    left = autos(saved["data"], "data") + autos(saved["training"], "training")
    assert not left, f"{job.train_dir / 'config.yaml'} still says auto for {left}"


@per_family
def test_run(job: Job):
    outcome = job.run()
    job.ran(outcome, "run")
    assert f"run: {job.job_dir}" in outcome.out
    assert_row_table(markdown_rows(outcome.out), job.family, f"autoft run's table\n{outcome.out}\n")
    folder, task = job.job_dir, job.family.task
    assert_row_table(markdown_rows((folder / "comparison.md").read_text(encoding="utf-8")), job.family, "comparison.md")
    assert json.loads((folder / "comparison.json").read_text(encoding="utf-8"))["plain"]["test"]
    assert (folder / "report.html").is_file()
    assert_run_directory(folder / "plain")
    if task in AGENT_SKIPS:
        assert not (folder / "autonomous").exists()
        return
    assert_run_directory(folder / "autonomous")
    for name in ("decisions.jsonl", "data_values.csv", "noise.json"):
        assert (folder / name).is_file(), f"{folder} lacks {name}"
    train = job.data.files["train"]
    with (folder / "data_values.csv").open(encoding="utf-8", newline="") as stream:
        assert len(list(csv.DictReader(stream))) == count_examples(train, task)  # every training sample valued
    corrected = folder / f"corrected{train.suffix}"
    written = sorted(p.name for p in folder.iterdir())
    assert corrected.is_file(), f"no {corrected.name} (docs/cli.md, `run`: corrected.<ext>) among {written}"
    assert 0 < count_examples(corrected, task) <= count_examples(train, task)  # the training file's own format


@per_family
def test_report(job: Job):
    job.needs("train")
    assert_report(job, job.cli("report", str(job.train_dir)), job.train_dir)


@per_family
def test_report_of_a_run_output(job: Job):
    job.needs("run")
    assert_report(job, job.cli("report", str(job.job_dir)), job.job_dir)


@per_family
def test_predict(job: Job):
    outcome = job.predict()
    job.ran(outcome, "predict")
    lines = (job.folder / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == job.data.count
    assert f"{job.data.count} predictions written" in outcome.err
    for line in lines:
        prediction = json.loads(line)
        assert job.family.prediction_keys <= set(prediction), (sorted(job.family.prediction_keys), prediction)


@per_family
def test_evaluate(job: Job):
    job.needs("train")
    output = job.folder / "evaluation.json"
    outcome = job.cli(
        "evaluate", str(job.train_dir), "--data", str(job.data.files["test"]), "--output", str(output), "--no-progress"
    )
    job.ran(outcome, "evaluate")
    assert_numbers(json.loads(outcome.out), job.family, "evaluate's summary")
    evaluated, trained = json.loads(output.read_text(encoding="utf-8")), job.metrics["test"]
    assert_numbers(evaluated, job.family, str(output))
    for name in job.family.metrics:  # the run's model on its own test file: the scores train recorded
        assert evaluated[name] == pytest.approx(trained[name], abs=1e-6), name


@per_family
def test_export(job: Job):
    job.needs("train")
    output = job.folder / "export"
    outcome = job.cli("export", str(job.train_dir), "--output", str(output))
    job.ran(outcome, "export")
    assert str(output) in outcome.err
    from transformers import AutoTokenizer

    auto = TASKS[job.family.task].auto_model_class()
    assert AutoTokenizer.from_pretrained(output).vocab_size > 0
    if (output / "adapter_config.json").is_file():  # a peft run: its adapter, which peft loads on the base model
        from peft import PeftModel

        base = json.loads((output / "adapter_config.json").read_text(encoding="utf-8"))["base_model_name_or_path"]
        PeftModel.from_pretrained(auto.from_pretrained(base), output)
        return
    model = auto.from_pretrained(output)
    labels = json.loads((job.train_dir / "labels.json").read_text(encoding="utf-8"))["labels"]
    if labels and job.family.task != "question-answering":  # docs/run-directory.md: id2label holds the label names
        assert [model.config.id2label[i] for i in range(len(labels))] == labels


class FakeServer:
    """``autoft.serving.draining.run_app`` (what one worker of ``autoft serve`` runs) replaced by one request through
    FastAPI's TestClient: what ``autoft serve`` would serve."""

    def __init__(self, first: Any) -> None:
        self.first, self.seen = first, {}

    def __call__(self, app: Any, **options: Any) -> None:
        from fastapi.testclient import TestClient

        assert not isinstance(app, str), f"one worker should serve an app object, got {app!r}"
        with TestClient(app) as client:
            self.seen["metadata"] = client.get("/metadata").json()
            self.seen["predict"] = client.post("/predict", json={"input": self.first})


def serve(job: Job, folder: Path, monkeypatch) -> dict[str, Any]:
    from autoft.serving import draining

    fake = FakeServer(job.data.first)
    monkeypatch.setattr(draining, "run_app", fake)
    job.ran(job.cli("serve", str(folder)), f"serve {folder}")
    assert "predict" in fake.seen, f"autoft serve {folder} exited without starting its server"
    response = fake.seen["predict"]
    assert response.status_code == 200, response.text
    assert fake.seen["metadata"]["task"] == job.family.task
    prediction = response.json()["prediction"]
    assert job.family.prediction_keys <= set(prediction), prediction
    return prediction


@per_family
def test_serve(job: Job, monkeypatch):
    job.needs("predict")
    served = serve(job, job.train_dir, monkeypatch)
    predicted = json.loads((job.folder / "predictions.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert same(served, predicted), (served, predicted)  # docs/serving.md: the line `autoft predict` writes


@per_family
def test_serve_a_run_output(job: Job, monkeypatch):
    job.needs("run")
    serve(job, job.job_dir, monkeypatch)


@per_family
def test_update(job: Job):
    outcome = job.update()
    job.ran(outcome, "update")
    folder, root = job.folder / "update", job.train_dir
    assert_run_directory(folder)
    record = json.loads((folder / "lineage.json").read_text(encoding="utf-8"))
    assert record["metric"] == TASKS[job.family.task].primary_metric, record["metric"]
    score_line = rf"^(\S+) {re.escape(record['metric'])}: parent (\S+), update (\S+)$"
    scores = re.findall(score_line, outcome.out, re.MULTILINE)
    assert scores and all(is_number(update) for _, _, update in scores), outcome.out
    assert list(folder.glob("replay.*")), f"{folder}: no replay.<ext>"
    [line] = (root / "lineage.jsonl").read_text(encoding="utf-8").splitlines()
    assert Path(json.loads(line)["run"]).resolve() == folder.resolve()
    promoted = "promoted: the lineage's latest" in outcome.out
    assert promoted or "NOT promoted (" in outcome.out, outcome.out
    if promoted:
        assert (root / "latest").resolve() == folder.resolve()


@per_family
def test_lineage(job: Job):
    job.needs("update")
    outcome = job.cli("lineage", str(job.train_dir))
    job.ran(outcome, "lineage")
    lines = outcome.out.strip().splitlines()  # docs/continual.md: root, then each update, oldest first, * on the latest
    assert len(lines) == 2, outcome.out
    assert str(job.train_dir.resolve()) in lines[0] and str((job.folder / "update").resolve()) in lines[1], outcome.out
    assert sum(line.startswith("*") for line in lines) == 1, outcome.out
