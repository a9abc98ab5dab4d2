"""Token classification (NER) with word-level BIO tags.

Words are aligned to sub-word tokens: the first sub-token of each word carries the word's tag, the
others are ignored (label -100). Scores are entity-level (seqeval). Raw text given for prediction is
split into words by the tokenizer's own pre-tokenizer, so entity spans carry character offsets.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, cast

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModelForTokenClassification, DataCollatorForTokenClassification

from autoft.data.loading import Example
from autoft.io import to_builtin
from autoft.tasks.base import Feature, TaskAdapter, margins_from_logits

IGNORE = -100
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


class TokenClassificationAdapter(TaskAdapter):
    name = "token-classification"
    primary_metric = "f1"
    summary_metrics: ClassVar[tuple[str, ...]] = ("precision", "recall", "f1", "loss")

    def __init__(self, labels: list[str], tokenizer: Any, *, max_length: int | str = "auto") -> None:
        super().__init__(labels, tokenizer, max_length=max_length)
        self._outside = self.label2id.get("O", 0)

    peft_task_type = "TOKEN_CLS"

    @staticmethod
    def auto_model_class() -> Any:
        return AutoModelForTokenClassification

    def training_scale(self) -> float:
        # Entities are sparse among 'O' tags: a short run learns to say 'O' and stops there.
        return 1.5

    # --- words --------------------------------------------------------------------------------
    def words(self, example: Example) -> tuple[str, list[str], list[tuple[int, int]]]:
        """(text, words, character offsets of each word in text)."""
        if isinstance(example.text, list):
            given = cast("list[str]", example.text)  # words (chat transcripts are generation's)
            offsets, position = [], 0
            for word in given:
                offsets.append((position, position + len(word)))
                position += len(word) + 1
            return " ".join(given), list(given), offsets
        text = example.text
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        pre = getattr(backend, "pre_tokenizer", None) if backend is not None else None
        if pre is not None:
            pieces = pre.pre_tokenize_str(text)
            return text, [w for w, _ in pieces], [tuple(span) for _, span in pieces]
        matches = list(_WORD.finditer(text))
        return text, [m.group() for m in matches], [m.span() for m in matches]

    # --- data ---------------------------------------------------------------------------------
    def encode(self, examples: list[Example], *, with_labels: bool = True) -> list[Feature]:
        word_lists = [self.words(e)[1] for e in examples]
        encoded = self.tokenizer(word_lists, is_split_into_words=True, truncation=True, max_length=self.max_length)
        keys = [k for k in encoded if k in self.model_keys]
        features = []
        for i, example in enumerate(examples):
            word_ids = encoded.word_ids(i)
            labels = [IGNORE] * len(word_ids)
            word_index = []
            previous = None
            for position, word in enumerate(word_ids):
                if word is not None and word != previous:
                    # Without gold tags the first sub-tokens are still marked, to locate words at inference.
                    labels[position] = self.label2id[cast("list[str]", example.label)[word]] if with_labels else 0
                    word_index.append(word)
                previous = word
            feature = {k: encoded[k][i] for k in keys}
            feature["labels"] = labels
            # Which word each marked sub-token starts: words without sub-tokens (blank, invisible, or cut
            # off by max_length) are absent and get 'O' in `finalize`.
            feature["word_index"] = word_index
            feature["n_words"] = len(word_lists[i])
            feature["index"] = i
            features.append(feature)
        return features

    def mask_words(self, feature: Feature, words: list[int]) -> Feature:
        masked, labels = set(words), list(feature["labels"])
        positions = [p for p, label in enumerate(labels) if label != IGNORE]  # in the order of word_index
        for position, word in zip(positions, feature["word_index"]):
            if word in masked:
                labels[position] = IGNORE
        return {**feature, "labels": labels}

    def retag_words(self, feature: Feature, tags: dict[int, str]) -> Feature:
        labels = list(feature["labels"])
        positions = [p for p, label in enumerate(labels) if label != IGNORE]  # in the order of word_index
        for position, word in zip(positions, feature["word_index"]):
            if word in tags:
                labels[position] = self.label2id[tags[word]]
        return {**feature, "labels": labels}

    def make_collator(self, pad_to: int | None) -> DataCollatorForTokenClassification:
        return DataCollatorForTokenClassification(
            self.tokenizer,
            padding="max_length" if pad_to else "longest",
            max_length=pad_to,
            label_pad_token_id=IGNORE,
            return_tensors="pt",
        )

    def per_sample_loss(
        self, logits: torch.Tensor, labels: torch.Tensor, transition: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self._no_transition(self.name, transition)
        token_loss = F.cross_entropy(
            logits.float().transpose(1, 2), labels, ignore_index=IGNORE, reduction="none"
        )  # [B, T]
        return token_loss.sum(dim=1), (labels != IGNORE).sum(dim=1).to(token_loss.dtype)

    def batch_probabilities(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        probs = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        mask = (batch["labels"] != IGNORE).cpu().numpy()
        return [p[m] for p, m in zip(probs, mask)]

    def finalize(self, probabilities: np.ndarray, feature: Feature) -> np.ndarray:
        full = np.zeros((feature["n_words"], len(self.labels)), dtype=probabilities.dtype)
        full[:, self._outside] = 1.0
        full[feature["word_index"]] = probabilities
        return full

    def label_margin(self, probabilities: np.ndarray, feature: Feature) -> float:
        given = np.array([label for label in feature["labels"] if label != IGNORE], dtype=np.int64)
        if not len(given):
            return 0.0
        return float(margins_from_logits(probabilities[feature["word_index"]], given).min())

    def decode(self, probabilities: np.ndarray) -> list[str]:
        return [self.labels[int(i)] for i in np.argmax(probabilities, axis=-1)] if len(probabilities) else []

    def metrics(self, gold: list[Example], predicted: list[str | list[str]]) -> dict[str, Any]:
        from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

        y_true = [list(cast("list[str]", e.label)) for e in gold]
        y_pred = [list(p) for p in predicted]
        return {
            "precision": float(precision_score(y_true, y_pred, zero_division=0)),
            "recall": float(recall_score(y_true, y_pred, zero_division=0)),
            "f1": float(f1_score(y_true, y_pred, zero_division=0)),
            "report": to_builtin(classification_report(y_true, y_pred, output_dict=True, zero_division=0)),
        }

    def format_prediction(self, example: Example, probabilities: np.ndarray) -> dict[str, Any]:
        text, words, offsets = self.words(example)
        tags = self.decode(probabilities)
        scores = [float(np.max(p)) for p in probabilities]
        entities = []
        for kind, first, last in bio_spans(tags):
            start, end = offsets[first][0], offsets[last][1]
            entities.append(
                {
                    "type": kind,
                    "start": start,
                    "end": end,
                    "text": text[start:end],
                    "score": round(float(np.mean(scores[first : last + 1])), 6),
                }
            )
        return {"text": text, "entities": entities, "tokens": words, "tags": tags}


def bio_spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """(type, first word, last word) of each entity in a BIO/IOB2 (or IOBES) tag sequence, as seqeval reads
    it (lenient: a stray I- starts an entity)."""
    from seqeval.metrics.sequence_labeling import get_entities

    return [(kind, first, last) for kind, first, last in get_entities(list(tags))]
