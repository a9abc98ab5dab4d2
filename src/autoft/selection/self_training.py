"""Learning from unlabelled texts (``data.unlabeled``): pseudo-labels as one more action of the agent.

After every epoch the model predicts each unlabelled text. A pseudo-label is a candidate when it is
*consistent* — the same class as after the epoch before (agreement across epochs, in the spirit of
SelfMix / DivideMix's co-agreement) — and *confident enough for its class*: the agent's labelled
validation part says how precise the model's predictions of each class are at each confidence, and a
class's threshold is the lowest confidence whose predictions on that part reach the target precision.
Which target (0.95, 0.9 or 0.8: few but clean pseudo-labels, or more and noisier ones) is the agent's
choice, made online by an Exp3 bandit rewarded, like every other action, by the gain of its validation
part's metric over the epoch. Admitted texts train on their pseudo-label, weighted by its confidence, in
the labelled rows' class proportions (self-training's usual failure is the majority class swallowing the
pool and the rare ones vanishing: on TweetEval with 10% of the labels, admitting each class up to its
share of all candidates cost 2 macro-F1 points against labelled-only training).

A run that starts from a trained model (a continual update, ``autoft update --unlabeled``) has the model's
pseudo-labels from the start (``from_start``): the model it starts from predicts the pool and the reward part
before the first epoch, and, a finished model having no earlier epoch to disagree with, its predictions count
as consistent, so the first epoch already trains on those above their class's threshold.

``self_training: threshold`` is the classic baseline: every pseudo-label above one fixed confidence,
from the second epoch on, with no consistency check, calibration or balance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np

from autoft.data.loading import Example
from autoft.io import write_json
from autoft.selection.rewards import rescale_reward
from autoft.training.callbacks import Encode, Evaluate, Predict, PredictRows, TrainerCallback, TrainState

TARGETS = (0.95, 0.9, 0.8)
"""Precision targets the agent chooses among (arms of its bandit)."""
BALANCE_QUANTILE = 0.1
"""The admitted total is this quantile, over classes, of (candidates of the class / its labelled share)."""
MIN_CLASS_PREDICTIONS = 5
"""A class predicted fewer times on the validation part takes the threshold computed over all classes."""


def precision_thresholds(
    confidence: np.ndarray, predicted: np.ndarray, correct: np.ndarray, n_classes: int, target: float
) -> np.ndarray:
    """[C] per predicted class, the lowest confidence whose predictions (at or above it) are at least
    ``target`` precise on the labelled rows given (inf where no confidence reaches it)."""

    def lowest(conf: np.ndarray, ok: np.ndarray) -> float:
        order = np.argsort(-conf)
        precision = np.cumsum(ok[order]) / np.arange(1, len(order) + 1)
        reached = np.flatnonzero(precision >= target)
        return float(conf[order][reached.max()]) if reached.size else np.inf

    overall = lowest(confidence, correct) if len(confidence) else np.inf
    thresholds = np.full(n_classes, overall)
    for c in range(n_classes):
        rows = predicted == c
        if rows.sum() >= MIN_CLASS_PREDICTIONS:
            thresholds[c] = lowest(confidence[rows], correct[rows])
    return thresholds


class Exp3Arms:
    """Exp3 (Auer et al. 2002) over a few arms: draw from ``(1 - gamma) softmax(w) + gamma / K``, learn
    from the importance-weighted reward rescaled to [-1, 1] by the rewards seen so far."""

    def __init__(self, n_arms: int, *, gamma: float = 0.3, eta: float = 0.5, seed: int = 0) -> None:
        self.log_weights = np.zeros(n_arms)
        self.gamma, self.eta = gamma, eta
        self.rng = np.random.default_rng(seed)
        self.rewards: list[float] = []

    def probabilities(self) -> np.ndarray:
        weights = np.exp(self.log_weights - self.log_weights.max())
        return (1 - self.gamma) * weights / weights.sum() + self.gamma / len(weights)

    def draw(self) -> int:
        return int(self.rng.choice(len(self.log_weights), p=self.probabilities()))

    def update(self, arm: int, reward: float) -> None:
        self.rewards.append(reward)
        scaled = rescale_reward(reward, self.rewards)
        self.log_weights[arm] += self.eta * scaled / self.probabilities()[arm]
        self.log_weights -= self.log_weights.max()


class SelfTrainingCallback(TrainerCallback):
    """Pseudo-labels unlabelled rows each epoch (``mode``: ``agent`` or ``threshold``; see the module)."""

    def __init__(
        self,
        unlabeled: list[Example],
        *,
        n_classes: int,
        labelled_classes: np.ndarray,
        mode: str = "agent",
        threshold: float = 0.9,
        reward_examples: list[Example] | None = None,
        label_ids: dict[str, int],
        primary_metric: str,
        seed: int = 0,
        from_start: bool = False,
    ) -> None:
        if mode == "agent" and not reward_examples:
            raise ValueError("self_training: agent needs labelled validation examples for its reward")
        self.unlabeled, self.mode, self.threshold, self.from_start = unlabeled, mode, threshold, from_start
        self.n_classes, self.primary_metric = n_classes, primary_metric
        self.reward_examples = reward_examples or []
        self.label_ids = label_ids
        counts = np.bincount(labelled_classes, minlength=n_classes)
        self.class_share = counts / max(counts.sum(), 1)
        self.bandit = Exp3Arms(len(TARGETS), seed=seed)
        n = len(unlabeled)
        self.predicted = np.full(n, -1, dtype=np.int64)
        self.previous = np.full(n, -1, dtype=np.int64)
        self.confidence = np.zeros(n)
        self.admitted = np.zeros(n, dtype=bool)
        self.thresholds: np.ndarray | None = None
        self.arm: int | None = None
        self.score: float | None = None
        self.decisions: list[dict[str, Any]] = []
        self._reward_features: list[Any] | None = None

    SAVED = ("bandit", "predicted", "previous", "confidence", "admitted", "thresholds", "arm", "score", "decisions")
    """What the epochs change: a checkpoint saves it."""

    def on_train_begin(self, state: TrainState) -> None:
        """``from_start``: the starting model's pseudo-labels (see the module), consistent by definition."""
        if not self.from_start or not self.unlabeled:
            return
        predict, encode = cast(Predict, state.predict), cast(Encode, state.encode)
        self._observe(state, np.stack(predict(encode(self.unlabeled, with_labels=False))))
        self.previous = self.predicted.copy()

    def on_epoch_begin(self, state: TrainState) -> None:
        if self.mode == "agent" and self.thresholds is not None:
            admit = self._agent_admits()
        elif self.mode == "threshold":
            admit = (self.predicted >= 0) & (self.confidence >= self.threshold)
        else:
            admit = np.zeros(len(self.unlabeled), dtype=bool)
        self.admitted = admit
        offset = state.labelled
        state.pseudo_labels = {
            offset + int(i): (int(self.predicted[i]), float(self.confidence[i])) for i in np.flatnonzero(admit)
        }
        counts = (
            np.bincount(self.predicted[admit], minlength=self.n_classes)
            if admit.any()
            else np.zeros(self.n_classes, dtype=np.int64)
        )
        self.decisions.append(
            {
                "epoch": state.epoch,
                "event": "admit",
                "mode": self.mode,
                "admitted": int(admit.sum()),
                "per_class": counts.tolist(),
                "target_precision": TARGETS[self.arm] if self.arm is not None else None,
                "thresholds": None if self.thresholds is None else [round(float(t), 4) for t in self.thresholds],
            }
        )

    def _agent_admits(self) -> np.ndarray:
        """Consistent pseudo-labels above their class's threshold, in the labelled rows' class proportions
        (distribution alignment, as class-balanced self-training): the admitted total is what the
        scarcest classes can fill at their share (the 10th percentile of candidates / share over the
        classes that have candidates), each class its share of it, the most confident first.

        A class with no candidate at all does not set the total: a pool from another domain, or one class of many
        the model never predicts confidently there, would otherwise admit nothing (with BANKING77's 77 classes,
        eight without a candidate were enough)."""
        consistent = (self.predicted >= 0) & (self.predicted == self.previous)
        thresholds = cast(np.ndarray, self.thresholds)  # the agent admits once it has thresholds
        above = consistent & (self.confidence >= thresholds[np.maximum(self.predicted, 0)])
        admit = np.zeros(len(above), dtype=bool)
        present = self.class_share > 0
        candidates = (
            np.bincount(self.predicted[above], minlength=self.n_classes)
            if above.any()
            else np.zeros(self.n_classes, dtype=np.int64)
        )
        filled = present & (candidates > 0)
        if not filled.any():
            return admit
        total = float(np.quantile(candidates[filled] / self.class_share[filled], BALANCE_QUANTILE))
        for c in np.flatnonzero(present):
            rows = np.flatnonzero(above & (self.predicted == c))
            cap = int(np.ceil(self.class_share[c] * total))
            admit[rows[np.argsort(-self.confidence[rows])][:cap]] = True
        return admit

    def on_epoch_end(self, state: TrainState) -> None:
        # The pool's rows follow the labelled ones in the loop, which encoded them once already.
        predict_rows = cast(PredictRows, state.predict_rows)
        self._observe(state, np.stack(predict_rows(state.labelled + np.arange(len(self.unlabeled)))))

    def _observe(self, state: TrainState, probabilities: np.ndarray) -> None:
        """The model's pseudo-labels of the pool; for the agent, its reward for the last target and the
        per-class thresholds of the next (from the reward part's predictions)."""
        self.previous = self.predicted.copy()
        self.predicted = probabilities.argmax(-1)
        self.confidence = probabilities.max(-1)
        if self.mode != "agent":
            return
        # The reward part: its metric's gain rewards the target chosen for this epoch; its predictions set
        # the per-class thresholds for the next.
        if self._reward_features is None:
            self._reward_features = cast(Encode, state.encode)(self.reward_examples)
        metrics, _ = cast(Evaluate, state.evaluate)(self.reward_examples, self._reward_features)
        score = float(metrics[self.primary_metric])
        reward = None if self.score is None else score - self.score
        if reward is not None and self.arm is not None:
            self.bandit.update(self.arm, reward)
        self.score = score
        given = np.array([self.label_ids[cast(str, e.label)] for e in self.reward_examples])
        validation = np.stack(cast(Predict, state.predict)(self._reward_features))
        self.arm = self.bandit.draw()
        self.thresholds = precision_thresholds(
            validation.max(-1), validation.argmax(-1), validation.argmax(-1) == given, self.n_classes, TARGETS[self.arm]
        )
        self.decisions.append(
            {
                "epoch": state.epoch,
                "event": "reward",
                "validation": score,
                "reward": reward,
                "next_target_precision": TARGETS[self.arm],
                "probabilities": [round(float(p), 4) for p in self.bandit.probabilities()],
            }
        )

    def run_metrics(self) -> dict[str, Any]:
        return {
            "self_training": {
                "mode": self.mode,
                "admitted_last_epoch": int(self.admitted.sum()),
                "unlabeled": len(self.unlabeled),
            }
        }

    def write_artifacts(self, folder: Path, examples: list[Example], label_names: list[str]) -> None:
        """``self_training.json``: per epoch what was admitted and why; the last pseudo-labels admitted."""
        write_json(
            folder / "self_training.json",
            {
                "mode": self.mode,
                "unlabeled": len(self.unlabeled),
                "decisions": self.decisions,
                "admitted": [
                    {
                        "line": e.origin,
                        "text": e.text,
                        "pseudo_label": label_names[int(self.predicted[i])],
                        "confidence": round(float(self.confidence[i]), 4),
                    }
                    for i, e in ((int(i), self.unlabeled[int(i)]) for i in np.flatnonzero(self.admitted))
                ],
            },
        )


__all__ = ["TARGETS", "Exp3Arms", "SelfTrainingCallback", "precision_thresholds"]
