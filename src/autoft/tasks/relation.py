"""Relation extraction: a sentence with two marked entities → the relation between them.

The entities are marked inline (``<e1>…</e1>``, ``<e2>…</e2>``; SemEval-2010 Task 8's files are read directly).
The four markers are added to the tokenizer as special tokens (the model's embeddings grow by four rows), and
the relation is read from the representations of the two entity-start markers (``<e1>``, ``<e2>``) — the "entity
markers, entity start" recipe of Baldini Soares et al. (2019). The model is a plain transformers token
classifier (``AutoModelForTokenClassification``: one linear layer over every token's representation); the loss
and the prediction take the sum of its logits at the two start markers, i.e. a linear layer over
``h(<e1>) + h(<e2>)`` — the markers' embeddings differ, so the direction is kept. A model saved this way loads in
plain transformers.

Metric: SemEval-2010 Task 8's official score — macro-F1 over the relation types other than ``Other``, direction
counted ((9+1)-way with directionality): a prediction of the right type but the wrong direction is wrong, and
counts among that type's predictions (scorer v1.2).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModelForTokenClassification, DataCollatorForTokenClassification

from autoft.data.loading import ENTITY_MARKERS, Example, check_entity_markers
from autoft.errors import DataError
from autoft.tasks.base import Feature, TaskAdapter, margins_from_logits
from autoft.tasks.classification import label_count_scale

IGNORE = -100
OTHER = "Other"
_DIRECTED = re.compile(r"^(.*)\((e[12]),(e[12])\)$")


def relation_type(label: str) -> str:
    """``Cause-Effect(e2,e1)`` → ``Cause-Effect``; a label without a direction is its own type."""
    match = _DIRECTED.match(label)
    return match.group(1) if match else label


def official_scores(gold: list[str], predicted: list[str], other: str = OTHER) -> dict[str, Any]:
    """SemEval-2010 Task 8's (9+1)-way scores with directionality (its scorer v1.2, part iii): per relation type
    (``other`` left out), precision = right type and direction / predicted of that type, recall = right / gold of
    that type; macro-F1 averages the types' F1, micro-F1 pools their counts."""
    types = sorted({relation_type(g) for g in gold} - {other})
    correct: Counter[str] = Counter()
    predicted_n: Counter[str] = Counter()
    gold_n: Counter[str] = Counter()
    for g, p in zip(gold, predicted):
        gold_n[relation_type(g)] += 1
        predicted_n[relation_type(p)] += 1
        if g == p:
            correct[relation_type(g)] += 1
    per_type = {}
    for t in types:
        precision = correct[t] / predicted_n[t] if predicted_n[t] else 0.0
        recall = correct[t] / gold_n[t] if gold_n[t] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_type[t] = {"precision": precision, "recall": recall, "f1": f1}
    c, pn, gn = (sum(x[t] for t in types) for x in (correct, predicted_n, gold_n))
    micro_p, micro_r = (c / pn if pn else 0.0), (c / gn if gn else 0.0)
    return {
        "macro_f1": float(np.mean([v["f1"] for v in per_type.values()])) if per_type else 0.0,
        "micro_f1": 2 * micro_p * micro_r / (micro_p + micro_r) if micro_p + micro_r else 0.0,
        "per_type": per_type,
    }


