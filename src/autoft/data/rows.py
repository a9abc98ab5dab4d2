"""A data file's rows: its format (from the suffix), its text, the rows of a table (CSV, TSV, JSONL, Parquet), and
what a broken row does (:class:`BadRows`). Every problem names its ``file:line``."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from autoft.errors import DataError

log = logging.getLogger(__name__)

Row = dict[str, object] | DataError  # a row, or what is wrong with it


SUFFIX_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".conll": "conll",
    ".bio": "conll",
    ".iob": "conll",
    ".txt": "conll",
}


@dataclass
class BadRows:
    """What loading does with a broken row: stop with its ``file:line`` (``error``), or leave it out, log it
    and keep ``file:line: reason`` in ``skipped`` (``skip``). More than ``max_share`` of a file's rows
    broken is an error either way: that is a wrong file or a wrong setting, not a few bad rows."""

    mode: str = "error"
    max_share: float = 0.01
    skipped: list[str] = field(default_factory=list)

    def reject(self, error: DataError) -> None:
        if self.mode != "skip":
            raise error
        log.warning("skipped %s", error)
        self.skipped.append(str(error))

    def check(self, path: Path, first_skipped: int, kept: int) -> None:
        """Raise if more than ``max_share`` of the rows read from ``path`` (since ``first_skipped``) were broken."""
        bad = len(self.skipped) - first_skipped
        if bad and bad > self.max_share * (bad + kept):
            raise DataError(
                f"{path}: {bad} of {bad + kept} rows are broken, more than the {self.max_share:.0%} "
                f"that data.on_bad_rows: skip leaves out; the first: {self.skipped[first_skipped]}"
            )


def detect_format(path: Path, declared: str = "auto", task: str | None = None) -> str:
    if declared != "auto":
        return declared
    if task == "relation-extraction" and path.suffix.lower() == ".txt":
        return "semeval"
    if task == "question-answering" and path.suffix.lower() == ".json":
        return "squad"
    fmt = SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(SUFFIX_FORMATS))
        raise DataError(f"{path}: cannot tell the format from the suffix (known: {known}); set data.format")
    return fmt


def _read_text(path: Path) -> str:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected a data file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: undecodable bytes (not UTF-8) at byte {error.start}") from None
    nul = text.find("\x00")
    if nul >= 0:
        raise DataError(
            f"{path}:{text.count(chr(10), 0, nul) + 1}: NUL byte in the text (a binary file, or not UTF-8: UTF-16?)"
        )
    return text


STREAM_BYTES = 32 * 1024 * 1024
"""A table file larger than this is read as it is parsed (line by line), never held whole in memory."""


def _lines(path: Path) -> Iterator[str]:
    """The lines of ``path`` (ends kept), read a block at a time from the disk, with ``_read_text``'s checks: UTF-8
    (a BOM dropped), no NUL byte; a problem names its line."""
    number = 0
    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            for number, line in enumerate(stream, start=1):
                if "\x00" in line:
                    raise DataError(f"{path}:{number}: NUL byte in the text (a binary file, or not UTF-8: UTF-16?)")
                yield line
    except UnicodeDecodeError as error:  # found while decoding the block after the last whole line read
        raise DataError(
            f"{path}:{number + 1}: undecodable bytes (not UTF-8) near byte {error.start} of a block"
        ) from None


def _big(path: Path) -> bool:
    return path.stat().st_size > STREAM_BYTES


def _label_str(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


MAX_TEXT = 1_000_000
"""Characters in one text: a longer one is a broken row (no model reads a millionth of it)."""


def _check_text(path: Path, line: int, text: object, column: str) -> str:
    if text is None or (isinstance(text, float) and math.isnan(text)):
        raise DataError(f"{path}:{line}: empty text in column {column!r}")
    if isinstance(text, (dict, list, tuple, bytes)):
        raise DataError(f"{path}:{line}: column {column!r} must hold a text, got {type(text).__name__}")
    text = str(text)
    if not text.strip():
        raise DataError(f"{path}:{line}: empty text in column {column!r}")
    if len(text) > MAX_TEXT:
        raise DataError(
            f"{path}:{line}: a text of {len(text)} characters in column {column!r} (at most {MAX_TEXT:,}: "
            f"a broken row?)"
        )
    return text


def _rows_delimited(path: Path, delimiter: str) -> Iterator[tuple[int, Row]]:
    lines = _lines(path) if _big(path) else io.StringIO(_read_text(path), newline="")
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path}:1: empty file, expected a header row") from None
    except csv.Error as error:
        raise DataError(f"{path}:1: {error}") from None
    header = [name.strip() for name in header]
    row_start = reader.line_num + 1
    try:
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                row_start = reader.line_num + 1
                continue
            if len(row) != len(header):
                yield (
                    row_start,
                    DataError(f"{path}:{row_start}: expected {len(header)} fields as in the header, found {len(row)}"),
                )
            else:
                yield row_start, dict(zip(header, row))
            row_start = reader.line_num + 1
    except csv.Error as error:
        raise DataError(f"{path}:{reader.line_num}: {error}") from None


def _rows_jsonl(path: Path, text: str | None = None) -> Iterator[tuple[int, Row]]:
    """The rows of a JSON-lines file (or of ``text`` read from where ``path`` names, e.g. stdin)."""
    lines = text.splitlines() if text is not None else _lines(path) if _big(path) else _read_text(path).splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            yield number, DataError(f"{path}:{number}: invalid JSON: {error.msg}")
            continue
        if not isinstance(row, dict):
            yield number, DataError(f"{path}:{number}: expected a JSON object per line")
            continue
        yield number, row


def _rows_parquet(path: Path) -> Iterator[tuple[int, Row]]:
    import pyarrow.parquet as pq

    # Parquet has no lines; report 1-based row numbers, as a spreadsheet would show them after a header.
    number = 2
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=65536):  # a row group at a time, not the file
            rows = batch.to_pylist()
            yield from enumerate(rows, start=number)
            number += len(rows)
    except Exception as error:  # noqa: BLE001 - pyarrow raises several unrelated types for a bad file
        raise DataError(f"{path}: cannot read Parquet: {error}") from None


def _table_rows(path: Path, fmt: str) -> Iterator[tuple[int, Row]]:
    if fmt == "csv":
        return _rows_delimited(path, ",")
    if fmt == "tsv":
        return _rows_delimited(path, "\t")
    if fmt == "jsonl":
        return _rows_jsonl(path)
    if fmt == "parquet":
        return _rows_parquet(path)
    raise DataError(f"{path}: format {fmt!r} is not a table format")


def _require_columns(path: Path, line: int, row: dict[str, object], columns: list[str]) -> None:
    missing = [c for c in columns if c not in row]
    if missing:
        have = ", ".join(repr(k) for k in row)
        raise DataError(
            f"{path}:{line}: missing column {missing[0]!r} (columns: {have}); set data.text_column/label_column"
        )


__all__ = ["MAX_TEXT", "STREAM_BYTES", "SUFFIX_FORMATS", "BadRows", "Row", "detect_format"]
