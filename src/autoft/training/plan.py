"""What ``auto`` means: training settings resolved from the data, the task and the machine.

- ``batch_size: auto``: 32 on CPU (generative tasks: 8, their logits span the vocabulary). On a GPU, the
  largest of 128, 64, 32 whose forward and backward pass on copies of the longest training sample fits in memory, and no more than a sixteenth of the training set
  (so an epoch has steps enough to learn from).
- ``epochs: auto``: a budget of training samples that grows with the data size ``n`` but slower than it,
  ``EPOCH_SCALE * task scale * n ** 0.75`` samples — so the planned epochs,
  ``EPOCH_SCALE * scale * n ** -0.25``, fall as data grows: about 8 for 500 rows, 5 for 3,000, 4 for 10,000,
  2 for 100,000, and 1 for a million. The task adapter's ``training_scale`` stretches it where the field
  trains longer (token classification, many labels). Early stopping on validation ends the run sooner on a
  plateau, and the best epoch is restored.
- ``early_stopping_patience: auto``: 2 epochs, 3 when more than 12 are planned.
- ``max_length: auto``: the task adapter's ``default_max_length`` (128 tokens; question answering 384, with
  longer contexts read in overlapping windows; generative tasks 512).
- ``learning_rate: auto``: the range test of :mod:`autoft.training.lr_search`, on shuffled, length-grouped
  batches of the training data, within the task adapter's ``lr_bounds``. The test sees 24 steps; a run of
  many more forgets the pretraining at a rate a short one needs (longer horizons want lower rates: Bjorck et
  al., "Scaling Optimal LR Across Token Horizons", ICLR 2025). So the pretrained weights' rate is held under
  a ceiling, ``horizon_rate * training_scale ** 2 / sqrt(planned steps)`` (the adapter's; 2.5e-3 for
  encoders), and the task head, which starts untrained, keeps the test's rate (``head_learning_rate: auto``).
  The constant sits on the validation grids of ``benchmarks/defaults.py``: the best rate of TweetEval and BTC
  cells at 100-500 steps lies at or under it (full TweetEval, 306 steps: 1e-4 validates 0.761, 2e-4 0.724).
  The ceiling stretches with the square of the task's ``training_scale`` (the epoch budget's factor): a task
  the plan trains longer (many labels, sparse tags) must also move further from the pretraining. Chosen on
  validation: BANKING77 at 1,500 rows (470 planned steps) validated 0.688 held at 2.0e-4 (stretched by
  ``training_scale``) and 0.716 unheld at the test's 2.6e-4 (the squared stretch).
- The range test's cost is held to ``MAX_SEARCH_SHARE`` (a fifth) of the planned training's, both counted in
  tokens (samples x their unpadded length; the planned training is epochs x the training rows' tokens; each
  process runs the whole test): :func:`search_budget`. The test keeps its 24 steps over the same rates and draws
  smaller batches, down to ``MIN_SEARCH_BATCH``; a plan too small even for that skips the test and starts from the
  prior of :func:`prior_rate`, under the same ceiling. Measured: the uncut test (24 x 32) costs 19% of TweetEval
  500's planned training (8 epochs), 12% of BANKING77 500's, 14% of BTC 500's and 1.4-8.5% of the defaults
  benchmark's other rows; 28% of question answering on 300 XQuAD questions (9 epochs) and 69% of generation on 40
  SciTLDR pairs (LoRA, batch 8, 7 epochs), where it took most of the run. A tenth was the aim, but cut to a tenth
  the 500-row tests chose other rates: BANKING77 3.4e-4 (batches of 27) for 2.6e-4, BTC 8.7e-5 (batches of 22) for
  2.0e-4, TweetEval the same 1.5e-4 (batches of 16). A single pass's choice moves with the batches it draws
  (:mod:`autoft.training.lr_search`), and the defaults benchmark validated the uncut tests' rates; so the bound
  lies over every benchmarked row and binds on the small runs it was meant for. Fewer steps over the same span
  were tried and dropped: on the 40 pairs, 14 steps of 4 chose 1e-4, the band's bottom, where 24 steps of 8 chose
  1.1e-3 (the prior's rate for LoRA).

Every choice is recorded with how it was made (``Plan.choices``), for the log and the run directory.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from autoft.config import AUTO, TrainingConfig
from autoft.tasks.base import Feature, TaskAdapter
from autoft.training.lr_search import LRSearch, range_test

log = logging.getLogger(__name__)

CPU_BATCH_SIZE = 32
GPU_BATCH_SIZES = (128, 64, 32)
EPOCH_SCALE = 36.0
"""Planned epochs for 4-way sentence classification are ``EPOCH_SCALE * n ** -0.25`` (7.6 at 500 rows)."""
MAX_EPOCHS = 30


@dataclass
class Plan:
    """The resolved settings and, per field that was ``auto``, what was chosen and how."""

    config: TrainingConfig
    choices: dict[str, dict[str, Any]] = field(default_factory=dict)
    lr_search: LRSearch | None = None
    search_budget: SearchBudget | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "choices": self.choices,
            "lr_search": self.lr_search.to_dict() if self.lr_search else None,
            "lr_search_budget": asdict(self.search_budget) if self.search_budget else None,
        }


SEARCH_STEPS = 24
"""Steps of a range test the budget does not bind (:mod:`autoft.training.lr_search`)."""
MAX_SEARCH_SHARE = 0.20
"""The most a range test may cost, as a share of the planned training's tokens (over the defaults benchmark's
rows: TweetEval 500's 19.2% is the most among them)."""
MIN_SEARCH_BATCH = 4
"""The smallest batch a bound test draws (or the run's batch, when smaller); under it the test is skipped."""
PRIOR_RATES = {"full": 2e-4, "lora": 1.1e-3, "ia3": 5.5e-3}
"""The rate a plan too small for the range test starts from (:func:`prior_rate`). Full fine-tuning: the best grid
rate of all three 500-row sets of ``benchmarks/results/defaults.json`` (TweetEval, BANKING77, BTC), near the
geometric mean of what the test chose on its rows. LoRA: the test's choice (1.14e-3) on SciTLDR 150 and SGD 400
pairs (``tasks.json``) and on TweetEval and BTC 1,500 (``peft_vs_full.json``). IA3: between its choices there,
4.6e-3 (BTC) and 6.5e-3 (TweetEval)."""


