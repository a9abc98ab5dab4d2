"""One adapter per task; the training loop never branches on the task."""

from autoft.tasks.base import TaskAdapter
from autoft.tasks.classification import ClassificationAdapter
from autoft.tasks.ner import TokenClassificationAdapter, bio_spans
from autoft.tasks.registry import TASKS, get_adapter_class, register_task

__all__ = [
    "TASKS",
    "ClassificationAdapter",
    "TaskAdapter",
    "TokenClassificationAdapter",
    "bio_spans",
    "get_adapter_class",
    "register_task",
]
