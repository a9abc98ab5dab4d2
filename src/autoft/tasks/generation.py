"""Generative tasks: a model writes the output text token by token.

``generation`` fine-tunes a decoder-only (causal) language model on prompt → response pairs, the loss on the
response tokens only (the prompt's labels are -100), the prompt rendered with the model's chat template when it
has one (SmolLM2-Instruct's ChatML by default) and ended by the template's generation prompt; the response ends
with the template's end of turn (or the end-of-sequence token), so the model learns where to stop. A prompt that
does not fit ``max_length`` with its response is cut from the left — the response is never cut while half of
``max_length`` is left for it — and the log says how many were.

Validation during training is the loss on the validation responses (teacher-forced: cheap, and what the agent's
reward reads); the best epoch is the one with the lowest. Test and ``evaluate`` generate (``GenerationConfig``:
greedy by default, beam search or seeded sampling) and score the outputs with ROUGE-1/2/L, sacreBLEU, chrF and
SQuAD exact match / token F1 against every reference, with the loss and its perplexity.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, cast

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, DataCollatorForSeq2Seq

from autoft.config import GenerationConfig
from autoft.data.loading import Example
from autoft.tasks.base import Feature, TaskAdapter

log = logging.getLogger(__name__)

IGNORE = -100


class TextGenerationAdapter(TaskAdapter):
    """What decoder-only and encoder-decoder generation share: scoring, decoding settings, prediction records."""

    primary_metric = "loss"
    summary_metrics: ClassVar[tuple[str, ...]] = ("rouge1", "rouge2", "rougeL", "bleu", "chrf", "loss")
    greater_is_better = False
    validate_by_loss = True
    generates = True
    cpu_batch_size = 8
    horizon_rate = None  # measured for encoders only; a language model's head is its (tied) embeddings
    default_max_length = 512
    streamer: Any = None

    def __init__(
        self, labels: list[str], tokenizer: Any, *, max_length: int | str = "auto", generation: Any = None
    ) -> None:
        super().__init__(labels, tokenizer, max_length=max_length)
        self.generation = generation if generation is not None else GenerationConfig()
        if tokenizer.pad_token_id is None:  # GPT-2 and friends have none: padding is masked anyway
            tokenizer.pad_token = tokenizer.eos_token

    shift: ClassVar[int] = 0
    """How far a label stands from the position whose logits predict it (a causal model predicts the next token)."""

    def training_scale(self) -> float:
        """A third of sentence classification's: supervised fine-tuning of a pretrained (instruction-tuned)
        language model takes a few passes (with LoRA's x1.5: 5 epochs planned at 150 pairs, 4 at 300-600, 2 at
        3,000), and more over-fits its wording; early stopping on the validation loss ends it sooner."""
        return 1 / 3

    # --- generating ---------------------------------------------------------------------------
    def generate_kwargs(self) -> dict[str, Any]:
        g = self.generation
        kwargs: dict[str, Any] = {
            "max_new_tokens": g.max_new_tokens,
            "num_beams": g.num_beams,
            "do_sample": g.do_sample,
            "repetition_penalty": g.repetition_penalty,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if g.do_sample:
            kwargs.update(temperature=g.temperature, top_p=g.top_p)
        else:  # the model's generation_config may ask for sampling; greedy means greedy
            kwargs.update(temperature=None, top_p=None, top_k=None)
        return kwargs

    def make_collator(self, pad_to: int | None) -> Any:
        return DataCollatorForSeq2Seq(
            self.tokenizer,
            padding="max_length" if pad_to else "longest",
            max_length=pad_to,
            label_pad_token_id=IGNORE,
            return_tensors="pt",
        )

    def per_sample_loss(
        self, logits: torch.Tensor, labels: torch.Tensor, transition: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed cross-entropy of each sample's target tokens, and their number (the loss is per token).
        ``logits`` are the whole sequence's ``[B, T, V]``, or already those of the labelled positions only,
        packed ``[N, V]`` in row-major order (:meth:`CausalGenerationAdapter.forward`)."""
        self._no_transition(self.name, transition)
        labels = labels[:, self.shift :]
        mask = labels != IGNORE
        if logits.dim() == 3:
            logits = logits[:, : logits.shape[1] - self.shift][mask]
        token = F.cross_entropy(logits.float(), labels[mask], reduction="none")
        losses = torch.zeros(labels.shape[0], device=logits.device).index_add(0, mask.nonzero()[:, 0], token)
        return losses, mask.sum(dim=1).to(losses.dtype)

    def generate(self, model: Any, **inputs: torch.Tensor) -> torch.Tensor:
        """``model.generate`` with the decoding settings (seeded when sampling), feeding ``self.streamer`` (a
        transformers streamer, set by the server for one streamed request) when there is one."""
        if self.generation.do_sample:
            torch.manual_seed(self.generation.seed)
        extra = {} if self.streamer is None else {"streamer": self.streamer}
        return model.generate(**inputs, **self.generate_kwargs(), **extra)

    # --- inference ----------------------------------------------------------------------------
    def batch_probabilities(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        raise NotImplementedError("generative tasks predict by generating (batch_outputs)")

    def label_margin(self, probabilities: Any, feature: Feature) -> float:
        return 0.0

    def decode(self, probabilities: Any) -> str:
        return probabilities

    def metrics(self, gold: list[Example], predicted: list[Any]) -> dict[str, Any]:
        from autoft.tasks.text_metrics import rouge_scores, squad_scores, translation_scores

        if not gold or predicted is None or any(p is None for p in predicted):
            return {}
        references = [list(cast("list[str]", e.label)) for e in gold]
        predicted = [p.strip() for p in predicted]
        return {
            **rouge_scores(predicted, references),
            **translation_scores(predicted, references),
            **squad_scores(predicted, references),
        }

    def format_prediction(self, example: Example, probabilities: Any) -> dict[str, Any]:
        return {"input": example.text, "output": probabilities}


class CausalGenerationAdapter(TextGenerationAdapter):
    name = "generation"
    peft_task_type = "CAUSAL_LM"
    shift = 1

    def __init__(
        self, labels: list[str], tokenizer: Any, *, max_length: int | str = "auto", generation: Any = None
    ) -> None:
        super().__init__(labels, tokenizer, max_length=max_length, generation=generation)
        self._warned = False

    @staticmethod
    def auto_model_class() -> Any:
        return AutoModelForCausalLM

    # --- data ---------------------------------------------------------------------------------
    def messages(self, example: Example) -> list[dict[str, str]]:
        messages = (
            list(cast("list[dict[str, str]]", example.text))
            if isinstance(example.text, list)
            else [{"role": "user", "content": example.text}]
        )
        system = self.generation.system_prompt
        if system and messages[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": system})
        return messages

    def render(self, example: Example) -> tuple[str, str | None]:
        """(prompt text, response text): with a chat template, the prompt ends with the assistant's turn opening
        and the response with the template's end of turn; without one, prompt and response are joined by a
        newline and the response ends with the end-of-sequence token."""
        messages = self.messages(example)
        response = cast("list[str]", example.label)[0] if example.label else None
        if getattr(self.tokenizer, "chat_template", None):
            prompt = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            if response is None:
                return prompt, None
            whole = self.tokenizer.apply_chat_template(
                messages + [{"role": "assistant", "content": response}], tokenize=False
            )
            if whole.startswith(prompt):
                return prompt, whole[len(prompt) :]
            return prompt, response + (self.tokenizer.eos_token or "")
        prompt = "\n".join(m["content"] for m in messages) + "\n"
        return prompt, None if response is None else response + (self.tokenizer.eos_token or "")

    def encode(self, examples: list[Example], *, with_labels: bool = True) -> list[Feature]:
        features, cut = [], 0
        for i, example in enumerate(examples):
            prompt, response = self.render(example if with_labels else Example(example.text, None))
            prompt_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            response_ids = self.tokenizer(response, add_special_tokens=False)["input_ids"] if response else []
            # The response keeps its tokens while the prompt keeps at least half the length; then its end goes.
            response_ids = response_ids[: self.max_length - min(len(prompt_ids), self.max_length // 2)]
            room = self.max_length - len(response_ids)
            if len(prompt_ids) > room:
                prompt_ids, cut = prompt_ids[len(prompt_ids) - room :], cut + 1
            ids = prompt_ids + response_ids
            features.append(
                {
                    "input_ids": ids,
                    "attention_mask": [1] * len(ids),
                    "labels": [IGNORE] * len(prompt_ids) + response_ids,
                    "index": i,
                }
            )
        if cut and not self._warned:
            log.warning(
                "%d of %d prompts did not fit in max_length (%d tokens) beside their response: cut from the "
                "left (a larger training.max_length keeps them whole)",
                cut,
                len(examples),
                self.max_length,
            )
            self._warned = True
        return features

    def forward(self, model: Any, batch: dict[str, torch.Tensor], labels: torch.Tensor | None = None) -> torch.Tensor:
        """With ``labels``: the logits of the positions that predict a labelled token only, packed ``[N, V]`` in
        row-major order — the output layer runs on the response's hidden states alone, so a batch does not hold
        ``[B, T, V]`` logits over a 49k-token vocabulary (gigabytes on long prompts)."""
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # under peft adapters
        backbone, head = inner.base_model, inner.get_output_embeddings()
        if labels is None or backbone is inner or head is None:
            return model(**batch).logits
        hidden = backbone(**batch, use_cache=False).last_hidden_state
        return head(hidden[:, : hidden.shape[1] - self.shift][labels[:, self.shift :] != IGNORE])

    # --- inference ----------------------------------------------------------------------------
    def batch_outputs(self, model: Any, batch: dict[str, torch.Tensor], logits: torch.Tensor | None) -> list[str]:
        """Generate from each row's prompt (its tokens before the first labelled one), left-padded."""
        ids, attention, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        prompts = []
        for row in range(ids.shape[0]):
            labelled = (labels[row] != IGNORE).nonzero()
            end = int(labelled[0]) if len(labelled) else int(attention[row].sum())
            prompts.append(ids[row, :end])
        width = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id
        left = torch.full((len(prompts), width), pad, dtype=ids.dtype, device=ids.device)
        mask = torch.zeros((len(prompts), width), dtype=attention.dtype, device=ids.device)
        for row, prompt in enumerate(prompts):
            left[row, width - len(prompt) :] = prompt
            mask[row, width - len(prompt) :] = 1
        output = self.generate(model, input_ids=left, attention_mask=mask)
        return [text.strip() for text in self.tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)]
