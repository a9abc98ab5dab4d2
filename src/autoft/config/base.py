"""What every config section shares: the task names and their families, ``auto``, the strict pydantic base that
refuses unknown keys, and YAML 1.2 reading."""

from __future__ import annotations

import re
from typing import Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict

TaskName = Literal[
    "classification",
    "multi-label-classification",
    "relation-extraction",
    "token-classification",
    "question-answering",
    "generation",
    "seq2seq",
]
ONE_LABEL_TASKS = frozenset({"classification", "relation-extraction"})
"""Tasks with one label per text: stratified splits, per-class replay, the agent's per-sample units."""
GENERATIVE_TASKS = frozenset({"generation", "seq2seq"})
"""Tasks that write their output token by token (decoder-only or encoder-decoder models)."""
TEXT_TARGET_TASKS = frozenset({"question-answering"}) | GENERATIVE_TASKS
"""Tasks whose targets are texts (an answer span, a response), not names from a label set."""
TASK_COLUMNS = {
    "question-answering": ("context", "question", "answers", "answer", "answer_start"),
    "generation": ("prompt", "response", "messages"),
    "seq2seq": ("source", "target"),
}
"""The column roles of tasks that read more than a text and a label; ``data.columns`` renames them."""
DataFormat = Literal["auto", "csv", "tsv", "jsonl", "parquet", "conll", "semeval", "squad"]
Auto = Literal["auto"]
AUTO: Final = "auto"


class _Yaml12Loader(yaml.SafeLoader):
    """YAML 1.2's booleans: only ``true`` / ``false``. YAML 1.1 (PyYAML's default) also reads ``off``, ``on``,
    ``yes`` and ``no`` as booleans, so ``correction: off`` would arrive as ``False`` and be refused."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml(text: str) -> Any:
    """Parse YAML text as configs are read (``off`` and ``on`` stay words); raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=_Yaml12Loader)  # (a SafeLoader)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _auto_or_positive(value: Any, kind: type, *, minimum: float = 0.0, inclusive: bool = False) -> Any:
    """``'auto'``, or a number of ``kind`` above ``minimum`` (at least, with ``inclusive``)."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    name = "an integer" if kind is int else "a number"
    try:
        if isinstance(value, bool) or (kind is int and isinstance(value, float) and not value.is_integer()):
            raise ValueError
        number = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected 'auto' or {name}, got {value!r}") from None
    if number < minimum or (number == minimum and not inclusive):
        raise ValueError(f"expected 'auto' or {name} {'>=' if inclusive else '>'} {minimum:g}, got {value!r}")
    return number
