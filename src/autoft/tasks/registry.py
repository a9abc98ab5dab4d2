"""Task name -> adapter class. Later tasks (generation) register here."""

from __future__ import annotations

from typing import Any

from autoft.config import GENERATIVE_TASKS, Config
from autoft.tasks.base import TaskAdapter
from autoft.tasks.classification import ClassificationAdapter
from autoft.tasks.generation import CausalGenerationAdapter
from autoft.tasks.multilabel import MultiLabelAdapter
from autoft.tasks.ner import TokenClassificationAdapter
from autoft.tasks.qa import QuestionAnsweringAdapter
from autoft.tasks.relation import RelationExtractionAdapter
from autoft.tasks.seq2seq import Seq2SeqAdapter

TASKS: dict[str, type[TaskAdapter]] = {}


def register_task(adapter: type[TaskAdapter]) -> type[TaskAdapter]:
    TASKS[adapter.name] = adapter
    return adapter


def get_adapter_class(name: str) -> type[TaskAdapter]:
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(sorted(TASKS))}") from None


def make_adapter(config: Config, labels: list[str], tokenizer: Any) -> TaskAdapter:
    """The adapter of ``config.task`` with the config's settings (generative tasks: its ``generation`` section)."""
    options = {"generation": config.generation} if config.task in GENERATIVE_TASKS else {}
    return get_adapter_class(config.task)(labels, tokenizer, max_length=config.training.max_length, **options)


register_task(CausalGenerationAdapter)
register_task(ClassificationAdapter)
register_task(MultiLabelAdapter)
register_task(QuestionAnsweringAdapter)
register_task(RelationExtractionAdapter)
register_task(Seq2SeqAdapter)
register_task(TokenClassificationAdapter)
