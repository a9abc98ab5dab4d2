"""The training file as the agent would have it: its drops removed and its relabels applied, in the
input's own format, every other column untouched — for a person to review (``corrected.<ext>``)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from autoft.data.loading import _read_text, _rows_delimited, _rows_jsonl, detect_format
from autoft.errors import DataError
from autoft.io import write_text_atomic


def line_of(origin: str) -> tuple[str, int]:
    """``(path, line)`` of an example's ``origin`` (``file:line``)."""
    path, _, line = origin.rpartition(":")
    return path, int(line)


def corrected_name(path: Path, fmt: str, *, several: bool) -> str:
    """``corrected.<ext>``, or ``corrected_<stem>.<ext>`` when the training data spans several files."""
    return f"corrected_{path.stem}.{fmt}" if several else f"corrected.{fmt}"


def write_corrected(source: Path, output: Path, *, fmt: str, label_column: str, drop: set[int],
                    relabel: dict[int, str]) -> int:
    """Write ``source`` to ``output`` without the rows starting at the lines in ``drop`` and with the
    label of the rows in ``relabel`` (line -> new label) replaced; table rows the loader skipped as
    broken are left out too (CoNLL sentences are copied as they are). Returns the number of rows written."""
    fmt = detect_format(source, fmt)
    if fmt in ("csv", "tsv"):
        delimiter = "," if fmt == "csv" else "\t"
        text = _read_text(source)
        header = [name.strip() for name in next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))]
        rows = [(line, row) for line, row in _rows_delimited(source, delimiter)
                if not isinstance(row, DataError) and line not in drop]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=header, delimiter=delimiter, lineterminator="\n")
        writer.writeheader()
        for line, row in rows:
            writer.writerow({**row, label_column: relabel.get(line, row.get(label_column))})
        write_text_atomic(output, buffer.getvalue())
        return len(rows)
    if fmt == "jsonl":
        rows = [(line, row) for line, row in _rows_jsonl(source) if not isinstance(row, DataError) and line not in drop]
        write_text_atomic(output, "".join(
            json.dumps({**row, label_column: relabel[line]} if line in relabel else row, ensure_ascii=False) + "\n"
            for line, row in rows))
        return len(rows)
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(source)
        keep = [i for i in range(table.num_rows) if i + 2 not in drop]  # rows are numbered from 2, as loaded
        labels = table.column(label_column).to_pylist()
        table = table.set_column(table.schema.get_field_index(label_column), label_column,
                                 pa.array([relabel.get(i + 2, labels[i]) for i in range(table.num_rows)]))
        temp = output.with_name(f".{output.name}.tmp")
        pq.write_table(table.take(keep), temp)
        temp.replace(output)
        return len(keep)
    if fmt == "conll":
        if relabel:
            raise DataError(f"{source}: relabelling CoNLL sentences is not supported")
        out, sentence, start, kept = [], [], 1, 0
        for number, line in enumerate(_read_text(source).splitlines() + [""], start=1):
            if line.startswith("-DOCSTART-"):
                out.append(line + "\n\n")
                start = number + 1
                continue
            if line.strip():
                sentence.append(line)
                continue
            if sentence and start not in drop:
                out.append("\n".join(sentence) + "\n\n")
                kept += 1
            sentence, start = [], number + 1
        write_text_atomic(output, "".join(out))
        return kept
    raise DataError(f"{source}: cannot write a corrected copy of format {fmt!r}")


__all__ = ["corrected_name", "line_of", "write_corrected"]
