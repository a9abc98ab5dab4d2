"""The agent in an existing ``transformers.Trainer`` script: selection and data values in a few lines.

    select = AutoSelect(train_texts, train_labels, val_texts, val_labels)   # the offline phase: values every sample
    trainer = Trainer(model, args, train_dataset=train, eval_dataset=val, ...)  # the script's own
    select.attach(trainer)      # the sampler that draws only the samples kept, and the callback that rewards it
    trainer.train()
    select.write_data_values("data_values.csv")

``AutoSelect`` values the training texts as ``autoft value`` does (frozen-encoder features, the noise estimate, the
policy), with the share left out estimated from the data (never told). ``AutoSelectSampler`` draws each epoch, in
a seeded random order, only the samples the policy keeps; ``AutoSelectCallback`` (a ``transformers.TrainerCallback``)
re-selects at each epoch's start and rewards the policy after each evaluation with the gain of the Trainer's
metric (``eval_loss`` falling by default: set ``args.eval_strategy = "epoch"``). The Trainer's datasets must hold
the same samples in the same order as the texts given.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from transformers import TrainerCallback

from autoft.config import AUTO, DEFAULT_POLICY, parse_config
from autoft.data.example import Example
from autoft.data.splits import Splits
from autoft.selection.agent import data_value_rows, kept_mask, value_samples, write_data_values


class AutoSelect:
    """The agent's offline valuation of a classification training set, and its selection from then on.

    ``texts``/``labels``: the training samples, in the order of the Trainer's ``train_dataset``;
    ``validation_texts``/``validation_labels``: clean labelled samples the noise estimate is calibrated on (the
    Trainer's ``eval_dataset``, or another clean set). ``encoder``: the frozen encoder of the features (default the
    packaged MiniLM). ``metric``: the Trainer metric that rewards the policy (``eval_loss``: its fall).
    """

    def __init__(
        self,
        texts: Sequence[str],
        labels: Sequence[Any],
        validation_texts: Sequence[str],
        validation_labels: Sequence[Any],
        *,
        policy: str = DEFAULT_POLICY,
        drop_fraction: float | str = AUTO,
        encoder: str = "default",
        metric: str = "eval_loss",
        seed: int = 0,
        progress: bool = False,
    ) -> None:
        if len(texts) != len(labels) or len(validation_texts) != len(validation_labels):
            raise ValueError("texts and labels (and validation_texts and validation_labels) must be as long")
        train = [Example(str(t), str(y), f"train:{i}") for i, (t, y) in enumerate(zip(texts, labels))]
        validation = [
            Example(str(t), str(y), f"validation:{i}")
            for i, (t, y) in enumerate(zip(validation_texts, validation_labels))
        ]
        self.label_names = sorted({cast(str, e.label) for e in train})
        config = parse_config(
            {
                "task": "classification",
                "model": encoder,
                "data": {"train": "<in memory>"},
                "selection": {"policy": policy, "drop_fraction": drop_fraction},
                "training": {"seed": seed, "progress": progress},
            },
            source="AutoSelect",
        )
        self.examples = train
        self.valuation = value_samples(config, Splits(train, validation, None, self.label_names), progress=progress)
        self.metric = metric
        self.seed = seed
        self.sampler = AutoSelectSampler(self)
        self.callback = AutoSelectCallback(self)
        self._previous: float | None = None
        self._action: int | None = None
        self.decisions: list[dict[str, Any]] = list(self.valuation.decisions)

    @property
    def drop_fraction(self) -> float:
        """The share left out: the estimated noise rate (capped), or the number given."""
        return cast(float, self.valuation.selection.drop_fraction)  # resolved by the valuation

    def kept(self) -> np.ndarray:
        """[N] bool: the samples the policy keeps at its current values."""
        return kept_mask(self.valuation.sample_values(), None, self.drop_fraction)

    def flagged(self) -> np.ndarray:
        """[N] row ids the policy leaves out now."""
        return np.flatnonzero(~self.kept())

    def attach(self, trainer: Any) -> Any:
        """Make ``trainer`` draw from the kept samples (its train sampler) and reward the policy (its callback)."""
        trainer._get_train_sampler = lambda *args, **kwargs: self.sampler
        trainer.add_callback(self.callback)
        return trainer

    def reward(self, metrics: dict[str, float]) -> float | None:
        """Learn from the Trainer's evaluation: the gain of ``metric`` since the last one (a loss: its fall)."""
        if self.metric not in metrics:
            raise ValueError(f"AutoSelect: metric {self.metric!r} is not among the Trainer's ({', '.join(metrics)})")
        score = float(metrics[self.metric]) * (-1.0 if self.metric.endswith("loss") else 1.0)
        reward = None if self._previous is None else score - self._previous
        if reward is not None:
            record = self.valuation.policy.update(reward, self.kept(), action=self._action)
            self.decisions.append(
                {
                    "phase": "online",
                    "event": "reward",
                    "reward": reward,
                    "validation": score,
                    "policy_update": record.get("action"),
                }
            )
        self._previous = score
        policy = self.valuation.policy
        self._action = int(policy.act()) if hasattr(policy, "act") else None
        return reward

    def data_values(self) -> list[dict[str, Any]]:
        """One row per training sample, worst first (the columns of ``data_values.csv``)."""
        return data_value_rows(
            self.examples, self.label_names, self.valuation, self.valuation.sample_values(), ~self.kept()
        )

    def write_data_values(self, path: str | Path) -> Path:
        write_data_values(Path(path), self.data_values())
        return Path(path)


class AutoSelectSampler(torch.utils.data.Sampler):
    """Each epoch, the samples the policy keeps, in a seeded random order (a new order every epoch)."""

    def __init__(self, select: AutoSelect) -> None:
        self.select = select
        self.epoch = 0
        self.epochs: list[np.ndarray] = []  # the rows handed out in each epoch, in order

    def __iter__(self) -> Iterator[int]:
        rows = np.flatnonzero(self.select.kept())
        order = np.random.default_rng(self.select.seed + self.epoch).permutation(rows)
        self.epoch += 1
        self.epochs.append(order)
        return iter(order.tolist())

    def __len__(self) -> int:
        return int(self.select.kept().sum())


class AutoSelectCallback(TrainerCallback):
    """Rewards the policy after each Trainer evaluation; the sampler reads its new selection next epoch."""

    def __init__(self, select: AutoSelect) -> None:
        self.select = select
        self._step: int | None = None

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None, **kwargs: Any
    ) -> None:
        if metrics and state.global_step != self._step:  # an evaluation with no training since earns nothing
            self._step = state.global_step
            self.select.reward(metrics)


__all__ = ["AutoSelect", "AutoSelectCallback", "AutoSelectSampler"]
