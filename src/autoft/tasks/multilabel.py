"""Multi-label text classification: any number of labels per text (none included).

A sigmoid per label (``BCEWithLogits``, averaged over the labels), the head's biases starting at each label's
log-odds in the training data, twice the single-label epoch budget, a decision threshold per label tuned on
validation after training (the one that maximises that label's F1 there; 0.5 where validation has no example
of it, or no threshold beats 0.5), micro- and macro-F1, subset accuracy (every label right).
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

import numpy as np
import torch
import torch.nn.functional as F

from autoft.data.loading import Example
from autoft.tasks.base import Feature
from autoft.tasks.classification import ClassificationAdapter

THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.05), 2)
"""The candidates each label's decision threshold is chosen from."""
BIAS_LIMIT = 6.0
"""The initial biases are clipped to ``±BIAS_LIMIT`` (sigmoid 0.0025 … 0.9975): a label almost never (or almost
always) present still starts where one gradient step can move it."""


class MultiLabelAdapter(ClassificationAdapter):
    name = "multi-label-classification"
    primary_metric = "micro_f1"
    summary_metrics: ClassVar[tuple[str, ...]] = ("micro_f1", "macro_f1", "subset_accuracy", "loss")

    peft_task_type = "SEQ_CLS"
    model_options: ClassVar[dict[str, Any]] = {"problem_type": "multi_label_classification"}

    def __init__(self, labels: list[str], tokenizer: Any, *, max_length: int | str = "auto") -> None:
        super().__init__(labels, tokenizer, max_length=max_length)
        self.decision = {"thresholds": {label: 0.5 for label in self.labels}}

    def _multi_hot(self, labels: list[str]) -> list[float]:
        vector = [0.0] * len(self.labels)
        for label in labels:
            vector[self.label2id[label]] = 1.0
        return vector

    def target(self, example: Example) -> list[float]:
        """What ``labels`` holds for a labelled example: its label set, multi-hot."""
        return self._multi_hot(cast("list[str]", example.label))

    def training_scale(self) -> float:
        """Twice the single-label budget: each label is a yes/no decision of its own, learned from its positives
        alone (in an exploratory run on 600 SGD turns, not kept as a result file, validation micro-F1 was still
        rising when the single-label budget ended)."""
        return 2.0 * super().training_scale()

    def initial_bias(self, examples: list[Example]) -> np.ndarray | None:
        """Each label's log-odds in ``examples`` (the training data), read from the targets the loss trains on,
        smoothed (``(count + 1) / (n + 2)``) and clipped to ``±BIAS_LIMIT``: most labels are absent from most
        texts, and a head that starts at their base rate neither begins at a loss of ln 2 nor spends its first
        epochs learning to say no (untrained, at 0.5, it predicts a rare label for no text instead of for half)."""
        if not examples:
            return None
        counts = np.asarray([self.target(e) for e in examples], dtype=np.float64).sum(axis=0)
        prior = (counts + 1) / (len(examples) + 2)
        return np.clip(np.log(prior / (1 - prior)), -BIAS_LIMIT, BIAS_LIMIT)

    def relabel(self, feature: Feature, label: int) -> Feature:
        raise NotImplementedError(f"{self.name} has no single label per example to replace")

    def per_sample_loss(
        self, logits: torch.Tensor, labels: torch.Tensor, transition: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self._no_transition(self.name, transition)
        loss = F.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="none").mean(dim=1)
        return loss, torch.ones_like(loss)

    def batch_probabilities(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        return list(torch.sigmoid(logits.float()).cpu().numpy())

    def label_margin(self, probabilities: np.ndarray, feature: Feature) -> float:
        """The weakest label decision: ``min_k (2 p_k - 1)`` signed toward the given value (1 present, 0 absent)."""
        given = np.asarray(feature["labels"], dtype=np.float64)
        return float(np.min(np.where(given > 0.5, 2 * probabilities - 1, 1 - 2 * probabilities)))

    def _thresholds(self) -> np.ndarray:
        return np.array([self.decision["thresholds"].get(label, 0.5) for label in self.labels])

    def decode(self, probabilities: np.ndarray) -> list[str]:
        return [label for label, keep in zip(self.labels, probabilities >= self._thresholds()) if keep]

    def tune_decision(self, probabilities: list[np.ndarray], gold: list[Example]) -> dict[str, Any]:
        """Each label's threshold: the candidate with the best F1 for that label on ``gold`` (ties: nearest 0.5).
        A threshold that says yes to every text is a candidate only for a label most ``gold`` texts carry: for a
        rarer label it means the model has not learned it, and 0.5 stays (an under-trained model's thresholds
        would otherwise predict nearly every label)."""
        scores = np.stack(probabilities)
        truth = np.array([self._multi_hot(cast("list[str]", e.label)) for e in gold]) > 0.5
        thresholds = {}
        for k, label in enumerate(self.labels):
            best, chosen = -1.0, 0.5
            if truth[:, k].any():
                for t in sorted(THRESHOLDS, key=lambda t: abs(t - 0.5)):
                    predicted = scores[:, k] >= t
                    if predicted.all() and truth[:, k].mean() <= 0.5:
                        continue
                    tp = float((predicted & truth[:, k]).sum())
                    f1 = 2 * tp / max(float(predicted.sum() + truth[:, k].sum()), 1.0)
                    if f1 > best + 1e-12:
                        best, chosen = f1, float(t)
            thresholds[label] = chosen
        self.decision = {"thresholds": thresholds}
        return self.decision

    def metrics(self, gold: list[Example], predicted: list[str | list[str]]) -> dict[str, Any]:
        from sklearn.metrics import classification_report, f1_score

        y_true = np.array([self._multi_hot(cast("list[str]", e.label)) for e in gold], dtype=np.int_)
        y_pred = np.array([self._multi_hot(cast("list[str]", p)) for p in predicted], dtype=np.int_).reshape(
            y_true.shape
        )
        return {
            "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
            "subset_accuracy": float((y_true == y_pred).all(axis=1).mean()),
            "report": classification_report(
                y_true, y_pred, target_names=self.labels, output_dict=True, zero_division=0
            ),
        }

    def format_prediction(self, example: Example, probabilities: np.ndarray) -> dict[str, Any]:
        return {
            "text": example.text,
            "labels": self.decode(probabilities),
            "probabilities": {label: round(float(p), 6) for label, p in zip(self.labels, probabilities)},
        }