class RelationExtractionAdapter(TaskAdapter):
    name = "relation-extraction"
    primary_metric = "macro_f1"
    summary_metrics: ClassVar[tuple[str, ...]] = ("accuracy", "macro_f1", "micro_f1", "loss")

    peft_task_type = "TOKEN_CLS"

    def __init__(self, labels: list[str], tokenizer: Any, *, max_length: int | str = "auto") -> None:
        super().__init__(labels, tokenizer, max_length=max_length)
        missing = [m for m in ENTITY_MARKERS if m not in tokenizer.get_vocab()]
        if missing:  # a run's saved tokenizer has them already
            tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
        self._starts = tokenizer.convert_tokens_to_ids(["<e1>", "<e2>"])

    @staticmethod
    def auto_model_class() -> Any:
        return AutoModelForTokenClassification

    def prepare_model(self, model: Any) -> Any:
        """Room in the embeddings for the entity markers (new rows start at the mean of the others)."""
        if model.get_input_embeddings().num_embeddings < len(self.tokenizer):
            model.resize_token_embeddings(len(self.tokenizer))
        return model

    def training_scale(self) -> float:  # as classification with this many labels
        return label_count_scale(len(self.labels))

    # --- data ---------------------------------------------------------------------------------
    @staticmethod
    def check_markers(examples: list[Example]) -> None:
        """Every text marks its two entities once each (``<e1>…</e1>``, ``<e2>…</e2>``), or a ``DataError`` names
        the example's ``file:line`` (``<input>:N`` for ``Run.predict``'s N-th text) and what is missing: without
        the markers there is no entity pair to read a relation from."""
        for i, example in enumerate(examples, 1):
            path, _, line = (example.origin or "").rpartition(":")
            if not path or not line.isdigit():
                path, line = example.origin or "<input>", str(i)
            if not isinstance(example.text, str):
                raise DataError(
                    f"{path}:{line}: expected a text with its two entities marked (<e1>...</e1> and "
                    f"<e2>...</e2>), got {type(example.text).__name__}"
                )
            check_entity_markers(Path(path), int(line), example.text)

    def encode(self, examples: list[Example], *, with_labels: bool = True) -> list[Feature]:
        self.check_markers(examples)
        encoded = self.tokenizer([e.text for e in examples], truncation=True, max_length=self.max_length)
        keys = [k for k in encoded if k in self.model_keys]
        features = []
        for i, example in enumerate(examples):
            ids = encoded["input_ids"][i]
            # 0 marks the positions without a label
            label = self.label2id[cast(str, example.label)] if with_labels else 0
            starts = [p for p, token in enumerate(ids) if token in self._starts] or [0]  # cut off: the first token
            feature = {k: encoded[k][i] for k in keys}
            feature["labels"] = [label if p in starts else IGNORE for p in range(len(ids))]
            feature["index"] = i
            features.append(feature)
        return features

    def relabel(self, feature: Feature, label: int) -> Feature:
        return {**feature, "labels": [int(label) if x != IGNORE else IGNORE for x in feature["labels"]]}

    def make_collator(self, pad_to: int | None) -> DataCollatorForTokenClassification:
        return DataCollatorForTokenClassification(
            self.tokenizer,
            padding="max_length" if pad_to else "longest",
            max_length=pad_to,
            label_pad_token_id=IGNORE,
            return_tensors="pt",
        )

    @staticmethod
    def pooled(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``([B, C] logits summed over the entity-start positions, [B] label ids)``."""
        mask = (labels != IGNORE).to(logits.dtype)
        return (logits.float() * mask[..., None]).sum(dim=1), labels.clamp_min(0).max(dim=1).values

    def per_sample_loss(
        self, logits: torch.Tensor, labels: torch.Tensor, transition: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pooled, target = self.pooled(logits, labels)
        if transition is None:
            loss = F.cross_entropy(pooled, target, reduction="none")
        else:  # forward-corrected, as in classification
            noisy = torch.softmax(pooled, dim=-1) @ transition.to(logits.device, torch.float32)
            loss = -torch.log(noisy.gather(1, target[:, None]).squeeze(1).clamp_min(1e-12))
        return loss, torch.ones_like(loss)

    # --- inference ----------------------------------------------------------------------------
    def batch_probabilities(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        pooled, _ = self.pooled(logits, batch["labels"])
        return list(torch.softmax(pooled, dim=-1).cpu().numpy())

    def label_margin(self, probabilities: np.ndarray, feature: Feature) -> float:
        given = next(x for x in feature["labels"] if x != IGNORE)
        return float(margins_from_logits(probabilities[None, :], np.array([given]))[0])

    def decode(self, probabilities: np.ndarray) -> str:
        return self.labels[int(np.argmax(probabilities))]

    def metrics(self, gold: list[Example], predicted: list[str | list[str]]) -> dict[str, Any]:
        y_true = [cast(str, e.label) for e in gold]
        scores = official_scores(y_true, cast("list[str]", list(predicted)), OTHER if OTHER in self.labels else "")
        return {
            "macro_f1": scores["macro_f1"],
            "micro_f1": scores["micro_f1"],
            "accuracy": float(np.mean([g == p for g, p in zip(y_true, predicted)])) if y_true else 0.0,
            "report": scores["per_type"],
        }

    def format_prediction(self, example: Example, probabilities: np.ndarray) -> dict[str, Any]:
        return {
            "text": example.text,
            "label": self.decode(probabilities),
            "probabilities": {label: round(float(p), 6) for label, p in zip(self.labels, probabilities)},
        }
