"""The agent on prompt-response pairs (``generation``, ``seq2seq``): which pairs the generative model learns from.

Offline, ``value_pairs`` (``pairs``) scores every training pair with the frozen base model: the response's mean
token loss with and without its prompt, and from their difference the posterior that the response does not belong
to its prompt, with the share of such pairs estimated on the clean validation pairs (never told). Each pair's state
is those numbers, the response's length and its prompt's embedding (the packaged sentence encoder, reduced). There
is no cheap inner learner for a generative model, so the policy starts from a prior instead of offline episodes
(``Policy.start_from``): the posterior of a matched response (``small-loss``: the base-model loss alone), which
REINFORCE's estimator learns to reproduce from the state and the bucket bandits cut into quantile buckets.

Online, ``PairAgentCallback`` weights the pairs each epoch (drop or down-weight; replacing a response is out of
scope) and, every few optimisation steps, rewards the policy with the fall of the model's loss on its part of the
validation set (``selection.reward: loss``, the default here; a generated-text metric such as ``rougeL`` works
too, at the cost of generating).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from autoft.config import AUTO, Config, SelectionConfig
from autoft.data.generation import prompt_text
from autoft.data.loading import Example
from autoft.data.splits import Splits
from autoft.errors import ConfigError
from autoft.io import write_json
from autoft.selection.keeping import kept_mask, ranks
from autoft.selection.pairs import PairValuation, value_pairs
from autoft.selection.policies import Policy, get_policy
from autoft.selection.reports import pair_value_rows, write_data_values, write_decisions
from autoft.selection.rewards import RewardTracker

if TYPE_CHECKING:
    from autoft.selection.policies import Reinforce
    from autoft.selection.policies._buckets import BucketPolicy
from autoft.training.callbacks import Encode, Evaluate, StepOutput, TrainerCallback, TrainState

log = logging.getLogger(__name__)

PAIR_POLICIES = ("none", "random", "small-loss", "suspicion", "reinforce", "q-learning", "exp3")
PROMPT_COMPONENTS = 8
"""Principal components of the prompt embedding in a pair's state."""
UPDATES_PER_EPOCH = 4
"""``update_every: auto``: rewards per epoch on generative data."""
REWARD_BATCH = 32
"""The reward mini-batch unless ``selection.reward_batch`` is set: a generative forward pass is dear on CPU."""


@dataclass
class PairAgentValuation:
    """What the offline phase knows about the pairs: the valuation, the state and the policy started from it."""

    pairs: PairValuation
    policy: Policy
    state: np.ndarray  # [N, F]
    selection: SelectionConfig  # drop_fraction resolved to a number
    decisions: list[dict[str, Any]] = field(default_factory=list)


def pair_state(pairs: PairValuation, prompts: np.ndarray | None) -> np.ndarray:
    """[N, F] each pair's state: the mismatch posterior, the prompt gain, the conditional and unconditional
    losses, the log response length and (when given) the prompt embedding's leading principal components."""
    columns = [pairs.mismatch_probability, pairs.gain, pairs.conditional, pairs.unconditional, np.log1p(pairs.tokens)]
    state = np.stack(columns, axis=1)
    if prompts is not None and len(prompts) > 2:
        centred = prompts - prompts.mean(axis=0)
        _, _, components = np.linalg.svd(centred, full_matrices=False)
        state = np.concatenate([state, centred @ components[:PROMPT_COMPONENTS].T], axis=1)
    return state


def value_pair_agent(config: Config, splits: Splits, *, progress: bool = True) -> PairAgentValuation:
    """The offline phase on prompt-response pairs: value them, build their state, start the policy."""
    selection = config.selection
    name = selection.policy
    if name not in PAIR_POLICIES:
        raise ConfigError(
            f"selection.policy: {name!r} does not value prompt-response pairs; use one of {', '.join(PAIR_POLICIES)}"
        )
    if selection.mode == "mask":
        raise ConfigError(
            "selection.mode: 'mask' leaves entity tags out; prompt-response pairs are dropped "
            "(sample) or down-weighted (weight)"
        )
    for key, value, off in (
        ("relabel_confidence", selection.relabel_confidence, None),
        ("flagged", selection.flagged, "drop"),
        ("correction", selection.correction, "off"),
    ):
        if value not in (off, AUTO):
            raise ConfigError(
                f"selection.{key}: {value!r} repairs labels; a response is dropped or down-weighted, never replaced"
            )
    pairs = value_pairs(config, splits)
    from autoft.modeling.load import DEFAULT_MODEL
    from autoft.selection.embeddings import embed_examples

    prompts = embed_examples(
        DEFAULT_MODEL, [Example(prompt_text(e), None) for e in splits.train], max_length=128, progress=progress
    )
    state = pair_state(pairs, prompts)
    prior = -pairs.conditional if name == "small-loss" else pairs.values
    options = {"seed": config.training.seed, "drop_fraction": pairs.drop_fraction, **selection.options}
    try:
        policy = get_policy(name, **options).start_from(prior, state)
    except TypeError as error:
        raise ConfigError(f"selection.options: {error}") from None
    mode = "sample" if selection.mode == AUTO else selection.mode
    resolved = selection.model_copy(
        update={"drop_fraction": pairs.drop_fraction, "mode": mode, "correction": "off", "balance": "global"}
    )
    record = {"phase": "offline", "event": "noise-estimate", **pairs.summary()}
    log.info(
        "offline valuation with %s: %d prompt-response pairs valued from their prior (%s)",
        name,
        len(prior),
        "base-model loss" if name == "small-loss" else "posterior of a matched response",
    )
    return PairAgentValuation(
        pairs, policy, state, resolved, decisions=[record, *({"phase": "offline", **d} for d in policy.decisions_)]
    )


