"""Write examples back to disk in a format ``load_examples`` reads: CSV for texts, CoNLL for token lists,
JSONL for texts with label sets (multi-label) and for questions with their contexts and answers."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, cast

from autoft.data.generation import ROLES
from autoft.data.loading import Example


def write_examples(
    path: Path,
    examples: list[Example],
    *,
    text_column: str = "text",
    label_column: str = "label",
    task: str | None = None,
) -> Path:
    """Write ``examples`` to ``path`` with the suffix their kind takes: CSV (``text_column``, ``label_column``)
    for texts, CoNLL (word TAB tag, a blank line between sentences) for token lists, JSONL (a list of labels per
    text) for label sets. Returns the path written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if task in ROLES:  # generation / seq2seq: input and output columns (several references: a list)
        path = path.with_suffix(".jsonl")
        source, target = ROLES[task]
        rows = []
        for e in examples:
            row: dict[str, Any]
            if isinstance(e.text, list):  # a transcript: the response is its last turn
                row = {"messages": [*e.text, *([{"role": "assistant", "content": e.label[0]}] if e.label else [])]}
            else:
                row = {
                    source: e.text,
                    **({target: e.label[0] if len(e.label) == 1 else list(e.label)} if e.label else {}),
                }
            rows.append(json.dumps(row, ensure_ascii=False) + "\n")
        path.write_text("".join(rows), encoding="utf-8")
        return path
    if examples and examples[0].query is not None:  # question answering: context, question, answers
        path = path.with_suffix(".jsonl")
        path.write_text(
            "".join(
                json.dumps(
                    {
                        "context": e.text,
                        "question": e.query,
                        "answers": [
                            {"text": a["text"], "answer_start": a["start"]}
                            for a in cast("list[dict[str, Any]]", e.label or [])
                        ],
                    },
                    ensure_ascii=False,
                )
                + "\n"
                for e in examples
            ),
            encoding="utf-8",
        )
        return path
    if examples and isinstance(examples[0].text, list):
        path = path.with_suffix(".conll")
        lines: list[str] = []
        for e in examples:
            lines.extend(f"{w}\t{t}" for w, t in zip(e.text, cast("list[str]", e.label)))
            lines.append("")
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path
    if examples and isinstance(examples[0].label, list):  # label sets: a JSON list each, whatever the delimiter
        path = path.with_suffix(".jsonl")
        path.write_text(
            "".join(
                json.dumps({text_column: e.text, label_column: e.label}, ensure_ascii=False) + "\n" for e in examples
            ),
            encoding="utf-8",
        )
        return path
    path = path.with_suffix(".csv")
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow([text_column, label_column])
        writer.writerows((e.text, e.label) for e in examples)
    return path


__all__ = ["write_examples"]
