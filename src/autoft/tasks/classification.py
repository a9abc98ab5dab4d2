"""Sequence (text) classification."""

from __future__ import annotations

import math
from typing import Any, ClassVar, cast

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

from autoft.data.loading import Example
from autoft.tasks.base import Feature, TaskAdapter, margins_from_logits


def label_count_scale(n_labels: int) -> float:
    """The epoch budget's factor for ``n_labels`` classes: each needs its share of updates — x1 up to 4 labels,
    x1.33 for 16, x1.71 for 77."""
    return 1.0 + math.log2(max(n_labels, 4) / 4) / 6


class ClassificationAdapter(TaskAdapter):
    name = "classification"
    primary_metric = "macro_f1"
    summary_metrics: ClassVar[tuple[str, ...]] = ("accuracy", "macro_f1", "loss")

    peft_task_type = "SEQ_CLS"

    @staticmethod
    def auto_model_class() -> Any:
        return AutoModelForSequenceClassification

    def training_scale(self) -> float:
        return label_count_scale(len(self.labels))

    def encode(self, examples: list[Example], *, with_labels: bool = True) -> list[Feature]:
        encoded = self.tokenizer([e.text for e in examples], truncation=True, max_length=self.max_length)
        keys = [k for k in encoded if k in self.model_keys]
        features = []
        for i, example in enumerate(examples):
            feature = {k: encoded[k][i] for k in keys}
            if with_labels:
                feature["labels"] = self.target(example)
            feature["index"] = i
            features.append(feature)
        return features

    def target(self, example: Example) -> Any:
        """What ``labels`` holds for a labelled example: its class id."""
        return self.label2id[cast(str, example.label)]

    def relabel(self, feature: Feature, label: int) -> Feature:
        return {**feature, "labels": int(label)}

    def make_collator(self, pad_to: int | None) -> DataCollatorWithPadding:
        return DataCollatorWithPadding(
            self.tokenizer, padding="max_length" if pad_to else "longest", max_length=pad_to, return_tensors="pt"
        )

    def per_sample_loss(
        self, logits: torch.Tensor, labels: torch.Tensor, transition: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy; with ``transition`` ``T[y, k]`` = P(given k | true y), forward-corrected (Patrini et
        al., 2017): the given label's log-probability under ``softmax(logits) @ T``, so the model itself
        learns the true class while the noise model explains the given one."""
        if transition is None:
            loss = F.cross_entropy(logits.float(), labels, reduction="none")
        else:
            noisy = torch.softmax(logits.float(), dim=-1) @ transition.to(logits.device, torch.float32)
            loss = -torch.log(noisy.gather(1, labels[:, None]).squeeze(1).clamp_min(1e-12))
        return loss, torch.ones_like(loss)

    def batch_probabilities(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        return list(torch.softmax(logits.float(), dim=-1).cpu().numpy())

    def label_margin(self, probabilities: np.ndarray, feature: Feature) -> float:
        return float(margins_from_logits(probabilities[None, :], np.array([feature["labels"]]))[0])

    def decode(self, probabilities: np.ndarray) -> str | list[str]:
        return self.labels[int(np.argmax(probabilities))]

    def metrics(self, gold: list[Example], predicted: list[str | list[str]]) -> dict[str, Any]:
        from sklearn.metrics import accuracy_score, classification_report, f1_score

        y_true = [e.label for e in gold]
        return {
            "accuracy": float(accuracy_score(y_true, predicted)),
            "macro_f1": float(f1_score(y_true, predicted, labels=self.labels, average="macro", zero_division=0)),
            "report": classification_report(y_true, predicted, labels=self.labels, output_dict=True, zero_division=0),
        }

    def format_prediction(self, example: Example, probabilities: np.ndarray) -> dict[str, Any]:
        return {
            "text": example.text,
            "label": self.decode(probabilities),
            "probabilities": {label: round(float(p), 6) for label, p in zip(self.labels, probabilities)},
        }
