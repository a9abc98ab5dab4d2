"""Text-to-text data: prompts and responses (``generation``), sources and targets (``seq2seq``).

A table row gives the input in one column and the output in another — ``prompt`` / ``response`` for generation,
``source`` / ``target`` for seq2seq (``data.columns`` renames them). The output cell may also list several
references (a JSON list): the first is trained on, all count when scoring (ROUGE takes the best, BLEU uses them
all). Generation also reads chat transcripts: a ``messages`` column holding ``[{"role", "content"}, ...]``, whose
last message is the assistant's response and the earlier ones its prompt.

An example's ``text`` is the input (a string, or the list of chat messages) and its ``label`` the list of
reference outputs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from autoft.data.example import Example
from autoft.errors import DataError

ROLES = {"generation": ("prompt", "response"), "seq2seq": ("source", "target")}
CHAT_ROLES = ("system", "user", "assistant")


def prompt_text(example: Any) -> str:
    """A pair's prompt as one line of text: the prompt, or a transcript's turns as ``role: content | ...``."""
    text = example.text
    return text if isinstance(text, str) else " | ".join(f"{m['role']}: {m['content']}" for m in text)


def _text(path: Path, line: int, value: Any, column: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or not isinstance(value, (str, int, float)):
        raise DataError(f"{path}:{line}: empty text in column {column!r}")
    text = str(value)
    if not text.strip():
        raise DataError(f"{path}:{line}: empty text in column {column!r}")
    return text


def _references(path: Path, line: int, value: Any, column: str) -> list[str]:
    """One output, or a JSON list of reference outputs; none may be empty."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass  # a text that starts with a bracket
    if isinstance(value, list):
        if not value:
            raise DataError(f"{path}:{line}: empty target: column {column!r} lists no reference")
        return [_text(path, line, v, column) for v in value]
    return [_text(path, line, value, column)]


def _messages(path: Path, line: int, value: Any, column: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = None
    if not isinstance(value, list) or not value:
        raise DataError(
            f"{path}:{line}: column {column!r} must be a JSON list of chat messages "
            f'[{{"role": "user", "content": ...}}, ...]'
        )
    messages = []
    for m, message in enumerate(value):
        if not isinstance(message, dict) or message.get("role") not in CHAT_ROLES:
            raise DataError(f"{path}:{line}: message {m} of {column!r} needs a role among {', '.join(CHAT_ROLES)}")
        messages.append(
            {"role": message["role"], "content": _text(path, line, message.get("content"), f"{column}[{m}].content")}
        )
    return messages


def text_pair_row(
    path: Path, line: int, row: dict, *, task: str, columns: dict[str, str], with_labels: bool, source: str
) -> Example:
    """One generation or seq2seq example from a table row."""
    input_role, output_role = ROLES[task]
    name = {role: columns.get(role, role) for role in (input_role, output_role, "messages")}
    have = ", ".join(repr(k) for k in row)
    if task == "generation" and name["messages"] in row and name[input_role] not in row:
        messages = _messages(path, line, row[name["messages"]], name["messages"])
        if not with_labels:
            return Example(messages, None, f"{path}:{line}", source)
        if messages[-1]["role"] != "assistant" or len(messages) < 2:
            raise DataError(
                f"{path}:{line}: the last message of {name['messages']!r} must be the assistant's "
                f"response, after at least one other"
            )
        return Example(messages[:-1], [messages[-1]["content"]], f"{path}:{line}", source)
    if name[input_role] not in row:
        extra = f" (or {name['messages']!r} with chat messages)" if task == "generation" else ""
        raise DataError(
            f"{path}:{line}: missing column {name[input_role]!r}{extra} (columns: {have}); data.columns renames it"
        )
    text = _text(path, line, row[name[input_role]], name[input_role])
    if not with_labels:
        return Example(text, None, f"{path}:{line}", source)
    if name[output_role] not in row:
        raise DataError(
            f"{path}:{line}: missing column {name[output_role]!r} (columns: {have}); data.columns renames it"
        )
    return Example(text, _references(path, line, row[name[output_role]], name[output_role]), f"{path}:{line}", source)
