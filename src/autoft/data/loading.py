"""Files -> examples.

Classification reads CSV, TSV, JSONL or Parquet (a text column and a label column). Token
classification reads CoNLL (``token<TAB>tag``, blank line between sentences) or JSONL whose text and
label columns hold lists of tokens and tags. Every problem is reported as ``file:line: what is wrong``.
A broken row (empty text or label, a wrong number of fields, a line that is not a JSON object, a
sentence with a missing tag) stops the load, or with :class:`BadRows` ``mode="skip"`` is logged and
left out, as long as no more than ``max_share`` of the file is broken.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from autoft.data.example import Example
from autoft.data.generation import ROLES, text_pair_row
from autoft.data.qa import is_squad, qa_row, read_squad
from autoft.data.rows import (
    SUFFIX_FORMATS,
    BadRows,
    _check_text,
    _label_str,
    _read_text,
    _require_columns,
    _rows_jsonl,
    _table_rows,
    detect_format,
)
from autoft.errors import DataError

log = logging.getLogger(__name__)


_TAG = re.compile(r"^[BIES]-\S+$")


def _read_conll(path: Path, source: str, with_labels: bool, bad: BadRows) -> list[Example]:
    examples: list[Example] = []
    tokens: list[str] = []
    tags: list[str] = []
    start, broken = 1, None
    lines = _read_text(path).splitlines()
    for number, line in enumerate(lines + [""], start=1):
        if not line.strip():
            if broken is not None:
                bad.reject(broken)  # the whole sentence goes: its tags no longer line up
            elif tokens:
                examples.append(Example(tokens, tags if with_labels else None, f"{path}:{start}", source))
            tokens, tags, broken = [], [], None
            start = number + 1
            continue
        if broken is not None:
            continue
        if line.startswith("-DOCSTART-"):
            start = number + 1
            continue
        fields = line.rstrip("\n").split("\t")
        if with_labels and len(fields) != 2:
            broken = DataError(f"{path}:{number}: expected 2 tab-separated columns (token, tag), found {len(fields)}")
            continue
        if not with_labels and len(fields) not in (1, 2):
            broken = DataError(f"{path}:{number}: expected a token, optionally followed by a tab and a tag")
            continue
        # Blank or invisible tokens occur in real corpora (BTC has them); they stay, aligned to their tags,
        # and get no sub-token, so the model predicts 'O' for them.
        tokens.append(fields[0])
        if with_labels:
            tag = fields[1].strip()
            if not tag:
                broken = DataError(f"{path}:{number}: empty tag")
                continue
            if tag != "O" and not _TAG.match(tag):
                broken = DataError(
                    f"{path}:{number}: tag {tag!r} is not O or B-/I-/E-/S- and an entity type (BIO, IOB2 or IOBES)"
                )
                continue
            tags.append(tag)
    return examples


def load_examples(
    path: str | Path,
    *,
    task: str,
    text_column: str = "text",
    label_column: str = "label",
    fmt: str = "auto",
    with_labels: bool = True,
    source: str | None = None,
    bad_rows: BadRows | None = None,
    label_delimiter: str = "|",
    columns: dict[str, str] | None = None,
) -> list[Example]:
    """Read one data file. Raises :class:`DataError` naming ``file:line`` on any problem; with ``bad_rows``
    in ``skip`` mode, broken rows are left out and recorded there instead (up to its ``max_share``).
    ``multi-label-classification``: a row's labels are a JSON list, or a text cell split on ``label_delimiter``;
    ``Example.label`` is then the sorted list of distinct labels (empty: none fits). ``question-answering``
    reads SQuAD JSON or a table (:mod:`autoft.data.qa`); ``columns`` renames the columns a task's roles read."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected a data file")
    fmt = detect_format(path, fmt, task)
    source = path.stem if source is None else source
    bad = bad_rows or BadRows()
    first_skipped = len(bad.skipped)
    text = _read_text(path) if fmt == "squad" else ""
    if fmt == "squad" and not is_squad(text):
        fmt = "jsonl"  # JSON lines under a .json name
    if fmt == "squad":
        if task != "question-answering":
            raise DataError(f"{path}: SQuAD files hold question answering data, but task is {task!r}")
        examples = read_squad(path, text, source=source, with_labels=with_labels, bad=bad)
    elif fmt == "semeval":
        if task != "relation-extraction":
            raise DataError(f"{path}: SemEval-2010 Task 8 files hold relation extraction data, but task is {task!r}")
        examples = _read_semeval(path, source, with_labels, bad)
    elif fmt == "conll":
        if task != "token-classification":
            raise DataError(f"{path}: CoNLL files hold token classification data, but task is {task!r}")
        examples = _read_conll(path, source, with_labels, bad)
    else:
        examples = list(
            _table_examples(
                path,
                fmt,
                task=task,
                text_column=text_column,
                label_column=label_column,
                with_labels=with_labels,
                source=source,
                bad=bad,
                label_delimiter=label_delimiter,
                columns=columns,
            )
        )
    bad.check(path, first_skipped, len(examples))
    if not examples:
        raise DataError(f"{path}: no examples found")
    return examples