@dataclass
class SearchBudget:
    """What the cost bound let the range test do (``training_plan.json``'s ``lr_search_budget``)."""

    steps: int
    batch_size: int
    tokens_per_sample: float
    """Mean unpadded length of the rows the test draws from: its sequence length (rows are not cut shorter)."""
    planned_tokens: int
    """Epochs x the training rows' tokens: the planned training's cost."""
    share: float
    """Estimated cost of the test (steps x batch x tokens per sample, on every process) / ``planned_tokens``."""
    unbound_share: float
    """The same for the test the bound did not touch (``SEARCH_STEPS`` x the run's batch)."""
    max_share: float = MAX_SEARCH_SHARE
    skipped: bool = False
    how: str = ""


def plan_epochs(n_train: int, scale: float = 1.0, *, max_epochs: int = MAX_EPOCHS) -> int:
    """Epochs planned for ``n_train`` samples: ``EPOCH_SCALE * scale * n_train ** -0.25``, rounded, in [1, max]."""
    return int(min(max_epochs, max(1, round(EPOCH_SCALE * scale * max(n_train, 1) ** -0.25))))


def steps_per_epoch(n_train: int, batch_size: int, processes: int = 1) -> int:
    """Optimisation steps an epoch of ``n_train`` labelled rows makes on each of ``processes``."""
    return math.ceil(math.ceil(n_train / batch_size) / processes)


def auto_patience(epochs: int) -> int:
    return 3 if epochs > 12 else 2


