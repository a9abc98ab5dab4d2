"""The agent watches its own evidence: plain fine-tuning's scores on the agent's stopping half of validation, and a
callback that backs the agent off when its model falls behind them.

``autoft run`` trains plain fine-tuning first. :class:`ReferenceScores` rides along and scores the plain model,
after every epoch, on the part of validation that the agent's run keeps for early stopping (the agent learns from
the other part), and writes the scores, with the samples trained on so far, to ``stopping_half.json`` in the plain
run's folder. In the agent's run, :class:`BackOff` compares the agent's best score so far on the same rows with the
best plain fine-tuning had reached on no more training samples (an agent that leaves rows out trains on fewer per
epoch, so it is compared with plain's earlier epochs). When the agent is behind by more than
``BACK_OFF_TOLERANCE``, it backs off one
level (``state.intervention``, which the agent reads at the next epoch's start): first it leaves out half as
much, then nothing (no relabels, no loss correction: the rest of the run is plain fine-tuning from the weights it
has). It also backs off, at once, when the agent's model predicts a class far less often than plain's did after as
much training (``STARVED_SHARE``, ``SAME_TRAINING``): a starved class. The agent writes each back-off to
``decisions.jsonl`` (a ``back-off`` record); this callback logs why and writes its evidence to ``metrics.json``
(``back_off``), with a warning for a starved class.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any, cast

import numpy as np

from autoft.data.loading import Example
from autoft.io import write_json
from autoft.training.callbacks import Encode, Evaluate, TrainerCallback, TrainState

log = logging.getLogger(__name__)

REFERENCE_FILE = "stopping_half.json"
INTERVENTION_LEVELS = (1.0, 0.5, 0.0)
"""``state.intervention`` at each back-off level: the agent leaves out this share of what it would."""
BACK_OFF_TOLERANCE = 0.01
"""How far (in the task's main validation metric) the agent's best may trail plain fine-tuning's before it backs
off: less than one point is within what a few hundred validation rows move by between epochs."""
STARVED_SHARE = 0.25
STARVED_MIN = 5
"""A class is starved when the agent's model predicts it on the stopping half less than ``STARVED_SHARE`` times as
often as plain fine-tuning's model did after as much training (:data:`SAME_TRAINING`), where plain's predicted it at
least ``STARVED_MIN`` times: the agent backs off at once, whatever the main metric says. A rare class can vanish from
the agent's predictions while a few hundred validation rows barely move macro-F1: on TweetEval with 40% symmetric
noise (noise seed 4, ``benchmarks/never_worse.py`` at c6196ae) the agent's best epoch predicted *optimism* 3 times on
the 374 validation rows (28 gold, plain's 21) and scored optimism F1 0.06 on test against plain's 0.43, while its
stopping half's macro-F1 (0.689 against plain's 0.733 after a third fewer samples) set off the back-off only at epoch
4."""
SAME_TRAINING = 0.9
"""The starved check holds the agent's model to plain's after the same epoch while the agent has trained on at least
this share of plain's samples by then, and otherwise to plain's last epoch on no more samples than its own (none
before plain's first: no verdict). A model trained on far fewer rows predicts rare classes less often whatever it left
out: compared epoch by epoch, the check fired after the first epoch, on 60-72% of plain's rows, on every BANKING77
40% seed and on TweetEval 40% noise seed 5, whose agent then ended 1.5 points above plain. Compared by samples alone
(commit 71b7c8b, ``benchmarks/results/never_worse_starved_by_samples_cells.jsonl``) that seed ended 5.2 above plain,
but clean SemEval-2010 (7% left out) lost the back-off after its first epoch, where its model predicted 0 of
29 *Cause-Effect(e1,e2)* against plain's, and seed 1 ended 2.2 points below plain and was served: an agent that
trained on nearly plain's rows has no excuse of less training."""


class ReferenceScores(TrainerCallback):
    """Scores the model being trained (plain fine-tuning) after each epoch on ``examples`` — the agent's stopping
    half of validation — and writes them to ``stopping_half.json`` (:func:`read_reference`)."""

    def __init__(
        self, examples: list[Example], *, metric: str, greater_is_better: bool, loss_only: bool = False
    ) -> None:
        self.examples, self.metric, self.greater_is_better, self.loss_only = (
            examples,
            metric,
            greater_is_better,
            loss_only,
        )
        self.scores: list[float] = []
        self.samples: list[int] = []  # training samples trained on by the end of each epoch
        self.predicted: list[dict[str, int] | None] = []  # how often each label was predicted, after each epoch
        self._trained = 0
        self._features: list[Any] | None = None

    SAVED = ("scores", "samples", "predicted", "_trained")

    def on_epoch_begin(self, state: TrainState) -> None:
        self._trained += int((state.sample_weights() > 0).sum())

    def on_evaluate(self, state: TrainState) -> None:
        if self._features is None:
            self._features = cast(Encode, state.encode)(self.examples)
        metrics, predictions = cast(Evaluate, state.evaluate)(self.examples, self._features, loss_only=self.loss_only)
        self.scores.append(float(metrics[self.metric]))
        self.samples.append(self._trained)
        self.predicted.append(label_counts(predictions))

    def write_artifacts(self, folder: Path, examples: list[Example], label_names: list[str]) -> None:
        write_json(
            folder / REFERENCE_FILE,
            {
                "metric": self.metric,
                "greater_is_better": self.greater_is_better,
                "examples": len(self.examples),
                "epochs": [round(s, 6) for s in self.scores],
                "samples": self.samples,
                "predicted": self.predicted,
                "what": "plain fine-tuning's score after each epoch on the validation rows that choose early stopping in "
                "the agent's run (the rest reward the agent)",
            },
        )


def label_counts(predictions: list[Any] | None) -> dict[str, int] | None:
    """How often each label was predicted, for tasks whose prediction is one label (else ``None``)."""
    if not predictions or not all(isinstance(p, str) for p in predictions):
        return None
    return dict(Counter(predictions))


def starved_classes(
    reference: dict[str, Any], epoch: int, predictions: list[Any] | None, samples: int | None = None
) -> list[dict[str, Any]]:
    """The classes the agent's model predicts (``predictions``, on the stopping half after ``epoch``, having trained
    on ``samples``) less than ``STARVED_SHARE`` times as often as plain fine-tuning's model did after as much training
    (:data:`SAME_TRAINING`: the same epoch, its last when it stopped before, unless the agent trained on far fewer
    samples), where plain's predicted them at least ``STARVED_MIN`` times."""
    recorded, trained = reference.get("predicted") or [], reference.get("samples") or []
    k = min(epoch, len(recorded))
    if k and samples is not None and len(trained) >= k and samples < SAME_TRAINING * trained[k - 1]:
        k = sum(1 for n in trained[:k] if n <= samples)
    plain = recorded[k - 1] if k else None
    agent = label_counts(predictions)
    if not plain or agent is None:
        return []
    return [
        {"class": c, "predicted": agent.get(c, 0), "plain_predicted": n}
        for c, n in sorted(plain.items())
        if n >= STARVED_MIN and agent.get(c, 0) < STARVED_SHARE * n
    ]


def read_reference(run_dir: str | Path) -> dict[str, Any] | None:
    """A plain run's ``stopping_half.json``, or ``None`` when it has none (a run not made by ``autoft run``)."""
    path = Path(run_dir) / REFERENCE_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def plain_best(reference: dict[str, Any], samples: int) -> float | None:
    """The best score plain fine-tuning reached on the stopping half after training on at most ``samples`` samples
    (signed so that higher is better); ``None`` before its first epoch's worth."""
    sign = 1.0 if reference["greater_is_better"] else -1.0
    reached = [sign * s for s, n in zip(reference["epochs"], reference["samples"]) if n <= samples]
    return max(reached) if reached else None


def reference_score(reference: dict[str, Any], epoch: int) -> float:
    """The score of plain fine-tuning's weights after ``epoch`` (1-based) on the stopping half (its last epoch's
    when the run stopped before)."""
    scores = reference["epochs"]
    return float(scores[min(epoch, len(scores)) - 1])


class BackOff(TrainerCallback):
    """Lowers ``state.intervention`` when the agent's best validation score so far trails the best plain
    fine-tuning had reached on the same rows (``reference``: :func:`read_reference`) with no more training
    samples by more than ``tolerance``; one level per epoch, :data:`INTERVENTION_LEVELS`. (Runs after the agent,
    so it counts the samples the agent chose for each epoch.)"""

    def __init__(self, reference: dict[str, Any], *, tolerance: float = BACK_OFF_TOLERANCE) -> None:
        self.reference, self.tolerance = reference, tolerance
        self.sign = 1.0 if reference["greater_is_better"] else -1.0
        self.level = 0
        self.trained = 0
        self.best = -np.inf
        self.records: list[dict[str, Any]] = []
        self._state: TrainState | None = None

    SAVED = ("level", "trained", "best", "records")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if self._state is not None:  # resumed: the agent's next epoch reads the level reached before
            self._state.intervention = min(self._state.intervention, INTERVENTION_LEVELS[self.level])

    def on_train_begin(self, state: TrainState) -> None:
        self._state = state
        state.intervention = min(state.intervention, INTERVENTION_LEVELS[self.level])  # (an idle agent set 0)

    def run_metrics(self) -> dict[str, Any]:
        """``back_off`` in ``metrics.json``: each back-off with its evidence (none: the key is absent)."""
        return {"back_off": self.records} if self.records else {}

    def run_warnings(self) -> list[str]:
        return [
            f"epoch {r['epoch']}: the agent backed off ({r['action']}): on its stopping half its model predicted "
            + ", ".join(
                f"{c['class']!r} for {c['predicted']} rows (plain fine-tuning's for {c['plain_predicted']})"
                for c in r["starved"]
            )
            for r in self.records
            if r.get("starved")
        ]

    def on_epoch_begin(self, state: TrainState) -> None:
        self.trained += int((state.sample_weights() > 0).sum())

    def on_evaluate(self, state: TrainState) -> None:
        metric = self.reference["metric"]
        if state.validation is None or metric not in state.validation or state.intervention == 0:
            return
        self.best = max(self.best, self.sign * float(state.validation[metric]))
        plain = plain_best(self.reference, self.trained)
        starved = starved_classes(self.reference, state.epoch, state.validation_predictions, self.trained)
        behind = plain is not None and self.best < plain - self.tolerance
        if not (behind or starved) or self.level == len(INTERVENTION_LEVELS) - 1:
            return
        self.level += 1
        state.intervention = min(state.intervention, INTERVENTION_LEVELS[self.level])
        record = {
            "phase": "online",
            "epoch": state.epoch,
            "event": "back-off",
            "metric": metric,
            "samples": self.trained,
            "agent_best": round(self.sign * self.best, 6),
            "plain_best": None if plain is None else round(self.sign * plain, 6),
            **({"starved": starved} if starved else {}),
            "intervention": state.intervention,
            "action": "leaves out half as much"
            if state.intervention > 0
            else "stops intervening: no rows left out or relabelled, no loss correction",
        }
        self.records.append(record)
        if starved:
            log.warning(
                "epoch %d: on its stopping half the agent's model predicts %s, far fewer than plain "
                "fine-tuning's after as much training: it %s from the next epoch",
                state.epoch,
                ", ".join(f"{c['class']!r} for {c['predicted']} rows (plain {c['plain_predicted']})" for c in starved),
                record["action"],
            )
        else:
            log.warning(
                "epoch %d: the agent's best %s on its stopping half, %.4f, trails plain fine-tuning's %.4f on "
                "as many training samples (%d): it %s from the next epoch",
                state.epoch,
                metric,
                record["agent_best"],
                record["plain_best"],
                self.trained,
                record["action"],
            )
