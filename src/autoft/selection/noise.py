"""How noisy are the given labels? An estimate from cached probes and the clean validation set.

Nobody tells autoft the noise rate, so it estimates one, in the spirit of the confident joint
(Northcutt et al., 2021) but with the trusted validation set doing the calibration:

1. Out-of-fold probes, fitted on the (noisy) training labels, score every training sample; the same
   fold probes score the validation samples (``cross_fitted_probabilities``).
2. A calibration map fitted on the clean validation labels turns those scores into estimates
   ``q(y | x)`` of the *true* class: matrix scaling of the log-probabilities (a temperature on the
   diagonal, a full matrix and bias around it, their penalty chosen by cross-validation). A probe trained on noisy labels is
   under-confident (symmetric noise) or leans toward the classes labels were flipped to (asymmetric
   noise); the clean labels expose both and the map undoes them.
3. Each given label is modelled as drawn from ``q`` through a label-transition matrix ``T``:
   ``P(given = k | x) = sum_y q(y | x) T[y, k]``. EM fits ``T`` (Dawid and Skene's model with one
   annotator whose true-class prior is fixed per sample), smoothed with a few pseudo-counts.
4. The posterior that each given label is the true one gives the noise rate per sample, per given
   class and overall, and the most likely true class (a suggested relabel) with its confidence.
5. Small data: with few rows per class, EM's ``C x C`` transition matrix explains a weak probe's errors as
   noise (300 clean SemEval relations read as 49% noisy; 300 clean BANKING77 rows as 30%). A second, simpler
   estimate checks it: the probes' mean probability of the true class on the clean validation samples, ``A``, and
   of the given label on the training samples, ``G``, differ by the noise, ``r = (A - G) / (A - B)`` (``B``: their
   mean probability of a wrong label, spread over the wrong labels as ``T`` spreads them), with a standard error
   from both means (:func:`moment_rate`). The estimate acted on is the lower of EM's rate and that estimate's
   lower confidence bound (``LCB_Z``): where they disagree, ``T`` is shrunk toward the identity until its rate is
   the bound. On the 300 clean SemEval rows the bound is 0; on 40% symmetric noise in TweetEval, 35%.
6. Too few rows per class: below ``MIN_ROWS_PER_CLASS`` training rows in the median given class, the cross-fitted
   probes learn a class from a handful of rows and cannot tell a wrong label from a hard one, and a class that
   small cannot spare a row on a guess (300 BANKING77 rows, 4 a class: leaving out the rows the estimate flagged
   cost 2 to 5 macro-F1 points on 3 seeds, clean or with 10% noise). The rate acted on is then 0.

Calibrated scores make the estimate honest on clean data: when the given labels are the true ones,
``T = I`` is the likelihood's maximum, so a weak probe does not read its own errors as noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np

from autoft.selection.calibration import Calibration, choose_penalty, fit_calibration, fit_temperature, log_probs, nll

_EPS = 1e-12


@dataclass
class NoiseEstimate:
    """What the estimator concluded. Rates are shares of the training samples (or units)."""

    rate: float
    """Estimated share of given labels that are wrong."""
    per_class: dict[str, float]
    """Per given label: the share of the samples given that label whose label is wrong."""
    temperature: float
    """The temperature on the calibration map's diagonal (1 / its scale)."""
    penalty: float
    """The calibration map's penalty, chosen by cross-validation on the validation samples."""
    transition: np.ndarray
    """[C, C] ``T[y, k]``: P(given label k | true class y)."""
    correct: np.ndarray
    """[N] posterior probability that each given label is the true class."""
    posterior: np.ndarray
    """[N, C] posterior of each sample's true class, given its features and its given label."""
    validation_nll: tuple[float, float]
    """Validation log loss of the probes before and after calibration."""
    calibration: Calibration | None = None
    """The calibration map the estimate was made with (``posterior_of`` applies it to other samples)."""
    em_rate: float | None = None
    """EM's rate before the check against the lower confidence bound (``rate`` is the one acted on)."""
    moment: tuple[float, float] | None = None
    """:func:`moment_rate`'s estimate and standard error."""
    null: float | None = None
    """:func:`null_rate`: the rate EM reads on clean labels drawn from its own probes."""
    lower_bound: float | None = None
    """The larger of the two lower bounds on the rate (moment and null), 0 with too few rows per class; ``rate`` is
    at most it."""
    rows_per_class: float | None = None
    """Training rows in the median given class (below ``MIN_ROWS_PER_CLASS`` the rate acted on is 0)."""
    per_source: dict[str, dict[str, float | bool]] | None = None
    """Estimated per source (``estimate_noise`` with ``sources``): per source name its rows, its rate acted on
    (``rate``), EM's rate, its lower bound, and whether it had rows enough to be estimated alone (else its rows keep
    the pooled estimate). ``em_rate``, ``moment``, ``null`` and ``lower_bound`` above are then the pooled estimate's;
    ``rate``, ``correct`` and ``posterior`` the sources' own."""

    @property
    def too_few_rows(self) -> str | None:
        """Why the rate acted on is 0 on small data (``MIN_ROWS_PER_CLASS``), else None."""
        if self.rows_per_class is None or self.rows_per_class >= MIN_ROWS_PER_CLASS:
            return None
        return (
            f"{self.rows_per_class:g} training rows in the median class, fewer than {MIN_ROWS_PER_CLASS} to tell "
            "a wrong label from a hard one"
        )

    def posterior_of(self, probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """[n, C] the posterior of each sample's true class given its probe ``probs`` and given ``labels``, as the
        estimate's samples got theirs: calibrated, through the fitted transition matrix (for samples of a pool
        beyond those the estimate was fitted on)."""
        prior = np.clip(cast(Calibration, self.calibration)(probs), _EPS, 1.0)  # an estimate's own map
        joint = prior * self.transition[:, np.asarray(labels, dtype=np.int64)].T
        return joint / joint.sum(axis=1, keepdims=True)

    @property
    def suggested(self) -> np.ndarray:
        """[N] the most likely true class of each sample."""
        return self.posterior.argmax(axis=1)

    @property
    def suggested_confidence(self) -> np.ndarray:
        """[N] the posterior probability of the suggested class."""
        return self.posterior.max(axis=1)

    def to_dict(self, class_names: list[str]) -> dict:
        """A JSON-ready summary (``noise.json``)."""
        return {
            "rate": round(self.rate, 4),
            "per_class": {k: round(v, 4) for k, v in self.per_class.items()},
            "temperature": round(self.temperature, 4),
            "calibration_penalty": self.penalty,
            "validation_log_loss": {
                "raw": round(self.validation_nll[0], 4),
                "calibrated": round(self.validation_nll[1], 4),
            },
            **({"em_rate": round(self.em_rate, 4)} if self.em_rate is not None else {}),
            **(
                {"moment_rate": round(self.moment[0], 4), "moment_standard_error": round(self.moment[1], 4)}
                if self.moment
                else {}
            ),
            **(
                {"null_rate": round(cast(float, self.null), 4), "lower_bound": round(self.lower_bound, 4)}
                if self.lower_bound is not None
                else {}
            ),
            **(
                {"rows_per_class": self.rows_per_class, "min_rows_per_class": MIN_ROWS_PER_CLASS}
                if self.rows_per_class is not None
                else {}
            ),
            "transition": {
                y: {
                    k: round(float(self.transition[i, j]), 4)
                    for j, k in enumerate(class_names)
                    if self.transition[i, j] >= 0.005
                }
                for i, y in enumerate(class_names)
            },
            **(
                {
                    "per_source": {
                        k: {f: round(v, 4) if isinstance(v, float) else v for f, v in d.items()}
                        for k, d in self.per_source.items()
                    }
                }
                if self.per_source
                else {}
            ),
            "method": "out-of-fold probes calibrated (matrix scaling) on the validation labels; label-transition "
            "matrix by EM; rate = mean posterior that a given label is wrong, at most the lower confidence "
            "bound of the probes' validation-vs-training agreement (the matrix shrunk toward the identity "
            "to it)",
        }


def fit_transition(
    prior: np.ndarray, labels: np.ndarray, *, smoothing: float = 1.0, iterations: int = 200, tol: float = 1e-7
) -> tuple[np.ndarray, np.ndarray]:
    """EM for ``T`` in ``P(given = labels[i] | x_i) = sum_y prior[i, y] T[y, labels[i]]``.

    Returns ``(T [C, C], posterior [N, C])``, the posterior being P(true class | x, given label). Each row
    of ``T`` gets ``smoothing`` pseudo-counts spread evenly over the other classes plus as many on the
    diagonal, so a class seen rarely stays near "labels are right" instead of jumping to an extreme.
    """
    prior = np.clip(np.asarray(prior, dtype=np.float64), _EPS, 1.0)
    labels = np.asarray(labels, dtype=np.int64)
    n, c = prior.shape
    transition = np.full((c, c), 0.1 / max(c - 1, 1))
    np.fill_diagonal(transition, 0.9)
    previous = -np.inf
    for _ in range(iterations):
        joint = prior * transition[:, labels].T  # [N, C]: prior[i, y] * T[y, given_i]
        evidence = joint.sum(axis=1, keepdims=True)
        posterior = joint / evidence
        likelihood = float(np.log(evidence).sum())
        transition = transition_of(posterior, labels, smoothing=smoothing)
        if likelihood - previous < tol * n:
            break
        previous = likelihood
    joint = prior * transition[:, labels].T
    return transition, joint / joint.sum(axis=1, keepdims=True)


def transition_of(
    posterior: np.ndarray, labels: np.ndarray, rows: np.ndarray | None = None, *, smoothing: float = 1.0
) -> np.ndarray:
    """[C, C] ``T[y, k]`` of ``rows`` (default: all): the expected counts of (true class y, given label k)
    under ``posterior`` [N, C], with ``fit_transition``'s pseudo-counts, normalised per true class. The
    label noise of a subset (the samples an agent keeps) is lower than that of the whole set."""
    posterior, labels = np.asarray(posterior, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    if rows is not None:
        posterior, labels = posterior[rows], labels[rows]
    c = posterior.shape[1]
    counts = np.full((c, c), smoothing / max(c - 1, 1))
    np.fill_diagonal(counts, smoothing)
    np.add.at(counts.T, labels, posterior)  # counts[y, given_i] += posterior[i, y]
    return counts / counts.sum(axis=1, keepdims=True)


LCB_Z = 1.2816
"""The rate acted on is at most the moment estimate's one-sided 90% lower confidence bound."""


def moment_rate(
    train_probs: np.ndarray, labels: np.ndarray, val_probs: np.ndarray, val_labels: np.ndarray, transition: np.ndarray
) -> tuple[float, float]:
    """The noise rate from how much less probability the probes give the training samples' given labels than the
    validation samples' true ones: ``r = (A - G) / (A - B)``, and its standard error (delta method over both sets).

    ``A``: mean probability of the true class over the validation samples (``val_probs`` [M, C], or [F, M, C]
    averaged over the fold probes); ``G``: of the given label over the training samples (``train_probs``, out of
    fold); ``B``: of a wrong label over the validation samples, the wrong labels weighted as ``transition``'s
    off-diagonal spreads them (uniform where it has none). The probes never saw either set, so a clean label is
    scored like a validation one and a wrong one like a wrong validation label."""
    val_probs = np.asarray(val_probs, dtype=np.float64)
    if val_probs.ndim == 3:
        val_probs = val_probs.mean(axis=0)
    labels, val_labels = np.asarray(labels, dtype=np.int64), np.asarray(val_labels, dtype=np.int64)
    c = val_probs.shape[1]
    flips = np.array(transition, dtype=np.float64)
    np.fill_diagonal(flips, 0.0)
    flips = np.where(flips.sum(axis=1, keepdims=True) > 0, flips, 1.0 - np.eye(c))
    flips /= np.clip(flips.sum(axis=1, keepdims=True), _EPS, None)
    true = val_probs[np.arange(len(val_labels)), val_labels]
    wrong = (val_probs * flips[val_labels]).sum(axis=1)
    given = np.asarray(train_probs, dtype=np.float64)[np.arange(len(labels)), labels]
    gap = true.mean() - wrong.mean()
    if gap <= _EPS or len(val_labels) < 2 or len(labels) < 2:
        return 0.0, float("inf")  # probes that cannot tell classes apart say nothing
    rate = (true.mean() - given.mean()) / gap
    variance = np.var((1.0 - rate) * true + rate * wrong, ddof=1) / len(true) + np.var(given, ddof=1) / len(given)
    return float(rate), float(np.sqrt(variance) / gap)


MIN_ROWS_PER_CLASS = 10
"""The noise rate acted on is 0 when the median given class has fewer training rows than this (with 5 folds, a
class of 10 rows trains each probe on 8 and is judged on 2)."""

NULL_DRAWS = 3
NULL_MARGIN = 2.0
"""EM's rate less this many times the rate it reads on clean labels drawn from its own probes is a lower bound on
the noise: the part of EM's rate that overfitting its transition matrix to few rows per class explains."""


def null_rate(prior: np.ndarray, *, smoothing: float = 1.0, seed: int = 0, draws: int = NULL_DRAWS) -> float:
    """The rate EM reads on labels drawn from ``prior`` itself, which are clean by construction: how much noise
    fitting a ``C x C`` transition matrix to this many rows finds where there is none (mean over ``draws``)."""
    rng = np.random.default_rng(seed)
    rates = []
    for _ in range(draws):
        labels = (np.cumsum(prior, axis=1) < rng.random((len(prior), 1)) * prior.sum(axis=1, keepdims=True)).sum(1)
        labels = np.minimum(labels, prior.shape[1] - 1)
        _, posterior = fit_transition(prior, labels, smoothing=smoothing)
        rates.append(1.0 - posterior[np.arange(len(labels)), labels].mean())
    return float(np.mean(rates))


def _shrink(
    prior: np.ndarray, labels: np.ndarray, transition: np.ndarray, target: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(1 - a) I + a T`` and its posterior, ``a`` in [0, 1] chosen (bisection) so the posterior rate is
    ``target``."""
    low, high, eye = 0.0, 1.0, np.eye(len(transition))
    if target <= 0.0:  # no noise: the identity (a tiny share of T still moves a label the probes rule out)
        return eye, eye[labels]
    for _ in range(30):
        a = 0.5 * (low + high)
        shrunk = (1.0 - a) * eye + a * transition
        joint = prior * shrunk[:, labels].T
        posterior = joint / joint.sum(axis=1, keepdims=True)
        low, high = (a, high) if 1.0 - posterior[np.arange(len(labels)), labels].mean() < target else (low, a)
    return shrunk, posterior


def _acted_on(
    prior: np.ndarray,
    labels: np.ndarray,
    oof_probs: np.ndarray,
    val_oof: np.ndarray,
    val_labels: np.ndarray,
    *,
    smoothing: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, float, tuple[float, float], float, float, float]:
    """EM's transition matrix for these ``labels`` given the calibrated ``prior``, shrunk to the rate acted on
    (steps 3 to 6 of the module's recipe): ``(T, posterior, EM's rate, moment estimate, null rate, lower bound,
    rows in the median given class)``."""
    transition, posterior = fit_transition(prior, labels, smoothing=smoothing)
    em_rate = float(1.0 - posterior[np.arange(len(labels)), labels].mean()) if len(labels) else 0.0
    moment = moment_rate(oof_probs, labels, val_oof, val_labels, transition)
    null = null_rate(prior, smoothing=smoothing, seed=seed) if len(labels) else 0.0
    bound = max(0.0, moment[0] - LCB_Z * moment[1], em_rate - NULL_MARGIN * null)
    rows_per_class = float(np.median(np.bincount(labels)[np.bincount(labels) > 0])) if len(labels) else 0.0
    if rows_per_class < MIN_ROWS_PER_CLASS:
        bound = 0.0
    if bound < em_rate:
        transition, posterior = _shrink(prior, labels, transition, bound)
    return transition, posterior, em_rate, moment, null, bound, rows_per_class


def estimate_noise(
    oof_probs: np.ndarray,
    labels: np.ndarray,
    val_probs: np.ndarray,
    val_labels: np.ndarray,
    class_names: list[str],
    *,
    smoothing: float = 1.0,
    seed: int = 0,
    sources: np.ndarray | None = None,
    source_names: list[str] | None = None,
) -> NoiseEstimate:
    """Estimate the label noise of ``labels`` from cross-fitted probe probabilities.

    ``oof_probs`` [N, C]: out-of-fold probe probabilities of the training samples; ``val_probs`` [M, C],
    or [F, M, C] from each of F fold probes: the same probes' probabilities of the validation samples,
    whose labels ``val_labels`` [M] are trusted (``cross_fitted_probabilities`` gives both).

    ``sources`` [N] (ids into ``source_names``): each sample's source. Every source is then an annotator of its
    own (Dawid and Skene's model with several): each source large enough to estimate alone (``MIN_ROWS_PER_CLASS``
    rows in its median given class) gets its own transition matrix and rate acted on, through the same calibration;
    the samples of smaller sources keep the pooled estimate's posterior (``NoiseEstimate.per_source``).
    """
    labels, val_labels = np.asarray(labels, dtype=np.int64), np.asarray(val_labels, dtype=np.int64)
    if len(val_labels) == 0:
        raise ValueError("estimating the noise rate needs validation samples with trusted labels")
    val_probs = np.asarray(val_probs, dtype=np.float64)
    val_oof, val_labels_given = val_probs, val_labels
    penalty = choose_penalty(val_probs, val_labels, seed=seed)
    if val_probs.ndim == 3:  # every fold probe's view of the validation set: more pairs for the calibration
        val_labels = np.tile(val_labels, len(val_probs))
        val_probs = val_probs.reshape(-1, val_probs.shape[-1])
    calibration = fit_calibration(val_probs, val_labels, penalty=penalty)
    before = nll(log_probs(val_probs), val_labels)
    after = nll(log_probs(calibration(val_probs)), val_labels)
    prior = np.clip(calibration(oof_probs), _EPS, 1.0)
    transition, posterior, em_rate, moment, null, bound, rows_per_class = _acted_on(
        prior, labels, oof_probs, val_oof, val_labels_given, smoothing=smoothing, seed=seed
    )
    per_source = None
    if sources is not None and len(np.unique(sources)) > 1:
        posterior, per_source = _per_source(
            prior, labels, oof_probs, (val_oof, val_labels_given), posterior, sources, source_names, smoothing, seed
        )
        transition = transition_of(posterior, labels, smoothing=smoothing)
    correct = posterior[np.arange(len(labels)), labels]
    per_class = {
        name: float(1.0 - correct[labels == k].mean()) for k, name in enumerate(class_names) if (labels == k).any()
    }
    return NoiseEstimate(
        float(1.0 - correct.mean()) if len(labels) else 0.0,
        per_class,
        calibration.temperature,
        penalty,
        transition,
        correct,
        posterior,
        (before, after),
        calibration,
        em_rate,
        moment,
        null,
        bound,
        rows_per_class,
        per_source,
    )


def _per_source(
    prior: np.ndarray,
    labels: np.ndarray,
    oof_probs: np.ndarray,
    validation: tuple[np.ndarray, np.ndarray],
    pooled: np.ndarray,
    sources: np.ndarray,
    source_names: list[str] | None,
    smoothing: float,
    seed: int,
) -> tuple[np.ndarray, dict[str, dict[str, float | bool]]]:
    """Each source's own estimate (``estimate_noise`` with ``sources``): the [N, C] posterior, each source's rows
    from its own transition matrix or (too few rows to estimate alone) from the ``pooled`` posterior, and per source
    name its rows, rate acted on, EM's rate, lower bound and whether it was estimated alone."""
    posterior, out = pooled.copy(), {}
    sources = np.asarray(sources, dtype=np.int64)
    for source in np.unique(sources):
        rows = np.flatnonzero(sources == source)
        name = source_names[source] if source_names is not None else str(source)
        _, mine, em_rate, _, _, bound, rows_per_class = _acted_on(
            prior[rows], labels[rows], oof_probs[rows], *validation, smoothing=smoothing, seed=seed
        )
        alone = rows_per_class >= MIN_ROWS_PER_CLASS
        if alone:
            posterior[rows] = mine
        right = posterior[rows, labels[rows]]
        out[name] = {
            "rows": len(rows),
            "rate": float(1.0 - right.mean()),
            "em_rate": em_rate,
            "lower_bound": bound,
            "estimated_alone": bool(alone),
        }
    return posterior, out


__all__ = [
    "LCB_Z",
    "MIN_ROWS_PER_CLASS",
    "NULL_MARGIN",
    "Calibration",
    "NoiseEstimate",
    "choose_penalty",
    "estimate_noise",
    "fit_calibration",
    "fit_temperature",
    "fit_transition",
    "moment_rate",
    "null_rate",
    "transition_of",
]
