"""``seq2seq``: an encoder-decoder model (T5, BART, Marian, ...) reads the source and writes the target.

The source is the encoder's input (cut to ``max_length``), the target the decoder's labels (every target token is
learned); the decoder's inputs are the labels shifted right behind the model's decoder start token, as transformers'
models build them. Scoring and decoding settings are those of every generative task (:mod:`autoft.tasks.generation`).
"""

from __future__ import annotations

from typing import Any, cast

import torch
from transformers import AutoModelForSeq2SeqLM

from autoft.data.loading import Example
from autoft.tasks.base import Feature
from autoft.tasks.generation import IGNORE, TextGenerationAdapter


class Seq2SeqAdapter(TextGenerationAdapter):
    name = "seq2seq"
    peft_task_type = "SEQ_2_SEQ_LM"
    model_keys = frozenset({"input_ids", "attention_mask", "labels"})

    def __init__(
        self, labels: list[str], tokenizer: Any, *, max_length: int | str = "auto", generation: Any = None
    ) -> None:
        super().__init__(labels, tokenizer, max_length=max_length, generation=generation)
        self.decoder_start: int | None = None

    @staticmethod
    def auto_model_class() -> Any:
        return AutoModelForSeq2SeqLM

    def prepare_model(self, model: Any) -> Any:
        """Remember the model's decoder start token (T5 and Marian: the pad token; BART: the end of sequence)."""
        start = getattr(model.config, "decoder_start_token_id", None)
        self.decoder_start = start if start is not None else self.tokenizer.pad_token_id
        return model

    # --- data ---------------------------------------------------------------------------------
    def encode(self, examples: list[Example], *, with_labels: bool = True) -> list[Feature]:
        encoded = self.tokenizer([e.text for e in examples], truncation=True, max_length=self.max_length)
        targets = (
            self.tokenizer(
                text_target=[cast("list[str]", e.label)[0] for e in examples],
                truncation=True,
                max_length=self.max_length,
            )["input_ids"]
            if with_labels
            else None
        )
        features = []
        for i in range(len(examples)):
            feature = {"input_ids": encoded["input_ids"][i], "attention_mask": encoded["attention_mask"][i], "index": i}
            if targets is not None:
                feature["labels"] = targets[i]
            features.append(feature)
        return features

    def collate(self, features: list[Feature], *, pad_to: int | None = None) -> dict[str, torch.Tensor]:
        batch = super().collate(features, pad_to=pad_to)
        if batch.get("labels") is None:
            batch.pop("labels", None)
        else:  # the decoder reads the target shifted right: what the model's own forward would do
            if self.decoder_start is None:
                raise RuntimeError("Seq2SeqAdapter.prepare_model(model) must run before batches are made")
            labels = batch["labels"]
            shifted = labels.new_full(labels.shape, self.tokenizer.pad_token_id)
            shifted[:, 1:] = labels[:, :-1].masked_fill(labels[:, :-1] == IGNORE, self.tokenizer.pad_token_id)
            shifted[:, 0] = self.decoder_start
            batch["decoder_input_ids"] = shifted
        return batch

    # --- inference ----------------------------------------------------------------------------
    def batch_outputs(self, model: Any, batch: dict[str, torch.Tensor], logits: torch.Tensor | None) -> list[str]:
        output = self.generate(model, input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return [text.strip() for text in self.tokenizer.batch_decode(output, skip_special_tokens=True)]
