"""Task name -> adapter class. Later tasks (generation) register here."""

from __future__ import annotations

from autoft.tasks.base import TaskAdapter
from autoft.tasks.classification import ClassificationAdapter
from autoft.tasks.multilabel import MultiLabelAdapter
from autoft.tasks.ner import TokenClassificationAdapter
from autoft.tasks.qa import QuestionAnsweringAdapter
from autoft.tasks.relation import RelationExtractionAdapter

TASKS: dict[str, type[TaskAdapter]] = {}


def register_task(adapter: type[TaskAdapter]) -> type[TaskAdapter]:
    TASKS[adapter.name] = adapter
    return adapter


def get_adapter_class(name: str) -> type[TaskAdapter]:
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(sorted(TASKS))}") from None


register_task(ClassificationAdapter)
register_task(MultiLabelAdapter)
register_task(QuestionAnsweringAdapter)
register_task(RelationExtractionAdapter)
register_task(TokenClassificationAdapter)
