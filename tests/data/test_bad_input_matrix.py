"""The bad-input matrix: every malformed input, across formats and tasks, is one line naming the file, line or
field, exit 2, no traceback, and no run directory left behind. Then property-based fuzzing of the loaders: no input
makes them raise anything but ``DataError``."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoft.cli import main
from autoft.data.loading import load_examples
from autoft.errors import DataError
from tests.conftest import synthetic_rows

GOOD = "text,label\n" + "".join(f"{t},{y}\n" for t, y in synthetic_rows(12, 0))
GOOD_VAL = "text,label\n" + "".join(f"{t},{y}\n" for t, y in synthetic_rows(6, 1))


def _conll(rows):
    return "".join(f"{w}\t{t}\n" if t is not None else f"{w}\n" for w, t in rows) + "\n"


def _parquet(path, columns):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), path)


# name: (files {name: bytes | str | callable(path)}, config changes, task, expected fragment of the message)
CASES = {
    "empty file": ({"train.csv": ""}, {}, "classification", "train.csv:1: empty file"),
    "header only": ({"train.csv": "text,label\n"}, {}, "classification", "train.csv: no examples found"),
    "ragged csv": ({"train.csv": GOOD + "a,b,c\n"}, {}, "classification", "train.csv:14: expected 2 fields"),
    "bad quoting": ({"train.csv": GOOD + '"unterminated,text\n'}, {}, "classification", "train.csv:14"),
    "mixed encodings": (
        {"train.csv": GOOD.encode() + "café,sport\n".encode("latin-1")},
        {},
        "classification",
        "train.csv:14: undecodable bytes (not UTF-8)",
    ),
    "NUL bytes": ({"train.csv": GOOD + "a\x00b,sport\n"}, {}, "classification", "train.csv:14: NUL byte"),
    "UTF-16 file": ({"train.csv": GOOD.encode("utf-16")}, {}, "classification", "train.csv"),
    "a 10 MB line (csv)": ({"train.csv": GOOD + "x" * (10 << 20) + ",sport\n"}, {}, "classification", "train.csv:14"),
    "a 10 MB text (jsonl)": (
        {"train.jsonl": json.dumps({"text": "x" * (10 << 20), "label": "sport"}) + "\n"},
        {"data.train": "train.jsonl"},
        "classification",
        "train.jsonl:1: a text of 10485760",
    ),
    "labels only in test": (
        {"test.csv": GOOD_VAL.replace(",sport", ",weather")},
        {"data.test": "test.csv"},
        "classification",
        "test.csv:",
    ),
    "label only in validation": ({"val.csv": GOOD_VAL.replace(",tech", ",weather")}, {}, "classification", "val.csv:"),
    "one class": (
        {"train.csv": "text,label\n" + "a match,sport\n" * 10},
        {},
        "classification",
        "train.csv: need at least two distinct labels",
    ),
    "missing text column": ({"train.csv": "txt,label\na,sport\n"}, {}, "classification", "train.csv:2: missing column"),
    "missing label column": ({"train.csv": "text,lbl\na,sport\n"}, {}, "classification", "train.csv:2: missing column"),
    "empty text": ({"train.csv": GOOD + ",sport\n"}, {}, "classification", "train.csv:14: empty text"),
    "empty label": ({"train.csv": GOOD + "a text,\n"}, {}, "classification", "train.csv:14: empty label"),
    "jsonl non-object line": (
        {"train.jsonl": '{"text": "a", "label": "x"}\n[1, 2]\n'},
        {"data.train": "train.jsonl"},
        "classification",
        "train.jsonl:2: expected a JSON object",
    ),
    "jsonl invalid json": (
        {"train.jsonl": '{"text": "a", "label": "x"}\n{"text": \n'},
        {"data.train": "train.jsonl"},
        "classification",
        "train.jsonl:2: invalid JSON",
    ),
    "jsonl text not a string": (
        {"train.jsonl": '{"text": {"a": 1}, "label": "x"}\n'},
        {"data.train": "train.jsonl"},
        "classification",
        "train.jsonl:1: column 'text' must hold a text",
    ),
    "parquet wrong column type": (
        {"train.parquet": lambda p: _parquet(p, {"text": [[1], [2, 3]], "label": ["a", "b"]})},
        {"data.train": "train.parquet"},
        "classification",
        "train.parquet:2: column 'text' must hold a text",
    ),
    "parquet not parquet": (
        {"train.parquet": "not a parquet file"},
        {"data.train": "train.parquet"},
        "classification",
        "train.parquet: cannot read Parquet",
    ),
    "conll missing tag": (
        {"train.conll": _conll([("Alice", "B-PER"), ("runs", None)])},
        {"data.train": "train.conll"},
        "token-classification",
        "train.conll:2",
    ),
    "conll three columns": (
        {"train.conll": "Alice\tB-PER\textra\n\n"},
        {"data.train": "train.conll"},
        "token-classification",
        "train.conll:1",
    ),
    "conll bad tag": (
        {"train.conll": _conll([("Alice", "X-PER")])},
        {"data.train": "train.conll"},
        "token-classification",
        "train.conll:1",
    ),
    "relation without markers": (
        {"train.csv": "text,label\nAlice met Bob,meet\n"},
        {},
        "relation-extraction",
        "train.csv:2: expected one <e1>",
    ),
    "generation without response": (
        {"train.jsonl": '{"prompt": "hi"}\n'},
        {"data.train": "train.jsonl"},
        "generation",
        "train.jsonl:1: missing column 'response'",
    ),
    "generation empty target": (
        {"train.jsonl": '{"prompt": "hi", "response": ""}\n'},
        {"data.train": "train.jsonl"},
        "generation",
        "train.jsonl:1",
    ),
    "qa offset mismatch": (
        {
            "train.jsonl": json.dumps(
                {"context": "Ann went home.", "question": "Who?", "answers": [{"text": "Ann", "answer_start": 4}]}
            )
            + "\n"
        },
        {"data.train": "train.jsonl"},
        "question-answering",
        "train.jsonl:1: answer 'Ann'",
    ),
    "multi-label non-string label": (
        {"train.jsonl": '{"text": "a", "label": [1, {"x": 2}]}\n'},
        {"data.train": "train.jsonl"},
        "multi-label-classification",
        "train.jsonl:1",
    ),
    "unsupported suffix": ({"train.xlsx": "whatever"}, {"data.train": "train.xlsx"}, "classification", "train.xlsx"),
    "missing file": ({}, {"data.train": "nowhere.csv"}, "classification", "nowhere.csv: file not found"),
    "path is a directory": (
        {"folder.csv/keep": ""},
        {"data.train": "folder.csv"},
        "classification",
        "folder.csv: is a folder",
    ),
    "config wrong type": ({}, {"training.epochs": "many"}, "classification", "training.epochs"),
    "config unknown key": ({}, {"training.epoch": 3}, "classification", "training.epoch"),
    "config unknown task": ({}, {"task": "translation-ish"}, "classification", "task"),
    "config bad policy": ({}, {"selection.policy": "clever"}, "classification", "selection.policy"),
    "config negative rate": ({}, {"training.learning_rate": -1}, "classification", "training.learning_rate"),
}


def _write(folder: Path, files: dict) -> None:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        elif name.endswith("/keep"):
            continue
        else:
            path.write_text(content, encoding="utf-8")


def _config(folder: Path, task: str, changes: dict, model: Path) -> Path:
    config = {
        "task": task,
        "model": str(model),
        "output_dir": str(folder / "run"),
        "data": {"train": str(folder / "train.csv"), "validation": str(folder / "val.csv")},
        "training": {"epochs": 1, "batch_size": 8, "max_length": 32, "progress": False},
    }
    for key, value in changes.items():
        *parents, last = key.split(".")
        target = config
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = str(folder / value) if parents == ["data"] else value
    if task != "classification" and "data.validation" not in changes:  # the validation file in the train format
        config["data"]["validation"] = config["data"]["train"]
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_the_matrix_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_exit_2_and_nothing_half_written(name, tmp_path, tiny_model_dir, capsys):
    files, changes, task, fragment = CASES[name]
    _write(tmp_path, {"train.csv": GOOD, "val.csv": GOOD_VAL, **files})
    path = _config(tmp_path, task, changes, tiny_model_dir)
    assert main(["train", str(path)]) == 2, name
    err = capsys.readouterr().err.strip()
    assert err.startswith("autoft: error: ") and len(err.splitlines()) == 1, err[:500]
    assert "Traceback" not in err and fragment in err, (name, err[:500])
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob(".run*"))


def test_a_read_only_output_folder_is_one_line(tmp_path, tiny_model_dir, capsys):
    _write(tmp_path, {"train.csv": GOOD, "val.csv": GOOD_VAL})
    locked = tmp_path / "locked"
    locked.mkdir()
    mounted = False
    if os.geteuid() == 0:  # root writes through permissions: a read-only mount stops it
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(locked)], capture_output=True, check=False
        )
        if done.returncode != 0:
            pytest.skip(f"as root, a read-only folder needs a read-only mount: {done.stderr.decode().strip()[:200]}")
        mounted = True
    else:
        locked.chmod(0o500)
    try:
        path = _config(tmp_path, "classification", {"output_dir": str(locked / "run")}, tiny_model_dir)
        assert main(["train", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert "locked/run" in err and len(err.splitlines()) == 1 and "Traceback" not in err, err[:500]
    finally:
        if mounted:
            subprocess.run(["umount", str(locked)], check=False)


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, tiny_model_dir, capsys):
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tiny tmpfs here: {done.stderr.decode().strip()[:200]}")
    try:
        _write(tmp_path, {"train.csv": GOOD, "val.csv": GOOD_VAL})
        path = _config(tmp_path, "classification", {}, tiny_model_dir)
        config = yaml.safe_load(path.read_text())
        config["output_dir"] = str(mount / "run")
        path.write_text(yaml.safe_dump(config))
        assert main(["train", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert "No space left on device" in err and len(err.splitlines()) == 1, err[:500]
        assert not any(mount.iterdir())  # the staged folder is gone too
    finally:
        subprocess.run(["umount", str(mount)], check=False)


SUFFIXES = {
    ".csv": "classification",
    ".tsv": "classification",
    ".jsonl": "classification",
    ".json": "question-answering",
    ".conll": "token-classification",
    ".txt": "relation-extraction",
    ".parquet": "classification",
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    content=st.one_of(st.binary(max_size=600), st.text(max_size=600).map(lambda t: t.encode("utf-8"))),
    suffix=st.sampled_from(sorted(SUFFIXES)),
    task=st.sampled_from(sorted(set(SUFFIXES.values()) | {"generation", "multi-label-classification"})),
)
def test_the_loaders_raise_nothing_but_data_error(tmp_path, content, suffix, task):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(content)
    try:
        load_examples(path, task=task)
    except DataError:
        pass


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "text": st.one_of(
                    st.text(max_size=40), st.integers(), st.none(), st.lists(st.text(max_size=5), max_size=3)
                ),
                "label": st.one_of(
                    st.text(max_size=10), st.integers(), st.floats(), st.none(), st.lists(st.integers(), max_size=2)
                ),
                "prompt": st.one_of(st.text(max_size=20), st.none()),
                "response": st.one_of(st.text(max_size=20), st.integers()),
                "context": st.text(max_size=30),
                "question": st.text(max_size=10),
                "answers": st.one_of(
                    st.none(),
                    st.lists(
                        st.fixed_dictionaries({"text": st.text(max_size=5), "answer_start": st.integers(-3, 40)}),
                        max_size=2,
                    ),
                ),
            },
        ),
        max_size=6,
    ),
    task=st.sampled_from(
        [
            "classification",
            "multi-label-classification",
            "token-classification",
            "relation-extraction",
            "question-answering",
            "generation",
        ]
    ),
)
def test_json_lines_of_any_shape_load_or_raise_data_error(tmp_path, rows, task):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    try:
        load_examples(path, task=task)
    except DataError:
        pass
