"""Rewards: pure functions of predictions and labels, small enough to check by hand.

The agent is rewarded by improvement on the clean validation set: ``metric_delta`` (a metric went up)
or ``loss_delta`` (the loss went down) between two evaluations. Inner learners score probabilities with
a ``Scorer`` from ``scorer(name)``: a built-in metric, or a user's ``"module:function"`` loaded by
``load_reward``. ``rescale_reward`` maps raw progress signals to [-1, 1] as in Graves et al. (2017).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from autoft.errors import ConfigError

RewardFunction = Callable[[np.ndarray | Sequence[Any], np.ndarray | Sequence[Any]], float]
"""A user reward ``f(predictions, labels) -> float`` (predicted and true class ids; the agent's callback gives the
decoded predictions and gold labels)."""

Scorer = Callable[[np.ndarray, np.ndarray], float]
"""``score(probabilities [N, C], labels [N]) -> float``; higher is better."""

Evaluation = float | Mapping[str, Any]
"""A validation result: a number, or a metrics dict as the training loop's ``evaluate`` returns."""


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of positions where ``y_pred`` equals ``y_true`` (0.0 for empty input)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(y_true == y_pred)) if len(y_true) else 0.0


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, *, labels: Sequence[int] | None = None) -> float:
    """Unweighted mean over classes of F1 = 2 TP / (2 TP + FP + FN).

    The classes are ``labels``, by default every class in ``y_true`` or ``y_pred``; a class with no
    true, predicted or missed sample scores 0.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes = np.unique(np.concatenate([y_true, y_pred])) if labels is None else np.asarray(labels)
    if classes.size == 0:
        return 0.0
    scores = []
    for c in classes:
        tp = np.sum((y_true == c) & (y_pred == c))
        wrong = np.sum((y_true != c) & (y_pred == c)) + np.sum((y_true == c) & (y_pred != c))
        scores.append(2 * tp / (2 * tp + wrong) if tp + wrong else 0.0)
    return float(np.mean(scores))


def log_likelihood(probabilities: np.ndarray, labels: np.ndarray, *, eps: float = 1e-12) -> float:
    """Mean log-probability of the true labels (the negative cross-entropy; 0 is perfect)."""
    probabilities, labels = np.asarray(probabilities), np.asarray(labels, dtype=np.int64)
    return float(np.mean(np.log(np.clip(probabilities[np.arange(len(labels)), labels], eps, 1.0))))


def _value(evaluation: Evaluation, key: str) -> float:
    if isinstance(evaluation, Mapping):
        if key not in evaluation:
            raise KeyError(f"evaluation has no {key!r}; it has {', '.join(map(str, evaluation))}")
        return float(evaluation[key])
    return float(evaluation)


def metric_delta(before: Evaluation, after: Evaluation, *, metric: str = "accuracy") -> float:
    """``after - before`` of a higher-is-better metric; evaluations are numbers or dicts read at ``metric``."""
    return _value(after, metric) - _value(before, metric)


def loss_delta(before: Evaluation, after: Evaluation, *, key: str = "loss") -> float:
    """``before - after`` of a validation loss: positive when the loss went down."""
    return _value(before, key) - _value(after, key)


def rescale_reward(reward: float, history: Sequence[float], *, low: float = 0.2, high: float = 0.8) -> float:
    """``reward`` mapped to [-1, 1] by the ``low`` / ``high`` quantiles of ``history`` (Graves et al. 2017).

    Below the low quantile gives -1, above the high one +1, linear in between; with no spread in the
    history (or none at all) the sign of ``reward`` is returned.
    """
    if len(history) == 0:
        return float(np.sign(reward))
    q_low, q_high = np.quantile(np.asarray(history, dtype=np.float64), [low, high])
    if q_high - q_low <= 1e-12:
        return float(np.sign(reward - q_low))
    return float(np.clip(2.0 * (reward - q_low) / (q_high - q_low) - 1.0, -1.0, 1.0))


def load_reward(spec: str) -> RewardFunction:
    """The user reward ``f(predictions, labels) -> float`` named by ``"package.module:function"``.

    Raises ``ConfigError`` (a ``ValueError``) with a one-line message naming ``spec`` when it is
    malformed, the module cannot be imported, or the attribute is missing or not callable.
    """
    module_name, _, attribute = str(spec).partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"reward {spec!r}: expected 'module:function', e.g. 'my_rewards:f1'")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 - any import failure is the user's config at fault
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise ConfigError(f"reward {spec!r}: cannot import module {module_name!r} ({reason})") from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"reward {spec!r}: module {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(f"reward {spec!r}: {attribute!r} is not callable")
    return target


_SCORERS: dict[str, Scorer] = {
    "accuracy": lambda probs, labels: accuracy(labels, np.argmax(probs, axis=1)),
    "macro_f1": lambda probs, labels: macro_f1(labels, np.argmax(probs, axis=1)),
    "log_likelihood": log_likelihood,
}


def scorer(name: str) -> Scorer:
    """A ``Scorer`` for ``name``: ``"accuracy"``, ``"macro_f1"``, ``"log_likelihood"`` or a ``"module:function"``
    user reward (called as ``f(predictions, labels)`` with the argmax predictions)."""
    if name in _SCORERS:
        return _SCORERS[name]
    if ":" not in name:
        raise ConfigError(f"reward {name!r}: expected one of {', '.join(_SCORERS)} or 'module:function'")
    function = load_reward(name)
    return lambda probs, labels: float(function(np.argmax(probs, axis=1), np.asarray(labels)))


class RewardTracker:
    """The online reward: the gain of a score since its last measurement on the same rows; the first one only sets
    the bar. ``step`` updates the policy with it and returns the decision record."""

    def __init__(self) -> None:
        self.previous: float | None = None

    def step(
        self, policy: Any, score: float, selected: Callable[[], Any], action: int | None, where: dict[str, Any]
    ) -> dict[str, Any]:
        """``selected()`` gives the selection rewarded (called only when there is a reward)."""
        reward = 0.0 if self.previous is None else score - self.previous
        decision = {"phase": "online", **where, "event": "reward", "reward": reward, "validation": score}
        if self.previous is not None:
            decision["policy_update"] = policy.update(reward, selected(), action=action).get("action")
        self.previous = score
        return decision


__all__ = [
    "Evaluation",
    "RewardFunction",
    "RewardTracker",
    "Scorer",
    "accuracy",
    "load_reward",
    "log_likelihood",
    "loss_delta",
    "macro_f1",
    "metric_delta",
    "rescale_reward",
    "scorer",
]
