"""The training file as the agent would have it: its drops removed and its relabels applied, in the
input's own format, every other column untouched — for a person to review, and to train on again: a config whose
``data.train`` names ``corrected.<ext>`` reads it as it read the original (``corrected.<ext>``; a SemEval-2010
Task 8 file keeps its ``.txt``)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from itertools import takewhile
from pathlib import Path

from autoft.data.example import Example
from autoft.data.loading import _read_semeval
from autoft.data.rows import BadRows, _read_text, _rows_delimited, _rows_jsonl, detect_format
from autoft.errors import DataError
from autoft.io import write_text_atomic


def line_of(origin: str) -> tuple[str, int]:
    """``(path, line)`` of an example's ``origin`` (``file:line``)."""
    path, _, line = origin.rpartition(":")
    return path, int(line)


SUFFIXES = {"semeval": "txt", "squad": "json"}
"""The suffix of a format whose name is not its suffix: what ``detect_format`` reads back as that format (a
``.txt`` file is SemEval-2010 Task 8 for relation extraction, CoNLL otherwise)."""


def corrected_name(path: Path, fmt: str, *, several: bool) -> str:
    """``corrected.<ext>``, or ``corrected_<stem>.<ext>`` when the training data spans several files; ``<ext>`` is
    the suffix ``fmt`` (as ``detect_format`` gave it for the task) is read back from."""
    suffix = SUFFIXES.get(fmt, fmt)
    return f"corrected_{path.stem}.{suffix}" if several else f"corrected.{suffix}"


def _semeval(source: Path, drop: set[int], relabel: dict[int, str]) -> tuple[str, int]:
    """A SemEval-2010 Task 8 file's text without the sentences starting at the lines in ``drop``, with the relation
    line of those in ``relabel`` replaced, and without the sentences the loader skips as broken (each kept one:
    its ``ID<TAB>"sentence"`` line, its relation, its ``Comment`` lines, a blank line); and the sentences kept."""
    lines = _read_text(source).splitlines()
    loaded = _read_semeval(source, source.stem, True, BadRows("skip", max_share=1.0))
    out = []
    for start in sorted({line_of(e.origin)[1] for e in loaded} - drop):
        comments = takewhile(lambda line: line.startswith("Comment"), lines[start + 1 :])
        out.append("\n".join([lines[start - 1], relabel.get(start, lines[start].strip()), *comments]) + "\n\n")
    return "".join(out), len(out)


def _values(label: object) -> list[str]:
    """The labels (or tags) one training example holds."""
    return [v for v in label if isinstance(v, str)] if isinstance(label, list) else [str(label)]


def keep_every_label(
    examples: list[Example], dropped: Iterable[int], relabels: dict[int, str]
) -> tuple[set[int], dict[int, str], list[str]]:
    """The agent's repairs (rows left out, row -> new label) less those that would leave a label of ``examples``
    without a row: such a label keeps every row that holds it as given, so the corrected file still trains with
    a validation or test file that has it (the loader refuses a label training never saw). Returns the kept
    drops, the kept relabels and the labels so kept."""
    dropped, relabels = {int(row) for row in dropped}, dict(relabels)
    given = [set(_values(example.label)) for example in examples]
    kept: set[str] = set()
    while True:  # a relabel undone takes a row from its new label, which may then have none: until none does
        left = {
            value
            for row, values in enumerate(given)
            if row not in dropped
            for value in ([relabels[row]] if row in relabels else values)
        }
        vanished = set().union(*given) - left
        if not vanished:
            return dropped, relabels, sorted(kept)
        kept |= vanished
        for row, values in enumerate(given):
            if values & vanished:
                dropped.discard(row)
                relabels.pop(row, None)


def write_corrected(
    source: Path, output: Path, *, fmt: str, label_column: str, drop: set[int], relabel: dict[int, str]
) -> int:
    """Write ``source`` to ``output`` without the rows starting at the lines in ``drop`` and with the
    label of the rows in ``relabel`` (line -> new label) replaced; table rows and SemEval sentences the loader
    skipped as broken are left out too (CoNLL sentences are copied as they are). ``fmt``: as ``detect_format``
    gives it for the task (``semeval`` for a relation-extraction ``.txt``). Returns the number of rows written."""
    fmt = detect_format(source, fmt)
    if fmt in ("csv", "tsv"):
        delimiter = "," if fmt == "csv" else "\t"
        text = _read_text(source)
        header = [name.strip() for name in next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))]
        rows = [
            (line, row)
            for line, row in _rows_delimited(source, delimiter)
            if not isinstance(row, DataError) and line not in drop
        ]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=header, delimiter=delimiter, lineterminator="\n")
        writer.writeheader()
        for line, row in rows:
            writer.writerow({**row, **({label_column: relabel[line]} if line in relabel else {})})
        write_text_atomic(output, buffer.getvalue())
        return len(rows)
    if fmt == "jsonl":
        rows = [(line, row) for line, row in _rows_jsonl(source) if not isinstance(row, DataError) and line not in drop]
        write_text_atomic(
            output,
            "".join(
                json.dumps({**row, label_column: relabel[line]} if line in relabel else row, ensure_ascii=False) + "\n"
                for line, row in rows
            ),
        )
        return len(rows)
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(source)
        keep = [i for i in range(table.num_rows) if i + 2 not in drop]  # rows are numbered from 2, as loaded
        labels = table.column(label_column).to_pylist()
        table = table.set_column(
            table.schema.get_field_index(label_column),
            label_column,
            pa.array([relabel.get(i + 2, labels[i]) for i in range(table.num_rows)]),
        )
        temp = output.with_name(f".{output.name}.tmp")
        pq.write_table(table.take(keep), temp)
        temp.replace(output)
        return len(keep)
    if fmt == "conll":
        if relabel:
            raise DataError(f"{source}: relabelling CoNLL sentences is not supported")
        out: list[str] = []
        sentence: list[str] = []
        start, kept = 1, 0
        for number, text_line in enumerate(_read_text(source).splitlines() + [""], start=1):
            if text_line.startswith("-DOCSTART-"):
                out.append(text_line + "\n\n")
                start = number + 1
                continue
            if text_line.strip():
                sentence.append(text_line)
                continue
            if sentence and start not in drop:
                out.append("\n".join(sentence) + "\n\n")
                kept += 1
            sentence, start = [], number + 1
        write_text_atomic(output, "".join(out))
        return kept
    if fmt == "semeval":
        text, kept = _semeval(source, drop, relabel)
        write_text_atomic(output, text)
        return kept
    raise DataError(f"{source}: cannot write a corrected copy of format {fmt!r}")


__all__ = ["SUFFIXES", "corrected_name", "keep_every_label", "line_of", "write_corrected"]