class PairAgentCallback(TrainerCallback):
    """Per-pair weights each epoch from the policy, and policy updates from the validation-loss reward.

    ``reward_examples`` is the agent's part of the validation set; the loop's part alone chooses early stopping
    and the best epoch. With ``update_every: auto`` the policy is rewarded ``UPDATES_PER_EPOCH`` times an epoch on
    a fixed, seeded mini-batch of the reward part; the selection it is rewarded for is drawn at each epoch's start
    (a redraw mid-epoch would leave the rows drawn in out of the epoch's sampler), while a bucket policy's choice of
    bucket, a loss weight, changes at each reward."""

    def __init__(self, valuation: PairAgentValuation, *, reward_examples: list[Example], seed: int = 0) -> None:
        self.valuation = valuation
        self.selection = valuation.selection
        self.reward_examples = reward_examples
        self.policy = valuation.policy
        n = len(valuation.state)
        self.weights = np.ones(n)
        self.selected = np.ones(n, dtype=bool)
        self.trained = np.zeros(n, dtype=np.int64)  # how often each pair was in a batch with a non-zero weight
        self.decisions: list[dict[str, Any]] = list(valuation.decisions)
        self._reward = RewardTracker()
        self._action: int | None = None
        self._steps_in_epoch = 0
        every = self.selection.update_every
        self.update_every: int | None = None if every == "epoch" else None if every == AUTO else int(every)
        self._auto = every == AUTO
        size = self.selection.reward_batch if "reward_batch" in self.selection.model_fields_set else REWARD_BATCH
        size = min(size, len(reward_examples))
        self._rows = np.sort(np.random.default_rng(seed).choice(len(reward_examples), size, replace=False))
        self._features: list[Any] | None = None
        self.intervention = 1.0  # state.intervention: 1 fully, 0 plain training (selection.guard.BackOff)
        self.metric = self.selection.reward
        if self.metric.count(":"):
            raise ConfigError(
                "selection.reward: a 'module:function' reward is for classification predictions; "
                "on prompt-response pairs use loss or a generation metric (rougeL, bleu, chrf, ...)"
            )

    SAVED = (
        "policy",
        "weights",
        "selected",
        "trained",
        "decisions",
        "_reward",
        "_action",
        "_steps_in_epoch",
        "update_every",
        "intervention",
    )
    """What the online phase changes, the policy's learned state included (the valuation is recomputed)."""

    @property
    def draws(self) -> bool:
        return hasattr(self.policy, "draw_selection")

    def _weights(self) -> np.ndarray:
        """This epoch's selection (a policy that draws: its draw at the keep rate; else the lowest-valued
        ``drop_fraction`` left out) and the weights of ``_reweighted``."""
        values, drop = self.policy.values_, cast(float, self.selection.drop_fraction) * self.intervention  # resolved
        self.selected = (
            cast("Reinforce", self.policy).draw_selection(1.0 - drop) if self.draws else kept_mask(values, None, drop)
        )
        return self._reweighted()

    def _reweighted(self) -> np.ndarray:
        """[N] 0 for the pairs left out; the value's rank in ``weight`` mode, else 1; double in the bucket a bucket
        policy emphasises."""
        weights = (
            np.where(self.selected, np.clip(ranks(self.policy.values_), 1e-3, 1.0), 0.0)
            if self.selection.mode == "weight"
            else self.selected.astype(np.float64)
        )
        return (
            weights * (1.0 + cast("BucketPolicy", self.policy).bucket_weights(self._action))
            if self._action is not None
            else weights
        )

    def _act(self) -> None:
        self._action = int(self.policy.act()) if hasattr(self.policy, "act") else None

    # events
    def on_train_begin(self, state: TrainState) -> None:
        """The learning-rate range test trains on the pairs the prior keeps (a swapped pair's loss falls slowly)."""
        state.search_rows = np.flatnonzero(
            kept_mask(self.policy.values_, None, cast(float, self.selection.drop_fraction))
        )

    def on_epoch_begin(self, state: TrainState) -> None:
        self._steps_in_epoch = 0
        self._action = None
        if state.intervention != self.intervention:  # backed off (selection.guard.BackOff)
            self.intervention = state.intervention
            self.decisions.append(
                {
                    "phase": "online",
                    "epoch": state.epoch,
                    "event": "back-off",
                    "intervention": self.intervention,
                    "drop_fraction": round(cast(float, self.selection.drop_fraction) * self.intervention, 4),
                }
            )
        if self.update_every or state.epoch > 1:
            self._act()
        self.weights = self._weights()
        state.weights = self.weights
        self.decisions.append(
            {
                "phase": "online",
                "epoch": state.epoch,
                "event": "select",
                "policy": self.selection.policy,
                "kept": int(self.selected.sum()),
                "dropped": int((~self.selected).sum()),
                "emphasised_bucket": self._action,
                "mean_value_kept": float(self.policy.values_[self.selected].mean()) if self.selected.any() else None,
            }
        )

    def on_step_end(self, state: TrainState, output: StepOutput) -> None:
        rows = np.asarray(output.indices)
        rows = rows[rows < len(self.weights)]
        self.trained[rows[self.weights[rows] > 0]] += 1
        self._steps_in_epoch += 1
        if self._auto and self.update_every is None:  # from the first batch: steps an epoch of the kept pairs takes
            steps = math.ceil(self.selected.sum() / max(len(output.indices), 1))
            self.update_every = max(1, math.ceil(steps / UPDATES_PER_EPOCH))
            log.info(
                "the agent is rewarded every %d steps (%d per epoch) on %d validation pairs",
                self.update_every,
                math.ceil(steps / self.update_every),
                len(self._rows),
            )
            self._reward = RewardTracker()
        if self.update_every and state.step % self.update_every == 0:
            self._learn(self._score(state, self._rows), {"epoch": state.epoch, "step": state.step})
            if hasattr(self.policy, "act"):  # the bucket to emphasise for the next steps
                self._act()
                state.weights = self.weights = self._reweighted()

    def on_epoch_end(self, state: TrainState) -> None:
        if self.update_every:
            return
        self._learn(self._score(state, np.arange(len(self.reward_examples))), {"epoch": state.epoch})

    # rewards
    def _score(self, state: TrainState, rows: np.ndarray) -> float:
        """Higher is better: minus the loss (``loss`` / ``primary``), or a generation metric of the current model."""
        if self._features is None:
            self._features = cast(Encode, state.encode)(self.reward_examples)
        loss_only = self.metric in ("loss", "primary")
        metrics, _ = cast(Evaluate, state.evaluate)(
            [self.reward_examples[i] for i in rows], [self._features[i] for i in rows], loss_only=loss_only
        )
        if loss_only:
            return -float(metrics["loss"])
        if self.metric in metrics and not isinstance(metrics[self.metric], dict):
            return float(metrics[self.metric])
        raise ConfigError(
            f"selection.reward: {self.metric!r} is not a metric of this task "
            f"({', '.join(k for k, v in metrics.items() if not isinstance(v, dict))}, primary)"
        )

    def _learn(self, score: float, where: dict[str, Any]) -> None:
        self.decisions.append(self._reward.step(self.policy, score, lambda: self.selected, self._action, where))

    # outputs (the callback protocol's: what the agent adds to the run directory)
    def resolved_selection(self) -> SelectionConfig:
        return self.valuation.selection

    def run_metrics(self) -> dict[str, Any]:
        return {"noise": self.noise_summary()}

    def decision_records(self) -> list[dict[str, Any]]:
        return self.decisions

    def flagged(self) -> np.ndarray:
        """[N] bool: the pairs the agent leaves out at its last values."""
        return ~kept_mask(self.policy.values_, None, cast(float, self.selection.drop_fraction) * self.intervention)

    def repairs(self) -> tuple[np.ndarray, dict[int, int]]:
        """The pairs the agent leaves out (``flagged``) and no relabels (a response is never replaced), for
        ``corrected.<ext>``."""
        return np.flatnonzero(self.flagged()), {}

    def noise_summary(self) -> dict[str, Any]:
        summary = self.valuation.pairs.summary()
        return {k: summary[k] for k in ("units", "rate", "drop_fraction")}

    def data_values(self, examples: list[Example]) -> list[dict[str, Any]]:
        """One row per training pair, worst value first: the valuation's columns with the policy's last value."""
        return pair_value_rows(
            examples, self.valuation.pairs, values=self.policy.values_, flagged=self.flagged(), trained=self.trained
        )

    def write_artifacts(self, folder: Path, examples: list[Example], label_names: list[str]) -> None:
        write_decisions(folder / "decisions.jsonl", self.decisions)
        write_data_values(folder / "data_values.csv", self.data_values(examples))
        write_json(folder / "noise.json", self.valuation.pairs.summary())


__all__ = ["PAIR_POLICIES", "PairAgentCallback", "PairAgentValuation", "pair_state", "value_pair_agent"]