def _table_examples(
    path: Path,
    fmt: str,
    *,
    task: str,
    text_column: str,
    label_column: str,
    with_labels: bool,
    source: str,
    bad: BadRows,
    label_delimiter: str,
    columns: dict[str, str] | None,
) -> Iterator[Example]:
    """The examples of a table file, one at a time as its rows are read (broken rows go to ``bad``)."""
    required = [text_column] + ([label_column] if with_labels else [])
    for line, row in _table_rows(path, fmt):
        try:
            if isinstance(row, DataError):
                raise row
            if task == "question-answering":
                yield qa_row(path, line, row, columns=columns or {}, with_labels=with_labels, source=source)
            elif task in ROLES:
                yield text_pair_row(
                    path, line, row, task=task, columns=columns or {}, with_labels=with_labels, source=source
                )
            else:
                yield _table_example(
                    path,
                    line,
                    row,
                    task,
                    text_column,
                    label_column if with_labels else None,
                    required,
                    source,
                    label_delimiter,
                )
        except DataError as error:
            bad.reject(error)


def stream_examples(
    path: str | Path,
    *,
    task: str,
    text_column: str = "text",
    label_column: str = "label",
    fmt: str = "auto",
    bad_rows: BadRows | None = None,
    label_delimiter: str = "|",
) -> Iterator[Example]:
    """The labelled examples of a table file (CSV, TSV, JSON lines, Parquet), yielded as the file is read: a pool
    of millions of rows is never held in memory. The checks are ``load_examples``'s; with ``bad_rows`` in
    ``skip`` mode, more than its ``max_share`` broken rows is an error at the end."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    fmt = detect_format(path, fmt, task)
    if fmt not in ("csv", "tsv", "jsonl", "parquet"):
        raise DataError(f"{path}: a pool this large is read as a table (CSV, TSV, JSON lines or Parquet), not {fmt}")
    bad = bad_rows or BadRows()
    first_skipped, count = len(bad.skipped), 0
    for example in _table_examples(
        path,
        fmt,
        task=task,
        text_column=text_column,
        label_column=label_column,
        with_labels=True,
        source=path.stem,
        bad=bad,
        label_delimiter=label_delimiter,
        columns=None,
    ):
        count += 1
        yield example
    bad.check(path, first_skipped, count)
    if not count:
        raise DataError(f"{path}: no examples found")


def _table_example(
    path: Path,
    line: int,
    row: dict,
    task: str,
    text_column: str,
    label_column: str | None,
    columns: list[str],
    source: str,
    label_delimiter: str = "|",
) -> Example:
    _require_columns(path, line, row, columns)
    if task == "token-classification":
        return _token_row(path, line, row, text_column, label_column, source)
    text = _check_text(path, line, row[text_column], text_column)
    if task == "relation-extraction":
        if all(c in row for c in SPAN_COLUMNS):
            text = _mark_entities(path, line, text, [row[c] for c in SPAN_COLUMNS])
        check_entity_markers(path, line, text)
    label: str | list[str] | None = None
    if label_column is not None and task == "multi-label-classification":
        label = _label_set(path, line, row[label_column], label_column, label_delimiter)
    elif label_column is not None:
        raw_label = row[label_column]
        label = "" if raw_label is None else _label_str(raw_label)
        if not label:
            raise DataError(f"{path}:{line}: empty label in column {label_column!r}")
    return Example(text, label, f"{path}:{line}", source)


ENTITY_MARKERS = ("<e1>", "</e1>", "<e2>", "</e2>")
_SEMEVAL_SENTENCE = re.compile(r'^(\d+)\t"(.*)"\s*$')


def check_entity_markers(path: Path, line: int, text: str) -> None:
    """A relation-extraction text marks its two entities inline, ``<e1>…</e1>`` and ``<e2>…</e2>``, once each."""
    for marker in ENTITY_MARKERS:
        if text.count(marker) != 1:
            raise DataError(
                f"{path}:{line}: expected one {marker} in the text (entities are marked inline: "
                f"<e1>...</e1> and <e2>...</e2>), found {text.count(marker)}"
            )
    if not text.index("<e1>") < text.index("</e1>") or not text.index("<e2>") < text.index("</e2>"):
        raise DataError(f"{path}:{line}: an entity's closing marker comes before its opening one")


SPAN_COLUMNS = ("e1_start", "e1_end", "e2_start", "e2_end")
"""Relation extraction from a table: character offsets of the two entities (end exclusive), instead of inline
markers."""


def _mark_entities(path: Path, line: int, text: str, values: list[Any]) -> str:
    """``text`` with ``<e1>…</e1>`` and ``<e2>…</e2>`` inserted at the span columns' character offsets."""
    try:
        if any(isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()) for v in values):
            raise ValueError
        e1s, e1e, e2s, e2e = (int(v) for v in values)
    except (TypeError, ValueError):
        raise DataError(
            f"{path}:{line}: columns {', '.join(SPAN_COLUMNS)} must be integer character offsets, got {values}"
        ) from None
    spans = sorted([(e1s, e1e, "e1"), (e2s, e2e, "e2")])
    if any(not 0 <= start < end <= len(text) for start, end, _ in spans) or spans[0][1] > spans[1][0]:
        raise DataError(
            f"{path}:{line}: entity spans {e1s}-{e1e} and {e2s}-{e2e} must be non-empty, within the "
            f"text ({len(text)} characters) and not overlap"
        )
    for start, end, name in reversed(spans):  # the later span first, so the earlier offsets stay right
        text = f"{text[:start]}<{name}>{text[start:end]}</{name}>{text[end:]}"
    return text


