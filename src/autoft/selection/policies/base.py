"""The ``Policy`` contract, and the registry every policy module adds itself to.

A policy values training samples from cached arrays. ``fit`` is the OFFLINE phase: it prepares the
inputs once (``FitData``: standardized state, probe probabilities, the cheap inner learner) and hands
them to the subclass's ``_fit``, which returns one value per sample (higher = more useful /
trustworthy). ``update`` is the ONLINE phase: one learning step from a validation reward the real
model earned; the subclass fills in ``_online_step``. Values become keep-probabilities and, through
``weights``, the per-sample weights a training callback hands the loop.

Every step a policy takes is appended to ``decisions_`` (step, phase, action summary, reward), and
everything random draws from generators seeded by ``seed``: the same seed gives identical values
and decisions.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, cast

import numpy as np
from scipy.stats import rankdata
from sklearn.exceptions import NotFittedError

from autoft.errors import ConfigError
from autoft.selection.noise import estimate_noise
from autoft.selection.policies._learner import SoftmaxProblem
from autoft.selection.rewards import Scorer, scorer
from autoft.selection.state import (
    cross_fitted_probabilities,
    neighbour_agreement,
    suspicion,
    validation_probe_probabilities,
)


def check_option(policy: str, name: str, value: Any, valid: bool, expected: str) -> None:
    """Raise a one-line ``ConfigError`` naming ``policy.name`` unless ``valid``."""
    if not valid:
        raise ConfigError(f"policy {policy!r}: option {name!r} must be {expected}, got {value!r}")


@dataclass
class FitData:
    """The cached arrays one ``fit`` works on; probes and the inner learner are built on first use.

    ``state`` [N, F] is the value estimator's input, standardized per column; ``train_x`` [N, D] and
    ``val_x`` [M, D] are the inner learner's (and the probes') inputs.
    """

    state: np.ndarray
    labels: np.ndarray
    train_x: np.ndarray
    val_x: np.ndarray
    val_labels: np.ndarray
    n_classes: int
    buckets: np.ndarray | None
    seed: int
    probe_folds: int

    @cached_property
    def cross_fitted(self) -> tuple[np.ndarray, np.ndarray]:
        """``(oof [N, C], val_oof [F, M, C])``: the out-of-fold probes' view of the training samples and, from
        each fold probe, of the validation samples (``cross_fitted_probabilities``)."""
        if len(self.labels) < 2 or len(self.val_labels) < 1:
            raise ValueError(
                f"the probes need >= 2 training and >= 1 validation samples, got {len(self.labels)}, "
                f"{len(self.val_labels)}"
            )
        return cast(
            "tuple[np.ndarray, np.ndarray]",  # (val_x given: val_oof is never None)
            cross_fitted_probabilities(
                self.train_x, self.labels, self.val_x, n_classes=self.n_classes, folds=self.probe_folds, seed=self.seed
            ),
        )

    @cached_property
    def probes(self) -> tuple[np.ndarray, np.ndarray]:
        """``(oof_probs, val_model_probs)`` [N, C] of the logistic-regression probes, as ``probe_probabilities``
        gives them: the out-of-fold probes, and one fitted on the validation set."""
        return self.cross_fitted[0], validation_probe_probabilities(
            self.train_x, self.val_x, self.val_labels, n_classes=self.n_classes
        )

    @cached_property
    def agreement(self) -> np.ndarray:
        """[N] ``neighbour_agreement`` of each given label."""
        return neighbour_agreement(self.train_x, self.labels)

    @cached_property
    def noise_probability(self) -> np.ndarray:
        """[N] the noise estimate's posterior that each given label is wrong (``estimate_noise`` on the
        cross-fitted probes)."""
        oof, val_oof = self.cross_fitted
        names = [str(c) for c in range(self.n_classes)]
        return 1.0 - estimate_noise(oof, self.labels, val_oof, self.val_labels, names, seed=self.seed).correct

    @cached_property
    def disagreement(self) -> np.ndarray:
        """[N] in (0, 1]: ``suspicion`` of each given label, from the noise estimate, the validation-set
        probe and the nearest neighbours."""
        return suspicion(self.labels, self.probes[1], self.agreement, self.noise_probability)

    @cached_property
    def problem(self) -> SoftmaxProblem:
        """The inner learner's standardized training / validation problem."""
        return SoftmaxProblem.build(self.train_x, self.labels, self.val_x, self.val_labels, n_classes=self.n_classes)


