"""Extractive question answering data: SQuAD v1.1 JSON, or a table of contexts, questions and answers.

An example's ``text`` is the context, its ``query`` the question and its ``label`` the list of answers, each
``{"text", "start"}`` with ``start`` the answer's character offset in the context. An answer whose text is not
at its offset is an error naming the file and line: a model trained on it would learn the wrong span.

Tables (CSV, TSV, JSONL, Parquet) have a ``context`` and a ``question`` column and either an ``answers`` column —
``{"text": [...], "answer_start": [...]}`` as in 🤗 datasets' SQuAD, or a list of ``{"text", "answer_start"}`` —
or one answer in ``answer`` and ``answer_start`` columns. ``data.columns`` renames any of them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from autoft.data.example import Example
from autoft.errors import DataError

QA_COLUMNS = ("context", "question", "answers", "answer", "answer_start")
"""The roles a question-answering table's columns play; ``data.columns`` maps a role to another column name."""


def is_squad(text: str) -> bool:
    """Whether a ``.json`` file's text is a SQuAD document (one JSON object with ``data``), not JSON lines."""
    head = text.lstrip()[:2000]
    return head.startswith("{") and '"data"' in head and ("\n" in head.strip() or head.count("{") > 1)


def _offset(path: Path, line: int, value: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise DataError(f"{path}:{line}: answer_start must be an integer character offset, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DataError(f"{path}:{line}: answer_start must be an integer character offset, got {value!r}") from None


def check_answers(path: Path, line: int, context: str, answers: list[tuple[Any, Any]]) -> list[dict[str, Any]]:
    """``[{"text", "start"}]`` from (text, offset) pairs, each checked against the context."""
    if not answers:
        raise DataError(f"{path}:{line}: no answer given (extractive QA needs the answer's text and offset)")
    checked = []
    for text, start in answers:
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path}:{line}: empty answer text")
        start = _offset(path, line, start)
        found = context[start : start + len(text)] if 0 <= start < len(context) else ""
        if found != text:
            raise DataError(
                f"{path}:{line}: answer {text!r} is not at offset {start} of its context (found {found!r} there)"
            )
        checked.append({"text": text, "start": start})
    return checked


def _answer_pairs(path: Path, line: int, value: Any) -> list[tuple[Any, Any]]:
    """(text, offset) pairs of an ``answers`` cell: 🤗 datasets' dict of lists, or a list of SQuAD answers."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise DataError(
                f"{path}:{line}: column 'answers' must be JSON (a list of {{text, answer_start}}, or "
                f"{{text: [...], answer_start: [...]}}); use answer and answer_start columns for one "
                f"plain-text answer"
            ) from None
    if isinstance(value, dict) and isinstance(value.get("text"), list):
        starts = value.get("answer_start")
        if not isinstance(starts, list) or len(starts) != len(value["text"]):
            raise DataError(f"{path}:{line}: answers needs as many answer_start offsets as texts")
        return list(zip(value["text"], starts))
    if isinstance(value, list) and all(isinstance(a, dict) for a in value):
        return [(a.get("text"), a.get("answer_start", a.get("start"))) for a in value]
    raise DataError(
        f"{path}:{line}: column 'answers' must be a list of {{text, answer_start}} or "
        f"{{text: [...], answer_start: [...]}}, got {value!r}"
    )


def _cell_text(path: Path, line: int, row: dict, column: str) -> str:
    value = row.get(column)
    if value is None or (isinstance(value, float) and math.isnan(value)) or not str(value).strip():
        raise DataError(f"{path}:{line}: empty text in column {column!r}")
    return str(value)


def qa_row(path: Path, line: int, row: dict, *, columns: dict[str, str], with_labels: bool, source: str) -> Example:
    """One question-answering example from a table row."""
    name = {role: columns.get(role, role) for role in QA_COLUMNS}
    for role in ("context", "question"):
        if name[role] not in row:
            have = ", ".join(repr(k) for k in row)
            raise DataError(
                f"{path}:{line}: missing column {name[role]!r} (columns: {have}); question answering "
                f"reads context, question and answers (data.columns renames them)"
            )
    context, question = _cell_text(path, line, row, name["context"]), _cell_text(path, line, row, name["question"])
    answers = None
    if with_labels:
        if name["answers"] in row:
            pairs = _answer_pairs(path, line, row[name["answers"]])
        elif name["answer"] in row and name["answer_start"] in row:
            pairs = [(row[name["answer"]], row[name["answer_start"]])]
        else:
            raise DataError(
                f"{path}:{line}: missing column {name['answers']!r} (or {name['answer']!r} and "
                f"{name['answer_start']!r}) with the answer"
            )
        answers = check_answers(path, line, context, pairs)
    return Example(context, answers, f"{path}:{line}", source, query=question)


def read_squad(path: Path, text: str, *, source: str, with_labels: bool, bad: Any) -> list[Example]:
    """The questions of a SQuAD v1.1 JSON document (``data[].paragraphs[].qas[]``). Each question's line is
    where its ``id`` stands in the file (or its paragraph's, without ids)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}:{error.lineno}: invalid JSON: {error.msg}") from None
    articles = document.get("data") if isinstance(document, dict) else None
    if not isinstance(articles, list):
        raise DataError(f"{path}:1: expected a SQuAD document: an object whose 'data' lists articles")
    examples, cursor, line = [], 0, 1

    def line_of(needle: str) -> int:
        """The line of ``needle``'s next occurrence (searching on from the last one; the lines in between are
        counted once, so a large file is read through once)."""
        nonlocal cursor, line
        found = text.find(needle, cursor)
        if found >= 0:
            line += text.count("\n", cursor, found)
            cursor = found
        return line

    for a, article in enumerate(articles):
        for p, paragraph in enumerate(article.get("paragraphs", []) if isinstance(article, dict) else []):
            context = paragraph.get("context") if isinstance(paragraph, dict) else None
            for q, qa in enumerate(paragraph.get("qas", []) if isinstance(paragraph, dict) else []):
                where = f"data[{a}].paragraphs[{p}].qas[{q}]"
                at = line_of(json.dumps(qa["id"])) if isinstance(qa, dict) and "id" in qa else line_of('"question"')
                try:
                    if not isinstance(context, str) or not context.strip():
                        raise DataError(f"{path}:{at}: {where}: its paragraph has no context")
                    if (
                        not isinstance(qa, dict)
                        or not isinstance(qa.get("question"), str)
                        or not qa["question"].strip()
                    ):
                        raise DataError(f"{path}:{at}: {where}: empty question")
                    answers = None
                    if with_labels:
                        given = qa.get("answers")
                        pairs = (
                            [(x.get("text"), x.get("answer_start")) for x in given if isinstance(x, dict)]
                            if isinstance(given, list)
                            else []
                        )
                        answers = check_answers(path, at, context, pairs)
                    examples.append(Example(context, answers, f"{path}:{at}", source, query=qa["question"]))
                except DataError as error:
                    bad.reject(error)
    return examples
