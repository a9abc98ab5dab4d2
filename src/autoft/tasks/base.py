"""The task adapter: everything that differs between tasks, behind one interface.

The training loop, evaluation and prediction are task-agnostic; they call an adapter to encode
examples, pad batches, compute per-sample losses, turn model outputs into per-example probabilities,
decode those into predictions, score predictions, and format them for users.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, cast

import numpy as np
import torch

from autoft.data.loading import Example

Feature = dict[str, Any]


def margins_from_logits(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """[B] ``logit[given label] - max logit of the other classes`` (negative: the model prefers another class)."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.arange(len(labels))
    given = logits[rows, labels]
    others = logits.copy()
    others[rows, labels] = -np.inf
    return given - others.max(axis=1)


class TaskAdapter(ABC):
    """One subclass per task. ``labels`` is the ordered label (or tag) set; index = model output."""

    name: ClassVar[str]
    primary_metric: ClassVar[str]
    summary_metrics: ClassVar[tuple[str, ...]] = ()
    """The headline scores the CLI's summary table shows (empty: every number the run recorded)."""
    greater_is_better: ClassVar[bool] = True
    """Whether a higher :attr:`primary_metric` is better (a loss is not)."""
    validate_by_loss: ClassVar[bool] = False
    """Per-epoch validation reads the loss alone (generative tasks: generating every epoch is slow); test and
    ``evaluate`` still score predictions."""
    generates: ClassVar[bool] = False
    """Predictions are generated (:meth:`batch_outputs`), not read from one forward pass's logits."""
    cpu_batch_size: ClassVar[int] = 32
    """``batch_size: auto`` on a CPU."""
    peft_task_type: ClassVar[str]  # peft's TaskType of the model head (training.peft)

    model_options: ClassVar[dict[str, Any]] = {}
    """Extra ``from_pretrained`` arguments of this task's model (e.g. the head's ``problem_type``)."""
    default_max_length: ClassVar[int] = 128
    """``training.max_length: auto``: tokens per input (question answering reads long contexts)."""
    horizon_rate: ClassVar[float | None] = 2.5e-3
    """``learning_rate: auto`` keeps the pretrained weights' rate under ``horizon_rate * training_scale() ** 2 /
    sqrt(planned steps)`` (the task head keeps the range test's rate); ``None``: no ceiling. Measured for
    encoders in :mod:`autoft.training.plan`."""

    def __init__(self, labels: list[str], tokenizer: Any, *, max_length: int | str = "auto") -> None:
        self.decision: dict[str, Any] = {}
        """Decision settings tuned after training (:meth:`tune_decision`), kept in the run's ``labels.json``."""
        self.labels = list(labels)
        self.label2id = {label: i for i, label in enumerate(self.labels)}
        self.tokenizer = tokenizer
        self.max_length = self.default_max_length if max_length == "auto" else int(max_length)

    # --- model --------------------------------------------------------------------------------
    @staticmethod
    @abstractmethod
    def auto_model_class() -> Any:
        """The ``transformers`` Auto class that builds this task's model head."""

    # --- training defaults (what `auto` starts from) -----------------------------------------
    def training_scale(self) -> float:
        """How much longer than 4-way sentence classification ``epochs: auto`` trains this task (a factor on
        the planned epochs; early stopping may end sooner). Sparse tags or many labels need longer."""
        return 1.0

    def lr_bounds(self) -> tuple[float, float]:
        """The band the learning-rate search may choose from (fine-tuning rates of pretrained encoders)."""
        return (1e-5, 5e-4)

    # --- data ---------------------------------------------------------------------------------
    @abstractmethod
    def encode(self, examples: list[Example], *, with_labels: bool = True) -> list[Feature]:
        """Tokenize examples (no padding). Each feature has ``input_ids`` and, with labels, ``labels``."""

    @abstractmethod
    def make_collator(self, pad_to: int | None) -> Any:
        """A ``transformers`` data collator padding to the longest feature, or to ``pad_to``."""

    def collate(self, features: list[Feature], *, pad_to: int | None = None) -> dict[str, torch.Tensor]:
        """Pad a list of features into a batch (to the longest, or to ``pad_to``)."""
        collators = self.__dict__.setdefault("_collators", {})
        if pad_to not in collators:
            collators[pad_to] = self.make_collator(pad_to)
        return dict(collators[pad_to](features))

    def collate_indexed(self, features: list[Feature], *, pad_to: int | None = None) -> dict[str, torch.Tensor]:
        """Like :meth:`collate`, plus ``index``: each feature's position in the data set."""
        index = torch.tensor([f["index"] for f in features], dtype=torch.long)
        batch = self.collate([{k: v for k, v in f.items() if k in self.model_keys} for f in features], pad_to=pad_to)
        batch["index"] = index
        return batch

    model_keys: ClassVar[frozenset[str]] = frozenset({"input_ids", "attention_mask", "token_type_ids", "labels"})

    # --- training -----------------------------------------------------------------------------
    def forward(self, model: Any, batch: dict[str, torch.Tensor], labels: torch.Tensor | None = None) -> torch.Tensor:
        """Run ``model`` on a collated batch (its ``labels`` apart) and return what :meth:`per_sample_loss` and
        the probabilities read: the model's ``logits`` (question answering: start and end logits, stacked; a causal
        language model given ``labels``: the logits of the labelled positions only)."""
        return model(**batch).logits

    @abstractmethod
    def per_sample_loss(
        self, logits: torch.Tensor, labels: torch.Tensor, transition: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (summed loss of each sample, number of loss units of each sample).

        The weighted batch loss is ``sum(w * loss) / sum(w * units)``: the plain mean when every
        weight is 1, and a per-sample weighting hook for data selection. ``transition`` [C, C]
        (``TrainState.label_transition``) asks for the forward-corrected loss; only tasks with one label
        per example support it.
        """

    @staticmethod
    def _no_transition(name: str, transition: torch.Tensor | None) -> None:
        if transition is not None:
            raise NotImplementedError(f"{name} has no single label per example to forward-correct")

    def relabel(self, feature: Feature, label: int) -> Feature:
        """A copy of ``feature`` that trains on class id ``label`` instead of its given one. Only tasks with
        one label per example support it."""
        raise NotImplementedError(f"{self.name} has no single label per example to replace")

    def mask_words(self, feature: Feature, words: list[int]) -> Feature:
        """A copy of ``feature`` whose tags of ``words`` (word positions) are left out of the loss.
        Only tasks with word-level tags support it."""
        raise NotImplementedError(f"{self.name} has no word-level tags to mask")

    def retag_words(self, feature: Feature, tags: dict[int, str]) -> Feature:
        """A copy of ``feature`` that trains on the given tag (a name of ``labels``) at each word position of
        ``tags`` instead of its own. Only tasks with word-level tags support it."""
        raise NotImplementedError(f"{self.name} has no word-level tags to replace")

    def prepare_model(self, model: Any) -> Any:
        """Fit a freshly loaded model to this task's tokenizer (e.g. embeddings for added marker tokens)."""
        return model

    def initial_bias(self, examples: list[Example]) -> np.ndarray | None:
        """The bias a new task head starts from, given the training examples (``None``: the model's own)."""
        return None

    # --- inference ----------------------------------------------------------------------------
    @abstractmethod
    def batch_probabilities(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        """Per example: class probabilities ``[C]`` (classification) or ``[words, C]`` (tokens)."""

    def batch_outputs(self, model: Any, batch: dict[str, torch.Tensor], logits: torch.Tensor | None) -> list[Any]:
        """Per example of a collated batch, what :meth:`finalize` completes: the probabilities read from
        ``logits``; generative tasks generate with ``model`` instead (``logits`` is then None unless a loss was
        asked for)."""
        return self.batch_probabilities(cast(torch.Tensor, logits), batch)  # None only where generating

    def finalize(self, probabilities: np.ndarray, feature: Feature) -> np.ndarray:
        """Complete one example's probabilities using its feature (NER: one row per word)."""
        return probabilities

    @abstractmethod
    def label_margin(self, probabilities: np.ndarray, feature: Feature) -> float:
        """How strongly the model backs the feature's given label: probability of the given label minus
        the highest other one (NER: the lowest such margin over the sentence's tagged words)."""

    @abstractmethod
    def decode(self, probabilities: np.ndarray) -> str | list[str]:
        """One example's predicted label (or tag sequence)."""

    def tune_decision(self, probabilities: list[np.ndarray], gold: list[Example]) -> dict[str, Any]:
        """Tune :attr:`decision` on the validation set's probabilities after training (multi-label: a threshold
        per label) and return it; tasks that decode by argmax have nothing to tune."""
        return self.decision

    @abstractmethod
    def metrics(self, gold: list[Example], predicted: list[str | list[str]]) -> dict[str, Any]:
        """Scores of ``predicted`` against ``gold``; includes :attr:`primary_metric`."""

    @abstractmethod
    def format_prediction(self, example: Example, probabilities: np.ndarray) -> dict[str, Any]:
        """The JSON record ``autoft predict`` writes for one input."""
