"""Extractive question answering: a span of the context answers the question.

The question and the context are read as one pair (``[CLS] question [SEP] context [SEP]``); a context longer
than ``max_length`` is read in overlapping windows (``stride`` tokens shared by neighbours), as 🤗 transformers'
``run_qa`` example does. The model is a plain ``AutoModelForQuestionAnswering`` (a span head: a start and an end
logit per token), so a saved run loads in plain transformers.

One example is one sample of the training loop, whatever its number of windows: a feature holds all its windows,
the collator lays them out as rows of the batch, and the loss and the probabilities are gathered back per
example — so the agent, the run's reports and its row ids see one question as one sample. A window that does not
contain the answer is trained to point at ``[CLS]`` (no answer here), as SQuAD v1 fine-tuning does.

Prediction takes, over all windows, the span with the highest start + end logit among the ``N_BEST`` best starts
and ends that lie in the context, end not before start, at most ``MAX_ANSWER_TOKENS`` long. Scores: SQuAD v1.1's
exact match and token F1 (:func:`autoft.tasks.text_metrics.squad_scores`).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, cast

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModelForQuestionAnswering

from autoft.data.loading import Example
from autoft.tasks.base import Feature, TaskAdapter

log = logging.getLogger(__name__)

N_BEST = 20
MAX_ANSWER_TOKENS = 30
INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")


class QuestionAnsweringAdapter(TaskAdapter):
    name = "question-answering"
    primary_metric = "f1"
    summary_metrics: ClassVar[tuple[str, ...]] = ("exact_match", "f1", "loss")
    peft_task_type = "QUESTION_ANS"
    default_max_length = 384
    model_keys: ClassVar[frozenset[str]] = frozenset({"windows"})

    def __init__(self, labels: list[str], tokenizer: Any, *, max_length: int | str = "auto") -> None:
        super().__init__(labels, tokenizer, max_length=max_length)
        self.stride = self.max_length // 3
        """Tokens a window shares with the next (128 at the default 384, as in run_qa)."""
        self.max_question = self.max_length // 2

    @staticmethod
    def auto_model_class() -> Any:
        return AutoModelForQuestionAnswering

    # --- data ---------------------------------------------------------------------------------
    def _questions(self, examples: list[Example]) -> list[str]:
        """The questions, each cut to ``max_question`` tokens (the context needs the rest of the window)."""
        questions = [(e.query or "").lstrip() for e in examples]
        encoded = self.tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
        cut = 0
        for i, offsets in enumerate(encoded["offset_mapping"]):
            if len(offsets) > self.max_question:
                questions[i], cut = questions[i][: offsets[self.max_question - 1][1]], cut + 1
        if cut:
            log.warning("%d questions longer than %d tokens were cut to that length", cut, self.max_question)
        return questions

    def encode(self, examples: list[Example], *, with_labels: bool = True) -> list[Feature]:
        encoded = self.tokenizer(
            self._questions(examples),
            [e.text for e in examples],
            truncation="only_second",
            max_length=self.max_length,
            stride=self.stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        features: list[Feature] = [
            {
                "windows": [],
                "offsets": [],
                "input_ids": [],
                "context": e.text,
                "index": i,
                "answers": [a["text"] for a in cast("list[dict[str, Any]]", e.label)] if with_labels else [],
            }
            for i, e in enumerate(examples)
        ]
        for w, i in enumerate(encoded["overflow_to_sample_mapping"]):
            sequence = encoded.sequence_ids(w)
            offsets = [tuple(o) if s == 1 else None for o, s in zip(encoded["offset_mapping"][w], sequence)]
            window = {k: encoded[k][w] for k in INPUT_KEYS if k in encoded}
            answers = cast("list[dict[str, Any]]", examples[i].label)
            window["span"] = self._span(offsets, answers[0]) if with_labels else (0, 0)
            feature = features[i]
            feature["windows"].append(window)
            feature["offsets"].append(offsets)
            feature["input_ids"] = feature["input_ids"] + window["input_ids"]  # its length: the tokens it costs
        return features

    @staticmethod
    def _span(offsets: list[tuple[int, int] | None], answer: dict[str, Any]) -> tuple[int, int]:
        """(start token, end token) of ``answer`` in a window, or (0, 0) — [CLS] — when the window lacks it."""
        start, end = answer["start"], answer["start"] + len(answer["text"])
        context = [t for t, o in enumerate(offsets) if o is not None]
        known = cast("list[tuple[int, int]]", offsets)  # read only at the context's tokens, which have offsets
        if not context or known[context[0]][0] > start or known[context[-1]][1] < end:
            return 0, 0
        first = next(t for t in context if known[t][1] > start)
        last = next(t for t in reversed(context) if known[t][0] < end)
        return first, max(first, last)

    def collate(self, features: list[Feature], *, pad_to: int | None = None) -> dict[str, torch.Tensor]:
        """Every window of every feature as a row; ``labels`` [W, 3]: start, end and the row's example in the
        batch."""
        rows, labels = [], []
        for b, feature in enumerate(features):
            for window in feature["windows"]:
                rows.append({k: window[k] for k in INPUT_KEYS if k in window})
                labels.append((*window["span"], b))
        batch = dict(
            self.tokenizer.pad(
                rows, padding="max_length" if pad_to else "longest", max_length=pad_to, return_tensors="pt"
            )
        )
        batch["labels"] = torch.tensor(labels, dtype=torch.long)
        return batch

    def make_collator(self, pad_to: int | None) -> Any:  # collate is overridden: windows are laid out there
        raise NotImplementedError

    # --- training -----------------------------------------------------------------------------
    def forward(self, model: Any, batch: dict[str, torch.Tensor], labels: torch.Tensor | None = None) -> torch.Tensor:
        output = model(**batch)
        return torch.stack([output.start_logits, output.end_logits], dim=-1)  # [W, T, 2]

    def per_sample_loss(
        self, logits: torch.Tensor, labels: torch.Tensor, transition: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each window's loss is the mean of its start and end cross-entropies; an example's is the sum over its
        windows, counted as that many units (the batch loss is then the mean over windows, as run_qa's)."""
        self._no_transition(self.name, transition)
        logits = logits.float()
        window = (
            F.cross_entropy(logits[..., 0], labels[:, 0], reduction="none")
            + F.cross_entropy(logits[..., 1], labels[:, 1], reduction="none")
        ) / 2
        owner = labels[:, 2]
        n = int(owner.max()) + 1
        losses = torch.zeros(n, device=logits.device, dtype=window.dtype).index_add(0, owner, window)
        units = torch.zeros(n, device=logits.device, dtype=window.dtype).index_add(0, owner, torch.ones_like(window))
        return losses, units

    # --- inference ----------------------------------------------------------------------------
    def batch_probabilities(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        """Per example, its windows' start and end logits ``[windows, T, 2]`` (the span is chosen in
        :meth:`finalize`, which knows the windows' character offsets)."""
        owner = batch["labels"][:, 2].cpu().numpy()
        values = logits.float().cpu().numpy()
        return [values[owner == b] for b in range(int(owner.max()) + 1)]

    def finalize(self, probabilities: np.ndarray, feature: Feature) -> Any:
        """The best answer span over the feature's windows: ``{"answer", "start", "end", "score"}`` (character
        offsets in the context; ``score``: the span's share of the softmax over all candidate spans)."""
        candidates = []  # (logit sum, start char, end char)
        for window, offsets in zip(probabilities, feature["offsets"]):
            n = len(offsets)
            inside = np.array([o is not None for o in offsets])
            if not inside.any():
                continue
            start_logits = np.where(inside, window[:n, 0], -np.inf)
            end_logits = np.where(inside, window[:n, 1], -np.inf)
            starts = np.argsort(-start_logits)[:N_BEST]
            ends = np.argsort(-end_logits)[:N_BEST]
            for s in starts:
                for e in ends:
                    if inside[s] and inside[e] and s <= e < s + MAX_ANSWER_TOKENS:
                        candidates.append((start_logits[s] + end_logits[e], offsets[s][0], offsets[e][1]))
        if not candidates:
            return {"answer": "", "start": 0, "end": 0, "score": 0.0}
        scores = np.array([c[0] for c in candidates], dtype=np.float64)
        best = int(np.argmax(scores))
        share = float(1.0 / np.exp(scores - scores[best]).sum())
        _, start, end = candidates[best]
        return {"answer": feature["context"][start:end], "start": int(start), "end": int(end), "score": share}

    def label_margin(self, probabilities: Any, feature: Feature) -> float:
        """How far the model's answer agrees with the given one: 2 x token F1 - 1 (1: the same, -1: no overlap)."""
        from autoft.tasks.text_metrics import squad_scores

        if not feature["answers"]:
            return 0.0
        return 2 * squad_scores([probabilities["answer"]], [feature["answers"]])["f1"] - 1

    def decode(self, probabilities: Any) -> str:
        return probabilities["answer"]

    def metrics(self, gold: list[Example], predicted: list[Any]) -> dict[str, Any]:
        from autoft.tasks.text_metrics import squad_scores

        return squad_scores(list(predicted), [[a["text"] for a in cast("list[dict[str, Any]]", e.label)] for e in gold])

    def format_prediction(self, example: Example, probabilities: Any) -> dict[str, Any]:
        return {
            "question": example.query,
            "answer": probabilities["answer"],
            "start": probabilities["start"],
            "end": probabilities["end"],
            "score": round(probabilities["score"], 6),
        }