def _matrix(name: str, values: Any, rows: int | None = None) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or (rows is not None and len(array) != rows):
        raise ValueError(f"{name} must be a [{rows or 'N'}, D] array, got shape {np.shape(values)}")
    return array


def _vector(name: str, values: Any, rows: int) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (rows,):
        raise ValueError(f"{name} must be {rows} numbers, got shape {array.shape}")
    return array


def _labels(name: str, values: Any, rows: int, n_classes: int) -> np.ndarray:
    array = np.asarray(values)
    if array.shape != (rows,) or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be {rows} integer class ids, got shape {array.shape} of {array.dtype}")
    if rows and (array.min() < 0 or array.max() >= n_classes):
        raise ValueError(f"{name} must lie in [0, {n_classes}), got [{array.min()}, {array.max()}]")
    return array.astype(np.int64)


def rank_probabilities(values: np.ndarray) -> np.ndarray:
    """[N] keep-probabilities in (0, 1] from the rank of ``values`` (rank / N, ties share; constant: all 1)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or np.ptp(values) == 0:
        return np.ones(values.shape)
    return rankdata(values, method="average") / len(values)


class Policy:
    """Base class: values samples offline (``fit``) and learns online (``update``); ``values_`` ranks the samples
    (the lowest go first: ``autoft.selection.keeping.kept_mask``).

    Options (keyword-only, stored unchanged): ``seed``; ``drop_fraction``, the share of lowest-valued
    samples to leave out by default;
    ``reward``, the inner learner's validation score (``"log_likelihood"``, ``"accuracy"``,
    ``"macro_f1"`` or a ``"module:function"`` user reward); ``probe_folds``, folds of the out-of-fold probe.

    Learned state: ``values_`` [N], ``keep_probabilities_`` [N] in [0, 1], ``decisions_``.
    """

    name: ClassVar[str] = ""

    def __init__(
        self,
        *,
        seed: int = 0,
        drop_fraction: float = 0.2,
        reward: str = "log_likelihood",
        probe_folds: int = 5,
    ):
        self.seed = seed
        self.drop_fraction = drop_fraction
        self.reward = reward
        self.probe_folds = probe_folds
        self._check_options()

    # -- options ----------------------------------------------------------------------------------

    def _check_options(self) -> None:
        """Validate the constructor options; subclasses extend it (call ``super()._check_options()``)."""
        check_option(self.name, "seed", self.seed, isinstance(self.seed, (int, np.integer)), "an integer")
        check_option(self.name, "drop_fraction", self.drop_fraction, 0.0 <= self.drop_fraction < 1.0, "in [0, 1)")
        check_option(self.name, "probe_folds", self.probe_folds, self.probe_folds >= 2, "an integer >= 2")
        self._scorer()  # a bad reward name fails here, not mid-fit

    def _scorer(self) -> Scorer:
        return scorer(self.reward)

    @classmethod
    def option_names(cls) -> list[str]:
        """Every constructor option of this policy: its own keyword-only parameters, then its bases'
        (subclasses take their own options and pass ``**options`` on)."""
        names: list[str] = []
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None or klass is object:
                continue
            for parameter in inspect.signature(init).parameters.values():
                if parameter.kind is parameter.KEYWORD_ONLY and parameter.name not in names:
                    names.append(parameter.name)
        return names

    def get_params(self) -> dict[str, Any]:
        """The constructor options, by name (as sklearn's ``get_params``)."""
        return {name: getattr(self, name) for name in self.option_names()}

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({options})"

    # -- offline phase ----------------------------------------------------------------------------

    def fit(
        self,
        features: np.ndarray,
        labels: np.ndarray,
        val_features: np.ndarray | None,
        val_labels: np.ndarray,
        *,
        n_classes: int,
        embeddings: np.ndarray | None = None,
        val_embeddings: np.ndarray | None = None,
        buckets: np.ndarray | None = None,
        probes: tuple[np.ndarray, np.ndarray] | None = None,
        agreement: np.ndarray | None = None,
        noise_probability: np.ndarray | None = None,
    ) -> Policy:
        """Value every training sample from cached arrays; returns ``self``.

        ``features`` [N, F]: the value estimator's state per training sample (``state_features``, or
        plain embeddings). ``embeddings`` [N, D] / ``val_embeddings`` [M, D]: the inner learner's and
        the probes' inputs; they default to ``features`` / ``val_features``, so ``val_features`` is only
        needed when ``val_embeddings`` is not given. ``buckets`` [N] int: groups for the bucket policies
        (e.g. the source of each sample). ``probes`` (``probe_probabilities`` of the embeddings with this
        policy's seed and ``probe_folds``), ``agreement`` (``neighbour_agreement``) and
        ``noise_probability`` (the noise estimate's posterior that each label is wrong): pass them when
        already computed, else they are computed on first use. Sets ``values_``, ``keep_probabilities_``
        and ``decisions_``.
        """
        data = self._prepare(features, labels, val_features, val_labels, n_classes, embeddings, val_embeddings, buckets)
        if probes is not None:  # already computed by the caller (same inputs, seed and folds): not again
            data.probes = probes
        if agreement is not None:
            data.agreement = agreement
        if noise_probability is not None:
            data.noise_probability = _vector("noise_probability", noise_probability, len(data.labels))
        self.n_samples_, self.n_classes_ = len(data.labels), n_classes
        self.decisions_: list[dict[str, Any]] = []
        self.values_ = np.asarray(self._fit(data), dtype=np.float64)
        self.keep_probabilities_ = self._keep_probabilities(self.values_)
        return self

    def _prepare(
        self, features, labels, val_features, val_labels, n_classes, embeddings, val_embeddings, buckets
    ) -> FitData:
        """Check shapes and dtypes, standardize the state, and bundle everything as ``FitData``."""
        check_option(self.name, "n_classes", n_classes, n_classes >= 2, "an integer >= 2")
        state = _matrix("features", features)
        labels = _labels("labels", labels, len(state), n_classes)
        train_x = state if embeddings is None else _matrix("embeddings", embeddings, len(state))
        if val_embeddings is None and val_features is None:
            raise ValueError("fit needs val_features or val_embeddings: the inner learner's validation inputs")
        val_x = _matrix(
            "val_embeddings" if val_embeddings is not None else "val_features",
            val_embeddings if val_embeddings is not None else val_features,
        )
        if val_x.shape[1] != train_x.shape[1]:
            raise ValueError(f"validation inputs have {val_x.shape[1]} columns, training inputs {train_x.shape[1]}")
        val_labels = _labels("val_labels", val_labels, len(val_x), n_classes)
        if buckets is not None:
            buckets = np.asarray(buckets)
            if buckets.shape != labels.shape or not np.issubdtype(buckets.dtype, np.integer) or buckets.min() < 0:
                raise ValueError(f"buckets must be {len(labels)} non-negative integers, got shape {buckets.shape}")
            buckets = buckets.astype(np.int64)
        scaled = (state - state.mean(axis=0)) / (state.std(axis=0) + 1e-8)
        return FitData(scaled, labels, train_x, val_x, val_labels, n_classes, buckets, self.seed, self.probe_folds)

    def _fit(self, data: FitData) -> np.ndarray:
        """The subclass's offline phase: [N] values, higher = more useful. Log steps with ``_log``."""
        raise NotImplementedError

    def start_from(self, prior: np.ndarray, state: np.ndarray | None = None) -> Policy:
        """The offline phase where no cheap inner learner exists (prompt-response pairs, whose learner is the
        generative model itself): start from a ``prior`` value per sample (higher = more useful) and its
        ``state`` [N, F]; the online phase learns from there. By default the prior is the value. Returns ``self``."""
        prior = np.asarray(prior, dtype=np.float64)
        if prior.ndim != 1 or len(prior) < 1:
            raise ValueError(f"prior must be N >= 1 numbers, got shape {prior.shape}")
        self.n_samples_, self.n_classes_ = len(prior), 0
        self.decisions_ = []
        scaled = None if state is None else _matrix("state", state, len(prior))
        if scaled is not None:
            scaled = (scaled - scaled.mean(axis=0)) / (scaled.std(axis=0) + 1e-8)
        self.values_ = np.asarray(self._start_from(prior, scaled), dtype=np.float64)
        self.keep_probabilities_ = self._keep_probabilities(self.values_)
        return self

    def _start_from(self, prior: np.ndarray, state: np.ndarray | None) -> np.ndarray:
        """The subclass's start from a prior: [N] values. Log with ``_log``."""
        self._log("offline", {"start": "prior", "mean_prior": round(float(prior.mean()), 6)}, None)
        return prior

    def _keep_probabilities(self, values: np.ndarray) -> np.ndarray:
        """[N] keep-probabilities from values; by default their rank (``rank_probabilities``)."""
        return rank_probabilities(values)

    # -- online phase -----------------------------------------------------------------------------

    def update(
        self, reward: float, selected_mask: np.ndarray | None = None, *, action: int | None = None
    ) -> dict[str, Any]:
        """One online learning step from a validation ``reward`` (a gain: ``rewards.metric_delta``).

        ``selected_mask`` [N] is the selection the real model trained on (REINFORCE), ``action`` the
        bucket it drew from (bucket policies; default: the last ``act()``). Refreshes ``values_`` and
        ``keep_probabilities_``; returns the decision it appended to ``decisions_``.
        """
        self._check_fitted()
        action_summary = self._online_step(float(reward), selected_mask, action)
        self.keep_probabilities_ = self._keep_probabilities(self.values_)
        return self._log("online", action_summary, float(reward))

    def _online_step(self, reward: float, selected_mask: np.ndarray | None, action: int | None) -> dict[str, Any]:
        """The subclass's online step; may refresh ``values_``. Returns a summary of the action rewarded."""
        return {}

    # -- helpers ----------------------------------------------------------------------------------

    def _log(self, phase: str, action: dict[str, Any], reward: float | None, **extra: Any) -> dict[str, Any]:
        """Append one decision record (step, phase, action summary, reward) to ``decisions_``; return it."""
        record = {"step": len(self.decisions_), "phase": phase, "action": action, "reward": reward, **extra}
        self.decisions_.append(record)
        return record

    def _check_fitted(self) -> None:
        if not hasattr(self, "values_"):
            raise NotFittedError(f"policy {self.name!r} is not fitted yet: call fit(...) first")


POLICIES: dict[str, type[Policy]] = {}
"""Registered policies by name; modules add theirs with ``register_policy``."""


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def register_policy(name: str, cls: type[Policy]) -> type[Policy]:
    """Make ``cls`` available as ``get_policy(name)`` (``_`` and ``-`` are interchangeable); returns ``cls``."""
    cls.name = _key(name)
    POLICIES[cls.name] = cls
    return cls


def check_policy(name: str) -> None:
    """``ConfigError`` naming the field unless ``name`` is a registered policy (``none`` included)."""
    if _key(name) not in POLICIES:
        raise ConfigError(f"selection.policy: unknown policy {name!r}; known: {', '.join(sorted(POLICIES))}")


def get_policy(name: str, **options: Any) -> Policy:
    """A new policy ``name`` built with ``options``; ``ConfigError`` names an unknown policy or option."""
    try:
        cls = POLICIES[_key(name)]
    except KeyError:
        raise ConfigError(f"unknown policy {name!r}; known: {', '.join(sorted(POLICIES))}") from None
    known = cls.option_names()
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"policy {cls.name!r} has no option {unknown[0]!r}; options: {', '.join(known)}")
    return cls(**options)


__all__ = [
    "POLICIES",
    "FitData",
    "Policy",
    "check_option",
    "check_policy",
    "get_policy",
    "rank_probabilities",
    "register_policy",
]