def _fits(
    model: torch.nn.Module, adapter: TaskAdapter, feature: Feature, batch_size: int, device: torch.device
) -> bool:
    """Whether a forward and backward pass of ``batch_size`` copies of ``feature`` fits in memory (batches
    are padded to their longest sample, so the longest training sample bounds what a batch needs)."""
    try:
        batch = adapter.collate([{k: v for k, v in feature.items() if k in adapter.model_keys}] * batch_size)
        batch = {k: v.to(device) for k, v in batch.items()}
        labels = batch.pop("labels")
        losses, units = adapter.per_sample_loss(adapter.forward(model, batch, labels), labels)
        (losses.sum() / units.sum().clamp_min(1)).backward()
        return True
    except torch.OutOfMemoryError:
        return False
    finally:
        model.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()


def auto_batch_size(
    model: torch.nn.Module, adapter: TaskAdapter, features: list[Feature], *, device: torch.device
) -> tuple[int, str]:
    """(batch size, how it was chosen)."""
    if device.type != "cuda":
        return adapter.cpu_batch_size, f"{device.type}: the CPU default of {adapter.name}"
    longest = max(features, key=lambda f: len(f["input_ids"]))
    cap = max(CPU_BATCH_SIZE, len(features) // 16)
    for size in GPU_BATCH_SIZES:
        if size <= cap and _fits(model, adapter, longest, size, device):
            return size, (
                f"the largest of {list(GPU_BATCH_SIZES)} that fits on {device} with the longest sample "
                f"({len(longest['input_ids'])} tokens), at most {cap} for {len(features)} samples"
            )
    return 16, f"none of {list(GPU_BATCH_SIZES)} fits on {device}"


PEFT_LR_BOUNDS = (1e-4, 3e-2)
"""The band the range test chooses in with ``training.peft``: adapters start as the identity (LoRA's B at zero,
IA3's scales at one) and want rates ten to a hundred times those of full fine-tuning."""
PEFT_EPOCH_SCALE = 1.5
"""Adapters learn less per step: ``epochs: auto`` plans this many times the steps of full fine-tuning (TweetEval
1,500, LoRA at 2e-3: 12 epochs reached validation 0.724 where 6 reached 0.705)."""
SWEEP_FACTOR = 10.0
"""The range test sweeps from the band's bottom to this many times its top, so the loss curve's fall and rise
are both seen."""


def search_budget(
    search_lengths: list[int],
    train_lengths: list[int],
    *,
    epochs: int,
    batch_size: int,
    processes: int = 1,
    max_share: float | None = None,
) -> SearchBudget:
    """Steps and batch of a range test that costs at most ``max_share`` (default ``MAX_SEARCH_SHARE``) of the
    planned training (``epochs`` over rows of ``train_lengths`` tokens), drawing rows of ``search_lengths`` tokens
    on each of ``processes``: ``SEARCH_STEPS`` of ``batch_size`` when that fits, else of the largest batch that
    fits, down to ``MIN_SEARCH_BATCH``; under that, none (``skipped``)."""
    max_share = MAX_SEARCH_SHARE if max_share is None else max_share
    per_sample = float(np.mean(search_lengths)) if len(search_lengths) else 0.0
    planned = int(epochs * sum(train_lengths))

    def share(batch: int) -> float:
        return processes * SEARCH_STEPS * batch * per_sample / max(planned, 1)

    allowed = max_share * planned / max(processes * per_sample, 1e-9)  # samples the test may draw
    batch = batch_size if SEARCH_STEPS * batch_size <= allowed else int(allowed // SEARCH_STEPS)
    smallest = min(MIN_SEARCH_BATCH, batch_size)
    budget = SearchBudget(
        steps=SEARCH_STEPS,
        batch_size=batch,
        tokens_per_sample=round(per_sample, 1),
        planned_tokens=planned,
        share=round(share(batch), 4),
        unbound_share=round(share(batch_size), 4),
        max_share=max_share,
    )
    if batch < smallest:
        budget.skipped, budget.steps, budget.batch_size, budget.share = True, 0, 0, 0.0
        budget.how = (
            f"skipped: even {SEARCH_STEPS} steps x {smallest} samples would cost {share(smallest):.0%} "
            f"of the planned training, over {max_share:.0%}"
        )
    else:
        cut = "" if batch == batch_size else f" (batches cut from {batch_size})"
        budget.how = f"{SEARCH_STEPS} steps x {batch} samples{cut}: {budget.share:.1%} of the planned training's tokens"
    return budget


def prior_rate(config: TrainingConfig, bounds: tuple[float, float]) -> tuple[float, str]:
    """(The rate a plan without a range test starts from, how), within ``bounds``: ``PRIOR_RATES``."""
    kind = "full" if config.peft is None else config.peft.method
    rate = min(max(PRIOR_RATES[kind], bounds[0]), bounds[1])
    return rate, f"the prior rate of {'full fine-tuning' if kind == 'full' else kind + ' adapters'}"


def lr_bounds(config: TrainingConfig, adapter: TaskAdapter) -> tuple[float, float]:
    """The learning-rate band of the range test: the task's for full fine-tuning, ``PEFT_LR_BOUNDS`` with peft."""
    return adapter.lr_bounds() if config.peft is None else PEFT_LR_BOUNDS


def resolve(
    config: TrainingConfig,
    *,
    model: torch.nn.Module,
    adapter: TaskAdapter,
    train_features: list[Feature],
    search_features: list[Feature] | None = None,
    make_optimizer: Any,
    device: torch.device,
    autocast: Any = contextlib.nullcontext,
    processes: int = 1,
    progress: bool | None = None,
) -> Plan:
    """Replace every ``auto`` of ``config`` by a value; ``model`` is unchanged (the range test restores it).
    The range test trains on ``search_features`` when given (rows a callback chose), else on the training rows;
    the ceiling on its rate counts the optimisation steps each of ``processes`` will make. ``progress``: the
    range test's bar (default ``config.progress``)."""
    plan = Plan(config)
    updates: dict[str, Any] = {}
    if config.max_length == AUTO:
        updates["max_length"] = adapter.max_length
        plan.choices["max_length"] = {"value": adapter.max_length, "how": f"the default of {adapter.name}"}
    batch_size = config.batch_size
    if batch_size == AUTO:
        batch_size, how = auto_batch_size(model, adapter, train_features, device=device)
        updates["batch_size"] = batch_size
        plan.choices["batch_size"] = {"value": batch_size, "how": how}
    epochs = config.epochs
    if epochs == AUTO:
        scale = adapter.training_scale() * (1.0 if config.peft is None else PEFT_EPOCH_SCALE)
        epochs = plan_epochs(len(train_features), scale)
        updates["epochs"] = epochs
        peft = "" if config.peft is None else f", x {PEFT_EPOCH_SCALE:g} for {config.peft.method} adapters"
        plan.choices["epochs"] = {
            "value": epochs,
            "how": f"{EPOCH_SCALE:g} x {scale:.2f} ({adapter.name}, {len(adapter.labels)} labels"
            f"{peft}) x {len(train_features)} samples ^ -0.25, at most {MAX_EPOCHS}; early stopping may end sooner",
        }
    if config.early_stopping_patience == AUTO:
        updates["early_stopping_patience"] = auto_patience(epochs)
        plan.choices["early_stopping_patience"] = {
            "value": updates["early_stopping_patience"],
            "how": "2 epochs, 3 when more than 12 are planned",
        }
    if config.learning_rate == AUTO:
        _auto_learning_rate(
            plan,
            updates,
            model=model,
            adapter=adapter,
            train_features=train_features,
            search_features=search_features,
            make_optimizer=make_optimizer,
            device=device,
            autocast=autocast,
            processes=processes,
            batch_size=batch_size,
            epochs=epochs,
            progress=config.progress if progress is None else progress,
        )
    elif config.head_learning_rate == AUTO:  # the head at the user's rate: nothing chosen
        updates["head_learning_rate"] = config.learning_rate
    plan.config = config.model_copy(update=updates)
    for name, choice in plan.choices.items():
        log.info("%s: auto -> %s (%s)", name, _short(choice["value"]), choice["how"])
    return plan


def _auto_learning_rate(
    plan: Plan,
    updates: dict[str, Any],
    *,
    model: torch.nn.Module,
    adapter: TaskAdapter,
    train_features: list[Feature],
    search_features: list[Feature] | None,
    make_optimizer: Any,
    device: torch.device,
    autocast: Any,
    processes: int,
    batch_size: int,
    epochs: int,
    progress: bool,
) -> None:
    """``learning_rate`` (and ``head_learning_rate``) ``auto``: the range test within its budget, or the prior rate
    when the plan is too small for one; the pretrained weights' rate held under the ceiling."""
    config = plan.config
    searched = train_features if search_features is None else search_features
    bounds = lr_bounds(config, adapter)
    budget = search_budget(
        [len(f["input_ids"]) for f in searched],
        [len(f["input_ids"]) for f in train_features],
        epochs=epochs,
        batch_size=batch_size,
        processes=processes,
    )
    plan.search_budget = budget
    rows = "" if search_features is None else f" of the {len(searched)} a callback chose"
    if budget.skipped:
        chosen, how = prior_rate(config, bounds)
        how = f"{how} ({chosen:.2g}); no range test: {budget.how}"
        log.info("learning_rate: auto: no range test (%s); the prior rate %.2g", budget.how, chosen)
    else:
        log.info(
            "learning_rate: auto: range test, %d steps x %d samples%s at rates %.2g to %.2g (%s)",
            budget.steps,
            budget.batch_size,
            rows,
            bounds[0],
            SWEEP_FACTOR * bounds[1],
            budget.how,
        )
        search = range_test(
            model,
            adapter,
            searched,
            make_optimizer,
            batch_size=budget.batch_size,
            steps=budget.steps,
            bounds=bounds,
            min_lr=bounds[0],
            max_lr=SWEEP_FACTOR * bounds[1],
            seed=config.seed,
            max_grad_norm=config.max_grad_norm,
            device=device,
            autocast=autocast,
            progress=progress,
        )
        plan.lr_search, chosen = search, search.chosen
        log.info("learning_rate: the range test chose %.3g (%s) in %.0f s", chosen, search.rule, search.seconds)
        passes = f"{len(search.shuffle_losses)} x " if len(search.shuffle_losses) > 1 else ""
        diverged = f"diverged at {search.diverged_at:.2g}" if search.diverged_at else "no divergence"
        bound = f", {budget.how}" if budget.share < budget.unbound_share else ""
        how = (
            f"range test: {passes}{len(search.losses)} steps on {search.samples} samples "
            f"({search.seconds:.0f} s){rows}{bound}, {diverged}; {search.rule}"
        )
    steps = epochs * steps_per_epoch(len(train_features), batch_size, processes)
    ceiling = horizon_ceiling(adapter, config, steps)
    learning_rate = min(chosen, max(bounds[0], ceiling))  # never under the band
    if learning_rate < chosen:
        how += (
            f"; held at {adapter.horizon_rate:g} x {adapter.training_scale():.2f}^2 / sqrt({steps} planned "
            f"steps) = {ceiling:.2g}{'' if ceiling >= bounds[0] else f', raised to {bounds[0]:g}'} "
            "for the pretrained weights"
        )
    updates["learning_rate"] = learning_rate
    plan.choices["learning_rate"] = {"value": learning_rate, "how": how}
    if config.head_learning_rate == AUTO:
        updates["head_learning_rate"] = chosen
        plan.choices["head_learning_rate"] = {
            "value": chosen,
            "how": "the prior rate" if budget.skipped else "the range test's rate",
        }


def horizon_ceiling(adapter: TaskAdapter, config: TrainingConfig, steps: int) -> float:
    """The highest rate ``learning_rate: auto`` gives the pretrained weights for ``steps`` planned optimisation
    steps: ``adapter.horizon_rate * adapter.training_scale() ** 2 / sqrt(steps)``; none for adapters trained
    with peft (they start as the identity, with their own band) or a task without a measured ``horizon_rate``."""
    if adapter.horizon_rate is None or config.peft is not None:
        return math.inf
    return adapter.horizon_rate * adapter.training_scale() ** 2 / math.sqrt(max(steps, 1))


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


__all__ = [
    "Plan",
    "SearchBudget",
    "auto_batch_size",
    "auto_patience",
    "horizon_ceiling",
    "plan_epochs",
    "prior_rate",
    "resolve",
    "search_budget",
    "steps_per_epoch",
]