def _read_semeval(path: Path, source: str, with_labels: bool, bad: BadRows) -> list[Example]:
    """SemEval-2010 Task 8's format: ``ID<TAB>"sentence"``, then the relation line (in a key file), a
    ``Comment:`` line and a blank line; the sentence marks its entities inline."""
    examples: list[Example] = []
    lines = _read_text(path).splitlines()
    number = 0
    while number < len(lines):
        line = lines[number]
        number += 1
        if not line.strip() or line.startswith("Comment"):
            continue
        try:
            match = _SEMEVAL_SENTENCE.match(line)
            if match is None:
                raise DataError(f'{path}:{number}: expected ID<TAB>"sentence" (SemEval-2010 Task 8 format)')
            check_entity_markers(path, number, match.group(2))
            label = None
            if with_labels:
                relation = lines[number].strip() if number < len(lines) else ""
                if not relation or relation.startswith("Comment") or _SEMEVAL_SENTENCE.match(relation):
                    raise DataError(f"{path}:{number + 1}: expected the relation of sentence {match.group(1)}")
                label = relation
                number += 1
            examples.append(Example(match.group(2), label, f"{path}:{number - (1 if with_labels else 0)}", source))
        except DataError as error:
            bad.reject(error)
    return examples


def _label_set(path: Path, line: int, value: object, column: str, delimiter: str) -> list[str]:
    """A multi-label cell: a JSON list of labels, or text split on ``delimiter``; empty = no label."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, list):
        if not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
            raise DataError(f"{path}:{line}: column {column!r} must list labels (strings), got {value!r}")
        parts = [_label_str(v) for v in value]
    elif isinstance(value, (str, int)) and not isinstance(value, bool):
        parts = [_label_str(v) for v in str(value).split(delimiter)]
    else:
        raise DataError(
            f"{path}:{line}: column {column!r} must hold labels separated by {delimiter!r} or a "
            f"JSON list, got {value!r}"
        )
    if any(not part for part in parts) and any(parts):
        raise DataError(f"{path}:{line}: empty label in column {column!r} (labels separated by {delimiter!r})")
    return sorted({part for part in parts if part})


def _token_row(path: Path, line: int, row: dict, text_column: str, label_column: str | None, source: str) -> Example:
    tokens = row[text_column]
    if isinstance(tokens, str):
        tokens = tokens.split()
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) and t.strip() for t in tokens):
        raise DataError(f"{path}:{line}: column {text_column!r} must be a non-empty list of tokens")
    tags = None
    if label_column is not None:
        tags = row[label_column]
        if isinstance(tags, str):
            tags = tags.split()
        if not isinstance(tags, list) or len(tags) != len(tokens):
            raise DataError(f"{path}:{line}: column {label_column!r} must list one tag per token ({len(tokens)})")
        tags = [_label_str(t) for t in tags]
    return Example(list(tokens), tags, f"{path}:{line}", source)


def input_example(
    value: Any,
    *,
    task: str,
    index: int,
    text_column: str = "text",
    columns: dict[str, str] | None = None,
    where: str = "<request>",
) -> Example:
    """One prediction input as a JSON value (a served request's item): a text (a prompt for generative tasks;
    for NER a text or a list of words), or an object with the columns a JSON-lines input file has (question
    answering: ``question`` and ``context``; generation: ``prompt`` or ``messages``). ``DataError`` names
    ``where:index`` otherwise."""
    path = Path(where)
    if isinstance(value, str) or (task == "token-classification" and isinstance(value, list)):
        if task == "question-answering":
            raise DataError(
                f"{where}:{index}: question answering takes an object with 'question' and 'context', not a text"
            )
        value = {(columns or {}).get(ROLES[task][0], ROLES[task][0]) if task in ROLES else text_column: value}
    if not isinstance(value, dict):
        raise DataError(f"{where}:{index}: expected a text or an object, got {type(value).__name__}")
    if task == "question-answering":
        return qa_row(path, index, value, columns=columns or {}, with_labels=False, source="request")
    if task in ROLES:
        return text_pair_row(path, index, value, task=task, columns=columns or {}, with_labels=False, source="request")
    return _table_example(path, index, value, task, text_column, None, [text_column], "request")


def _warn_blank_lines(lines: list[str], source: str) -> None:
    """Say how many of ``lines`` are blank (``read_texts`` leaves them out: an output per input no longer lines up
    with the input's line numbers)."""
    blank = sum(not line.strip() for line in lines)
    if blank:
        log.warning("skipped %d blank line%s of %s", blank, "" if blank == 1 else "s", source)


def read_texts(
    path: str | Path | None, *, task: str, text_column: str = "text", columns: dict[str, str] | None = None
) -> list[Example]:
    """Unlabelled input for prediction: a table file, CoNLL tokens, plain text (one per line) or stdin.
    Question answering reads JSON lines of context and question (stdin too), a table or a SQuAD file;
    generation and seq2seq a table of prompts (sources), or plain text: a prompt per line. Blank lines of plain
    text and stdin are left out, and a warning says how many."""
    import sys

    if task == "question-answering":
        if path is not None and str(path) != "-":
            return load_examples(path, task=task, with_labels=False, columns=columns)
        examples = []  # stdin: JSON lines of context and question
        text = sys.stdin.read()
        _warn_blank_lines(text.splitlines(), "stdin")
        for number, row in _rows_jsonl(Path("<stdin>"), text):
            if isinstance(row, DataError):
                raise row
            examples.append(
                qa_row(Path("<stdin>"), number, row, columns=columns or {}, with_labels=False, source="stdin")
            )
        return examples
    if path is None or str(path) == "-":
        lines = sys.stdin.read().splitlines()
        _warn_blank_lines(lines, "stdin")
        return [Example(line, None, f"<stdin>:{n}") for n, line in enumerate(lines, start=1) if line.strip()]
    path = Path(path)
    fmt = SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None or (fmt == "conll" and task != "token-classification"):
        text = _read_text(path)
        first = next((line for line in text.splitlines() if line.strip()), "")
        if task == "relation-extraction" and _SEMEVAL_SENTENCE.match(first):  # a SemEval-2010 Task 8 file
            return load_examples(path, task=task, fmt="semeval", with_labels=False)
        # Plain text: one input per line.
        lines = text.splitlines()
        _warn_blank_lines(lines, str(path))
        examples = [Example(line, None, f"{path}:{n}") for n, line in enumerate(lines, start=1) if line.strip()]
        if task == "relation-extraction":
            for example in examples:
                check_entity_markers(path, int(example.origin.rpartition(":")[2]), cast(str, example.text))
        return examples
    return load_examples(path, task=task, text_column=text_column, fmt=fmt, with_labels=False, columns=columns)
