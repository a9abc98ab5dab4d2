"""The online phase: the agent as a ``TrainerCallback`` that weights samples and learns from its reward."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from scipy.stats import rankdata

from autoft.config import AUTO, SelectionConfig
from autoft.data.loading import Example
from autoft.errors import ConfigError
from autoft.selection.keeping import MAX_CLASS_LOSS, ranks
from autoft.selection.noise import transition_of
from autoft.selection.reports import data_value_rows, write_data_values, write_decisions, write_noise
from autoft.selection.rewards import RewardTracker, load_reward
from autoft.selection.state import TrainingDynamics, sequence_margins
from autoft.selection.valuation import Valuation
from autoft.training.callbacks import Encode, Evaluate, PredictRows, Score, StepOutput, TrainerCallback, TrainState

if TYPE_CHECKING:
    from autoft.selection.noise import NoiseEstimate
    from autoft.selection.policies import Reinforce
    from autoft.selection.policies._buckets import BucketPolicy

log = logging.getLogger(__name__)


class AgentCallback(TrainerCallback):
    """Turns a fitted policy into per-epoch sample weights and learns from its own validation reward.

    The agent learns from ``reward_examples`` only — its part of the validation set (``selection.
    reward_fraction``); the loop's validation data, which chooses early stopping and the best epoch, is
    never its reward. The reward is the gain of ``selection.reward`` between two evaluations: per epoch on
    the whole reward part or, with ``selection.update_every: N``, every N optimisation steps on a fixed,
    seeded mini-batch of ``selection.reward_batch`` of its samples (then the policy also re-weights the
    rest of the epoch after each update).
    """

    def __init__(
        self, valuation: Valuation, *, primary_metric: str, reward_examples: list[Example], seed: int = 0
    ) -> None:
        self.valuation = valuation
        self.policy = valuation.policy  # the valuation's, learning online (a checkpoint saves its state)
        self.selection = valuation.selection
        self.primary_metric = primary_metric
        self.reward_examples = reward_examples
        self.seed = seed
        n = valuation.units.n_samples
        self.dynamics = TrainingDynamics(n)
        self.model_margin = np.full(n, np.nan)
        self.last_prediction = np.full(n, -1, dtype=np.int64)
        self.values = valuation.sample_values()
        self.weights = np.ones(n)
        self.selected = np.ones(n, dtype=bool)
        self.masked = np.zeros(len(valuation.units.owner), dtype=bool)
        self.relabelled = np.zeros(n, dtype=bool)
        self.floor_relabelled = np.zeros(n, dtype=bool)  # relabelled into a class below its floor (Valuation.floor)
        self.intervention = 1.0  # state.intervention: 1 fully, 0 plain training (selection.guard.BackOff)
        self.warnings: list[str] = []  # classes that lost more than half their rows, by name (metrics.json)
        self._epoch = 0  # the epoch being selected for (0: before training), for the class floor's records
        self.retagged = np.zeros(n, dtype=bool)  # NER: rows with an entity trained on its suggested type
        # selection.flagged: unlabel — the model's own labels of the samples left out, after the last two epochs
        self.own_label = np.full(n, -1, dtype=np.int64)
        self.own_label_before = np.full(n, -1, dtype=np.int64)
        self.own_confidence = np.zeros(n)
        self.unlabelled = np.zeros(n, dtype=bool)
        self.decisions: list[dict[str, Any]] = list(valuation.decisions)
        self._reward = RewardTracker()
        self._action: int | None = None
        self._user_reward = load_reward(self.selection.reward) if ":" in self.selection.reward else None
        every = self.selection.update_every
        self.update_every = None if every in ("epoch", AUTO) else int(every)
        size = min(self.selection.reward_batch, len(reward_examples))
        self._rows = np.sort(np.random.default_rng(seed).choice(len(reward_examples), size, replace=False))
        self._features: list[Any] | None = None

    # fmt: off
    SAVED = ("policy", "dynamics", "model_margin", "last_prediction", "values", "weights", "selected", "masked",
             "relabelled", "floor_relabelled", "intervention", "warnings", "_epoch", "retagged", "own_label",
             "own_label_before", "own_confidence", "unlabelled", "decisions", "_reward", "_action")
    # fmt: on
    """What the online phase changes, the policy's learned state included (the valuation is recomputed)."""

    # values -> weights
    def _current_values(self) -> np.ndarray:
        """Policy values, re-scored from what fine-tuning has shown so far (``selection.rescore``).

        ``model``: the mean of the policy value's rank and the rank, within its given class, of the
        fine-tuned model's latest margin on every training sample, so wrongly dropped samples can come
        back. ``dynamics``: the mean of a seen sample's policy-value rank and its area-under-the-margin
        rank among the seen samples; samples left out (never seen, so without dynamics) keep their
        policy-value rank. A kept sample the model keeps contradicting sinks below the ones left out,
        and the best of those come back in its place."""
        values = ranks(self.valuation.sample_values())
        if self.selection.rescore == "model":
            if np.isnan(self.model_margin).any():
                return values
            # Ranked within each given class: a class the young model hardly predicts yet (a rare one)
            # would otherwise sink whole and never be learned.
            model = np.empty_like(values)
            for c in np.unique(self.valuation.sample_labels):
                rows = self.valuation.sample_labels == c
                model[rows] = ranks(self.model_margin[rows])
            return 0.5 * values + 0.5 * model
        aum = self.dynamics.aum
        seen = ~np.isnan(aum)
        if self.selection.rescore == "off" or not seen.any():
            return values
        values[seen] = 0.5 * values[seen] + 0.5 * rankdata(aum[seen]) / seen.sum()
        return values

    def _masked_words(self) -> dict[int, list[int]]:
        units = self.valuation.units
        words: dict[int, list[int]] = {}
        for unit in np.flatnonzero(self.masked):
            first, last = cast("list[tuple[int, int]]", units.spans)[unit]  # mask mode: entity units
            words.setdefault(int(units.owner[unit]), []).extend(range(first, last + 1))
        return words

    def _flagged(self) -> np.ndarray:
        """[N] bool: samples left out this epoch (``mask`` mode: samples with a masked entity)."""
        if self.selection.mode == "mask":
            return self.valuation.flagged(self.values, self.masked)
        return self.weights == 0

    @property
    def draws(self) -> bool:
        """Whether the policy draws the selection it is rewarded for (REINFORCE on classification, where a
        unit is a sample) rather than the loop cutting its values at the keep rate."""
        units = self.valuation.units
        return (
            hasattr(self.policy, "draw_selection")
            and self.selection.mode != "mask"
            and len(units.owner) == units.n_samples
        )

    @property
    def drop_fraction(self) -> float:
        """The share left out now: the run's ``drop_fraction`` scaled by how far the agent still intervenes."""
        return cast(float, self.selection.drop_fraction) * self.intervention  # resolved by the valuation

    def _drawn(self) -> np.ndarray:
        """[N] bool: the policy's own draw at the run's keep rate (per given class with ``balance:
        per-class``). Re-scoring does not move it: the policy's online steps do."""
        labels = self.valuation.sample_labels
        groups = (
            [np.flatnonzero(labels == c) for c in np.unique(labels)] if self.selection.balance == "per-class" else None
        )
        return cast("Reinforce", self.policy).draw_selection(1.0 - self.drop_fraction, groups)  # it draws

    def _weights(self, values: np.ndarray, draw: bool = True) -> np.ndarray:
        """Per-sample weights at these values: 0 for the samples left out (``mask`` mode: none; the
        lowest-valued entities are masked instead; a policy that ``draws``: those its draw leaves out, unless
        not ``draw``), the value's rank in ``weight`` mode; the bucket a bucket policy chose counts double. At
        intervention 0 (backed off, or idle) every sample kept weighs 1, as in plain fine-tuning."""
        if self.selection.mode == "mask":
            self.masked = self.valuation.lowest_units(self.drop_fraction)
            weights = np.ones(len(values))
        else:
            keep = self._drawn() if draw and self.draws else self.valuation.keep(values, self.drop_fraction)
            keep, self.floor_relabelled, floor = self.valuation.floor(keep, values)
            self._record_floor(floor)
            self.selected = keep  # what the policy is rewarded for (relabels and own labels come on top)
            weights = (
                np.where(keep, np.clip(ranks(values), 1e-3, 1.0), 0.0)
                if self.selection.mode == "weight" and self.intervention > 0
                else keep.astype(np.float64)
            )
        if self._action is not None and self.intervention > 0:  # (backed off: the emphasis scales down with it)
            weights = weights * (
                1.0
                + self.intervention
                * self.valuation.units.sample_any(cast("BucketPolicy", self.policy).bucket_weights(self._action))
            )
        return weights

    def _relabel(self, weights: np.ndarray) -> dict[int, int]:
        """Samples to repair instead of leaving out: those the class floor relabels into a class that would
        starve (``Valuation.floor``), and (``selection.relabel_confidence``) those left out at these ``weights``
        whose suggested label, another than the given one, has at least that probability. Sets
        ``self.relabelled``; returns row -> suggested class id."""
        threshold, noise = self.selection.relabel_confidence, self.valuation.noise
        self.relabelled = self.floor_relabelled.copy()
        if (
            threshold is None
            or noise is None
            or self.selection.mode == "mask"
            or self.valuation.units.spans is not None
        ):
            return {
                int(i): int(cast("NoiseEstimate", noise).suggested[i]) for i in np.flatnonzero(self.relabelled)
            }  # (NER: _retag)
        suggested = noise.suggested
        self.relabelled |= (
            (weights == 0) & (suggested != self.valuation.sample_labels) & (noise.suggested_confidence >= threshold)
        )
        return {int(i): int(suggested[i]) for i in np.flatnonzero(self.relabelled)}

    def _record_floor(self, floor: list[dict[str, Any]]) -> None:
        """A ``class-floor`` decision for what the class floor did this time, and a warning (once per class, by
        name) for a class that still lost more than half its rows (left out or relabelled away)."""
        if not floor:
            return
        self.decisions.append({"phase": "online", "epoch": self._epoch, "event": "class-floor", "classes": floor})
        for record in floor:
            if record["left_out"] > MAX_CLASS_LOSS * record["rows"] and not any(
                w.startswith(f"class {record['class']!r}") for w in self.warnings
            ):
                self.warnings.append(
                    f"class {record['class']!r}: the agent left out {record['left_out']} of its {record['rows']} "
                    f"rows as mislabelled; it trains on {record['effective']} ({record['relabelled_in']} relabelled "
                    f"into it from other classes); check its labels in data_values.csv"
                )
                log.warning(self.warnings[-1])
                self.decisions.append({"phase": "online", "epoch": self._epoch, "event": "class-warning", **record})

    def _retag(self, weights: np.ndarray) -> dict[int, dict[int, str]]:
        """NER repair instead of leaving out (``selection.relabel_confidence``): among the lowest-valued
        entities (``Valuation.lowest_units``), those whose suggested type differs from the given one with at
        least that probability train on the suggested type (``B-``/``I-`` kept). ``sample`` / ``weight`` mode:
        a sentence left out comes back when each of its suspect entities is repaired so; ``mask`` mode: a
        repaired entity is no longer masked. Sets ``self.retagged`` ([N] rows repaired); returns row -> word ->
        tag."""
        units, noise, threshold = self.valuation.units, self.valuation.noise, self.selection.relabel_confidence
        self.retagged = np.zeros(len(weights), dtype=bool)
        if threshold is None or noise is None or units.spans is None:
            return {}
        suspect = (
            self.masked.copy() if self.selection.mode == "mask" else self.valuation.lowest_units(self.drop_fraction)
        )
        confident = suspect & (noise.suggested != units.labels) & (noise.suggested_confidence >= threshold)
        if self.selection.mode == "mask":
            repaired = confident
            self.masked &= ~confident
        else:
            unsure = units.sample_any((suspect & ~confident).astype(float)) > 0
            rows = (weights == 0) & (units.sample_any(confident.astype(float)) > 0) & ~unsure
            repaired = confident & rows[units.owner]
        tags: dict[int, dict[int, str]] = {}
        for unit in np.flatnonzero(repaired):
            kind, (first, last) = units.class_names[noise.suggested[unit]], units.spans[unit]
            words = tags.setdefault(int(units.owner[unit]), {})
            words.update({word: ("B-" if word == first else "I-") + kind for word in range(first, last + 1)})
        self.retagged[list(tags)] = True
        return tags

    def _unlabel(self, weights: np.ndarray) -> dict[int, int]:
        """``selection.flagged: unlabel``: samples left out (and not relabelled) whose own label — the
        fine-tuned model's prediction, made while they were left out — was the same after the last two
        epochs and at least ``self_training_threshold`` confident train on it, weighted by that
        confidence. Sets ``self.unlabelled``; returns row -> class id."""
        self.unlabelled = np.zeros(len(weights), dtype=bool)
        if self.selection.flagged != "unlabel":
            return {}
        self.unlabelled = (
            (weights == 0)
            & ~self.relabelled
            & (self.own_label >= 0)
            & (self.own_label == self.own_label_before)
            & (self.own_confidence >= self.selection.self_training_threshold)
        )
        return {int(i): int(self.own_label[i]) for i in np.flatnonzero(self.unlabelled)}

    def _act(self) -> None:
        policy = self.policy
        self._action = int(policy.act()) if hasattr(policy, "act") else None

    # events
    def on_train_begin(self, state: TrainState) -> None:
        """The learning-rate range test trains on the rows kept first: on noisy labels the whole set's loss
        curve falls slowly and the test picks a rate that learns the noise. An agent with nothing to act on
        (``Valuation.idle``) does not intervene at all."""
        if self.valuation.idle:
            if self.intervention > 0:
                noise = self.valuation.noise
                self.decisions.append(
                    {
                        "phase": "online",
                        "epoch": 0,
                        "event": "idle",
                        "noise_rate": (noise.rate if noise is not None else None),
                        "why": self.valuation.idle_reason + ": the run trains as plain fine-tuning",
                    }
                )
            self.intervention = state.intervention = 0.0
        if self.selection.mode != "mask":
            state.search_rows = np.flatnonzero(self._weights(self._current_values(), draw=False) > 0)

    def on_epoch_begin(self, state: TrainState) -> None:
        epoch = self._epoch = state.epoch
        if state.intervention != self.intervention:  # backed off (selection.guard.BackOff)
            self.intervention = state.intervention
            self.decisions.append(
                {
                    "phase": "online",
                    "epoch": epoch,
                    "event": "back-off",
                    "intervention": self.intervention,
                    "drop_fraction": round(self.drop_fraction, 4),
                }
            )
        self.values = self._current_values()
        self._action = None
        if epoch > 1 or self.update_every:
            self._act()  # (per-epoch rewards: the first epoch has no reward to act on yet)
        self.weights = self._weights(self.values)
        if self.intervention > 0:
            state.relabels, state.retagged = self._relabel(self.weights), self._retag(self.weights)
        else:  # backed off all the way: every row trains on its given label
            self.relabelled[:], self.retagged[:] = False, False
        self.weights[self.relabelled | self.retagged] = 1.0  # repaired: trains on its suggested label this epoch
        state.relabels.update(self._unlabel(self.weights))
        self.weights[self.unlabelled] = self.own_confidence[self.unlabelled]  # trains on the model's own label
        state.weights = self.weights
        if self.selection.mode == "mask":
            state.masked_words = self._masked_words()
        kept = ~self._flagged()
        corrected_noise = None  # the estimated share of wrong labels among the rows forward-corrected
        if (
            self.selection.correction == "forward" and self.intervention > 0
        ):  # the noise left among the rows that keep their given label
            given, noise = (
                np.flatnonzero(kept & ~self.relabelled & ~self.unlabelled),
                cast("NoiseEstimate", self.valuation.noise),
            )  # forward correction: an agent run's
            state.label_transition = transition_of(noise.posterior, self.valuation.sample_labels, given)
            corrected_noise = round(float(1.0 - noise.correct[given].mean()), 4) if given.size else None
        per_source = {
            name: float(kept[self.valuation.sources == i].mean()) for i, name in enumerate(self.valuation.source_names)
        }
        self.decisions.append(
            {
                "phase": "online",
                "epoch": epoch,
                "event": "select",
                "policy": self.selection.policy,
                "kept": int(kept.sum()),
                "dropped": int((~kept).sum()),
                "keep_rate_by_source": per_source,
                "mean_value_kept": float(self.values[kept].mean()) if kept.any() else None,
                "rescored": self.selection.rescore if (self.dynamics.count > 0).any() else None,
                "masked_entities": int(self.masked.sum()) if self.selection.mode == "mask" else None,
                "relabelled": int(self.relabelled.sum() + self.retagged.sum()),
                "unlabelled": int(self.unlabelled.sum()),
                "emphasised_bucket": self._action,
                "corrected_noise": corrected_noise,
            }
        )

    def on_step_end(self, state: TrainState, output: StepOutput) -> None:
        labelled = np.asarray(output.indices) < len(self.weights)  # pseudo-labelled rows are not the agent's
        logits = cast(torch.Tensor, output.logits)  # (None only for a language model's: the pair agent's)
        if not labelled.all():
            keep = torch.as_tensor(labelled, device=logits.device)
            logits = logits[keep]
            output = StepOutput(output.indices[labelled], output.losses[keep], logits, output.labels[keep])
        if logits.ndim == 3:  # token classification: a sentence's margin is its worst labelled token's
            margins = sequence_margins(logits.float().cpu().numpy(), output.labels.cpu().numpy())
            self.dynamics.update(output.indices, output.losses, margins)
        else:
            self.dynamics.update_from_logits(output.indices, output.losses, logits, output.labels)
            self.last_prediction[np.asarray(output.indices)] = logits.argmax(-1).cpu().numpy()
        if self.update_every and state.step % self.update_every == 0:
            # A mid-epoch reward on the agent's validation mini-batch; it re-weights the rest of the epoch.
            self._learn(self._score(state, self._rows), {"step": state.step})
            self._act()
            self.values = self._current_values()
            self.weights = self._weights(self.values)
            self.weights[self.relabelled | self.retagged] = 1.0  # this epoch's repairs and own labels stand
            self.weights[self.unlabelled] = self.own_confidence[self.unlabelled]
            state.weights = self.weights

    def on_epoch_end(self, state: TrainState) -> None:
        if self.selection.flagged == "unlabel":  # the model's own label of every sample left out this epoch
            left_out = np.flatnonzero(self.weights == 0)
            self.own_label_before, self.own_label = self.own_label, np.full_like(self.own_label, -1)
            if left_out.size:
                probabilities = np.stack(cast(PredictRows, state.predict_rows)(left_out))
                self.own_label[left_out] = probabilities.argmax(-1)
                self.own_confidence[left_out] = probabilities.max(-1)
        if self.selection.rescore == "model":  # the fine-tuned model's margin on every training sample
            self.model_margin[:] = cast(Score, state.score)(np.arange(len(self.model_margin)))
        rows = np.arange(len(self.reward_examples))
        score = self._score(state, rows)
        if self.update_every:  # the policy learns from the mini-batches; the epoch score is logged only
            self.decisions.append({"phase": "online", "epoch": state.epoch, "event": "validation", "validation": score})
            return
        self._learn(score, {"epoch": state.epoch})

    def on_train_end(self, state: TrainState) -> None:
        """The kept model's label of each sample left out of the last epoch (one inference pass over them), so
        ``model_label`` is filled for every row; a sample trained on keeps the label of its last step."""
        left_out = np.flatnonzero(self.weights == 0)
        if not left_out.size or state.predict_rows is None:
            return
        probabilities = state.predict_rows(left_out)
        if probabilities[0].ndim == 1:  # one label per sample (NER's per-word tags have none)
            self.last_prediction[left_out] = np.stack(probabilities).argmax(-1)

    # rewards
    def _score(self, state: TrainState, rows: np.ndarray) -> float:
        """The reward metric of the current model on ``rows`` of the agent's validation part."""
        if self._features is None:
            self._features = cast(Encode, state.encode)(self.reward_examples)
        examples = [self.reward_examples[i] for i in rows]
        metrics, predictions = cast(Evaluate, state.evaluate)(examples, [self._features[i] for i in rows])
        name = self.selection.reward
        if self._user_reward is not None:
            return float(self._user_reward(predictions, [e.label for e in examples]))
        if name == "primary":
            return float(metrics[self.primary_metric])
        if name == "loss":
            return -float(metrics["loss"])
        if name in metrics and not isinstance(metrics[name], dict):
            return float(metrics[name])
        raise ConfigError(
            f"selection.reward: {name!r} is not a validation metric "
            f"({', '.join(k for k, v in metrics.items() if not isinstance(v, dict))}, primary)"
        )

    def _learn(self, score: float, where: dict[str, Any]) -> None:
        """Reward = the gain since the last evaluation of the same rows; the first one only sets the bar."""
        selected = lambda: (
            ~self.masked if self.selection.mode == "mask" else self.valuation.units.unit_mask(self.selected)
        )
        self.decisions.append(self._reward.step(self.policy, score, selected, self._action, where))

    # outputs (the callback protocol's: what the agent adds to the run directory)
    def resolved_selection(self) -> SelectionConfig:
        return self.valuation.selection

    def run_metrics(self) -> dict[str, Any]:
        return {"noise": self.noise_summary()}

    def run_warnings(self) -> list[str]:
        return list(self.warnings)

    def decision_records(self) -> list[dict[str, Any]]:
        return self.decisions

    def noise_summary(self) -> dict[str, Any] | None:
        """The estimated label noise and the share left out, for ``metrics.json``."""
        noise = self.valuation.noise
        return (
            None
            if noise is None
            else {"rate": noise.rate, "per_class": noise.per_class, "drop_fraction": self.selection.drop_fraction}
        )

    def repairs(self) -> tuple[np.ndarray, dict[int, int]]:
        """The agent's last word on the training data: the rows it leaves out and the rows it relabels
        (row -> class id), for ``corrected.<ext>``. ``mask`` mode leaves no row out."""
        dropped = np.flatnonzero(self._flagged()) if self.selection.mode != "mask" else np.zeros(0, dtype=np.int64)
        noise = cast("NoiseEstimate", self.valuation.noise)  # (relabels come from the noise estimate)
        relabels = {int(i): int(noise.suggested[i]) for i in np.flatnonzero(self.relabelled)}
        relabels.update({int(i): int(self.own_label[i]) for i in np.flatnonzero(self.unlabelled)})
        return np.setdiff1d(dropped, np.flatnonzero(self.unlabelled)), relabels

    def data_values(self, examples: list[Example], label_names: list[str]) -> list[dict[str, Any]]:
        """One row per training sample, worst value first (columns ``DATA_VALUE_COLUMNS``)."""
        return data_value_rows(
            examples,
            label_names,
            self.valuation,
            self._current_values(),
            self._flagged() & ~self.unlabelled & ~self.retagged,
            self.last_prediction,
            self.relabelled | self.retagged,
            self.unlabelled,
        )

    def write_artifacts(self, folder: Path, examples: list[Example], label_names: list[str]) -> None:
        write_decisions(folder / "decisions.jsonl", self.decisions)
        write_data_values(folder / "data_values.csv", self.data_values(examples, label_names))
        write_noise(folder / "noise.json", self.valuation)


__all__ = ["AgentCallback"]
