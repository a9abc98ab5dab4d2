"""The offline phase: estimate the label noise, build each unit's state, fit the policy (``value_samples``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from autoft.config import AUTO, ONE_LABEL_TASKS, Config, SelectionConfig
from autoft.data.splits import Splits
from autoft.errors import ConfigError
from autoft.selection.keeping import class_floor, kept_mask
from autoft.selection.noise import NoiseEstimate, estimate_noise
from autoft.selection.policies import Policy, get_policy
from autoft.selection.state import (
    cross_fitted_probabilities,
    neighbour_agreement,
    state_features,
    validation_probe_probabilities,
)
from autoft.selection.units import Units, build_units

log = logging.getLogger(__name__)

MAX_AUTO_DROP = 0.5
"""``drop_fraction: auto`` never leaves out more than this share, whatever the estimated noise rate."""
IDLE_RATE = 0.01
"""Below this noise rate acted on, the agent acts on nothing: ``drop_fraction: auto`` leaves nothing out and a
forward loss correction changes nothing worth a run (``Valuation.idle``). A handful of rows left out buys nothing
measurable and moves the run off plain fine-tuning's trajectory: 1,500 clean BANKING77 rows read as 0.3% noisy
(seed 0, ``benchmarks/never_worse.py`` at 3345e94), and leaving out those 5 rows ended with a class plain fine-tuning
scored at F1 0.45 at 0 (test macro-F1 1.4 points below plain)."""
IDLE_ROWS = 30
"""Fewer rows than this that the estimate calls wrong (the rate acted on times the rows it is a rate of) is nothing to
act on either, whatever the rate: leaving out so few buys less than the run-to-run spread it adds. At 300 TweetEval
rows with 10% injected noise (18 to 25 rows called wrong) the agent's run scored 9.5 points below plain fine-tuning on
one seed of 3 and 1.4 and 0.9 above on the others; 1,500 clean BANKING77 rows (4 to 26 called wrong) lost a class
on each seed (``benchmarks/never_worse.py`` at c6196ae and 3345e94)."""


@dataclass
class Valuation:
    """What the offline phase knows: the fitted policy, its units, and what each sample is said to be."""

    policy: Policy
    units: Units
    sample_labels: np.ndarray  # [N] class ids for per-class balancing (NER: all 0)
    source_names: list[str]
    given: list[str]  # [N] the given label (NER: the given entities) as text
    suggested: list[str]  # [N] the most likely true label (NER: entities) given the evidence and the given one
    suggested_confidence: np.ndarray  # [N] its posterior probability (NER: of the least sure entity)
    noise_probability: np.ndarray  # [N] posterior that the given label is wrong (NER: of the most suspect entity)
    selection: SelectionConfig  # with drop_fraction resolved to a number
    noise: NoiseEstimate | None = None
    decisions: list[dict[str, Any]] = field(default_factory=list)
    # What the state was built from, to value samples beyond these the same way (``selection.large_pool``):
    fold_probes: list = field(default_factory=list)  # the out-of-fold probes: (probe, labels it was fitted on)
    oof_probs: np.ndarray | None = None  # [U, C] their out-of-fold probabilities
    estimated_drop: bool = False  # drop_fraction came from the noise estimate (auto), not the config

    @property
    def sources(self) -> np.ndarray:
        return self.units.sources

    @property
    def idle(self) -> bool:
        """Nothing to act on: no share to leave out (the noise rate acted on is 0, or the config says so), no
        relabels or own labels, and a loss correction that would change nothing. The agent's run then trains as
        plain fine-tuning does, choosing its best epoch on the whole validation set."""
        s = self.selection
        return (
            s.drop_fraction == 0
            and s.relabel_confidence is None
            and s.flagged == "drop"
            and (
                self.noise is None
                or s.correction != "forward"
                or too_little_noise(self.noise.rate, len(self.units.labels))
            )
        )

    @property
    def idle_reason(self) -> str:
        """Why the agent is idle, in words (``idle``)."""
        noise = self.noise
        if noise is not None and noise.too_few_rows:
            return noise.too_few_rows
        few = noise is not None and noise.rate >= IDLE_RATE and too_few_called_wrong(noise.rate, len(self.units.labels))
        return f"{few} to act on" if few else "no label noise found to act on"

    def sample_values(self) -> np.ndarray:
        """[N] the policy's current value of each training sample."""
        return self.units.sample_values(self.policy.values_)

    def flagged(self, values: np.ndarray, masked_units: np.ndarray | None = None) -> np.ndarray:
        """[N] bool: the samples the agent leaves out at these sample ``values`` — in ``mask`` mode the
        samples holding a masked unit (``masked_units``, default the lowest-valued ones). Rows the class floor
        (:meth:`floor`) takes back or relabels are not left out."""
        if self.selection.mode == "mask":
            masked = self.lowest_units() if masked_units is None else masked_units
            return self.units.sample_any(masked.astype(np.float64)) > 0
        kept, relabelled, _ = self.floor(self.keep(values, cast(float, self.selection.drop_fraction)), values)
        return ~(kept | relabelled)

    @property
    def source_shares(self) -> np.ndarray | None:
        """[S] per source (``source_names``' order): its estimated noise rate over the pool's, the multiple of the
        drop fraction it leaves out under ``balance: per-source``; None without a per-source estimate."""
        noise = self.noise
        if noise is None or noise.per_source is None or noise.rate <= 0:
            return None
        rates = {name: float(d["rate"]) for name, d in noise.per_source.items()}  # (a file without units: pooled)
        return np.array([rates.get(name, noise.rate) / noise.rate for name in self.source_names])

    def keep(self, values: np.ndarray, drop_fraction: float) -> np.ndarray:
        """[N] bool: the samples kept at these sample ``values`` when ``drop_fraction`` is left out, spread as
        ``selection.balance`` says (:func:`kept_mask`)."""
        balance = self.selection.balance
        return kept_mask(
            values, self.sample_labels, drop_fraction, balance, sources=self.sources, shares=self.source_shares
        )

    def floor(self, keep: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """The class floor on a selection (one label per sample; other tasks pass through): ``keep`` with rows
        taken back, the rows relabelled into a class below its floor (their suggested label), and one record per
        class the floor acted on or that still lost more than ``MAX_CLASS_LOSS`` (:func:`class_floor`). With
        ``drop_fraction: auto`` a class also loses at most ``CLASS_LOSS_SLACK`` times its estimated noise rate."""
        if self.noise is None or self.units.spans is not None:  # NER: sentences hold many entities
            return keep, np.zeros(len(keep), dtype=bool), []
        names = self.units.class_names  # (a drop_fraction set in the config is the user's: only the half floor)
        rates = np.array([self.noise.per_class.get(name, 0.0) for name in names]) if self.estimated_drop else None
        return class_floor(
            keep,
            values,
            self.sample_labels,
            self.noise.suggested,
            self.noise.suggested_confidence,
            names,
            class_rates=rates,
        )

    def lowest_units(self, drop_fraction: float | None = None) -> np.ndarray:
        """[U] bool: the lowest-valued ``drop_fraction`` (default: the run's) of the units (``mask`` mode leaves
        them out)."""
        drop = cast(float, self.selection.drop_fraction) if drop_fraction is None else drop_fraction  # resolved
        balance = "per-source" if self.selection.balance == "per-source" else "global"  # (units: no per-class)
        unit_sources, shares = self.units.sources[self.units.owner], self.source_shares
        return ~kept_mask(self.policy.values_, None, drop, balance, sources=unit_sources, shares=shares)


def _describe(units: Units, task: str, labels: np.ndarray) -> list[str]:
    """[N] text of each sample's labels in ``labels`` (unit class ids): the class, or 'words/TYPE; ...'."""
    if task in ONE_LABEL_TASKS:
        return [units.class_names[int(c)] for c in labels]
    parts: list[list[str]] = [[] for _ in range(units.n_samples)]
    for unit, (owner, c) in enumerate(zip(units.owner, labels)):
        parts[int(owner)].append(f"{cast('list[str]', units.names)[unit]}/{units.class_names[int(c)]}")  # NER
    return ["; ".join(p) for p in parts]


def too_few_called_wrong(rate: float, rows: int) -> str | None:
    """Why a noise ``rate`` of ``rows`` calls too few of them wrong to act on (fewer than ``IDLE_ROWS``), or None."""
    if rate * rows < IDLE_ROWS:
        return f"about {rate * rows:.0f} of {rows} called wrong, fewer than {IDLE_ROWS}"
    return None


def too_little_noise(rate: float, rows: int) -> bool:
    """Whether a noise ``rate`` of ``rows`` is too little to act on: below ``IDLE_RATE``, or fewer than
    ``IDLE_ROWS`` rows called wrong."""
    return rate < IDLE_RATE or too_few_called_wrong(rate, rows) is not None


def resolve_drop_fraction(
    setting: float | str, rate: float, what: str = "the estimated noise rate", rows: int | None = None
) -> tuple[float, str]:
    """The share the agent leaves out: the configured number, or (``auto``) the estimated ``rate`` of ``rows``
    (see ``too_little_noise``), at most ``MAX_AUTO_DROP``; and how it was chosen, for the log."""
    if setting != AUTO:
        return float(setting), f"set to {float(setting):.3g} in the config ({what} {rate:.1%})"
    if rate < IDLE_RATE:
        return 0.0, f"auto: {what} {rate:.1%}, below {IDLE_RATE:.0%}: nothing to act on"
    few = None if rows is None else too_few_called_wrong(rate, rows)
    if few:
        return 0.0, f"auto: {what} {rate:.1%}, {few}: nothing to act on"
    drop = round(min(rate, MAX_AUTO_DROP), 4)
    capped = f", capped at {MAX_AUTO_DROP:.0%}" if rate > MAX_AUTO_DROP else ""
    return drop, f"auto: {what} {rate:.1%}{capped}"


def sample_noise_rate(units: Units, noise: NoiseEstimate) -> float:
    """The share of samples holding at least one wrong unit label (NER: a sentence with a mistyped entity),
    from each unit's posterior of being right; a sample without units is clean."""
    log_right = np.zeros(units.n_samples)
    np.add.at(log_right, units.owner, np.log(np.clip(noise.correct, 1e-12, 1.0)))
    return float(np.mean(1.0 - np.exp(log_right)))


def _check_selection(selection: SelectionConfig, task: str) -> None:
    """Selection settings that need another task: a clear error naming the field."""
    if selection.mode == "mask" and task != "token-classification":
        raise ConfigError(
            "selection.mode: 'mask' leaves suspect entities' tags out of the loss; it needs "
            f"task: token-classification, not {task}"
        )
    if selection.correction == "forward" and task not in ONE_LABEL_TASKS:
        raise ConfigError(
            f"selection.correction: forward correction needs one label per sample (task: classification), not {task}"
        )
    if selection.flagged == "unlabel" and task not in ONE_LABEL_TASKS:
        raise ConfigError(
            f"selection.flagged: unlabel trains on the model's own labels: it needs task: classification, not {task}"
        )


def _resolve_drop(
    selection: SelectionConfig, task: str, units: Units, noise: NoiseEstimate, policy: Policy
) -> tuple[float, str]:
    """The share the agent leaves out (and why), set on ``policy`` too: none under policy none, the estimated noise
    rate under ``drop_fraction: auto`` (NER in sample mode: the share of sentences with a mistyped entity)."""
    if selection.policy == "none":  # plain fine-tuning with a loss correction: the estimate, nothing left out
        drop, how = 0.0, f"policy none keeps every sample (the estimated noise rate {noise.rate:.1%})"
        policy.drop_fraction = drop
    elif task == "token-classification" and selection.mode != "mask":  # sentences are left out, not entities
        drop, how = resolve_drop_fraction(
            selection.drop_fraction,
            sample_noise_rate(units, noise),
            "the estimated share of sentences with a mistyped entity",
            units.n_samples,
        )
        policy.drop_fraction = resolve_drop_fraction(selection.drop_fraction, noise.rate, rows=len(units.labels))[0]
    else:
        drop, how = resolve_drop_fraction(selection.drop_fraction, noise.rate, rows=len(units.labels))
        policy.drop_fraction = drop
    return drop, how


def _log_noise(config: Config, correction: str, noise: NoiseEstimate, units: Units, drop: float, how: str) -> None:
    """What the offline phase settled: the loss correction, the noise estimate and how much the agent leaves out."""
    if correction == "forward":
        log.info(
            "loss correction: forward, with the transition matrix estimated on the validation labels%s",
            " (selection.correction: auto, for classification)" if config.selection.correction == AUTO else "",
        )
    what = "entity labels" if config.task == "token-classification" else "labels"
    log.info(
        "estimated label noise: %.1f%% of %d %s (per class: %s); the agent leaves out %.1f%% (%s)",
        100 * noise.rate,
        len(units.labels),
        what,
        ", ".join(f"{k} {v:.0%}" for k, v in noise.per_class.items()),
        100 * drop,
        how,
    )
    if noise.per_source:
        log.info(
            "per source (selection.balance: per-source, each leaves out its own share): %s",
            ", ".join(
                f"{name} {d['rate']:.1%} of {d['rows']}{'' if d['estimated_alone'] else ' (too few to estimate alone)'}"
                for name, d in noise.per_source.items()
            ),
        )


def _probes_and_noise(
    units: Units, folds: int, seed: int, sources: np.ndarray | None, source_names: list[str]
) -> tuple[list, tuple[np.ndarray, np.ndarray], NoiseEstimate]:
    """The out-of-fold probes (fitted), their probabilities of the training units with those of the probe fitted on
    validation, and the noise estimate made from them (per source when ``sources`` is given)."""
    n_classes, fold_probes, val_labels = len(units.class_names), cast(list, []), units.val_labels
    oof, val_oof = cross_fitted_probabilities(
        units.x, units.labels, units.val_x, n_classes=n_classes, folds=folds, seed=seed, probes_out=fold_probes
    )
    probes = (oof, validation_probe_probabilities(units.x, units.val_x, val_labels, n_classes=n_classes))
    noise = estimate_noise(
        oof,
        units.labels,
        cast(np.ndarray, val_oof),
        val_labels,
        units.class_names,
        seed=seed,
        sources=sources,
        source_names=source_names,
    )
    return fold_probes, probes, noise


def value_samples(config: Config, splits: Splits, *, progress: bool = True) -> Valuation:
    """Fit ``config.selection.policy`` on cached features of ``splits`` (the offline phase), after
    estimating the label noise (``autoft.selection.noise``), which sets ``drop_fraction: auto``."""
    selection = config.selection
    if selection.mode == AUTO:  # NER: a suspect entity's tags leave the loss, its sentence's other words train
        selection = selection.model_copy(update={"mode": "mask" if config.task == "token-classification" else "sample"})
    source_names = sorted({e.source for e in splits.train})
    sources = np.array([source_names.index(e.source) for e in splits.train], dtype=np.int64)
    _check_selection(selection, config.task)
    units = build_units(config, splits, sources, progress)
    one_label = config.task in ONE_LABEL_TASKS
    n_classes, seed = len(units.class_names), config.training.seed
    numeric = 0.0 if selection.drop_fraction == AUTO else selection.drop_fraction
    options = {"seed": seed, "drop_fraction": numeric, **selection.options}
    try:
        policy = get_policy(selection.policy, **options)
    except TypeError as error:
        raise ConfigError(f"selection.options: {error}") from None
    if len(units.labels) < 2 or len(units.val_labels) < 1:
        raise ConfigError(
            f"selection.policy: valuing needs >= 2 training and >= 1 validation "
            f"{'entities' if config.task == 'token-classification' else 'samples'}, got "
            f"{len(units.labels)} and {len(units.val_labels)}"
        )
    # The probes and the neighbours feed the noise estimate, the state and the policy: computed once, here.
    unit_sources = sources[units.owner]
    by_source = selection.balance == "per-source" and len(source_names) > 1  # every file its own annotator
    fold_probes, probes, noise = _probes_and_noise(
        units, policy.probe_folds, seed, unit_sources if by_source else None, source_names
    )
    drop, how = _resolve_drop(selection, config.task, units, noise, policy)
    correction = selection.correction if selection.correction != AUTO else ("forward" if one_label else "off")
    estimated = selection.drop_fraction == AUTO  # the estimate sets how much: it bounds each class too (floor)
    selection = selection.model_copy(update={"drop_fraction": drop, "correction": correction})
    _log_noise(config, correction, noise, units, drop, how)
    agreement = neighbour_agreement(units.x, units.labels)
    state = state_features(
        embeddings=units.x,
        labels=units.labels,
        n_classes=n_classes,
        oof_probs=probes[0],
        val_probs=probes[1],
        agreement=agreement,
        noise_probability=1.0 - noise.correct,
        sources=unit_sources if len(source_names) > 1 else None,
        n_sources=len(source_names),
        seed=seed,
    )
    buckets = unit_sources if selection.bucket_by == "source" else None
    policy.fit(
        state,
        units.labels,
        None,
        units.val_labels,
        n_classes=n_classes,
        embeddings=units.x,
        val_embeddings=units.val_x,
        buckets=buckets,
        probes=probes,
        agreement=agreement,
        noise_probability=1.0 - noise.correct,
    )
    log.info(
        "offline valuation with %s: %d units of %d samples valued", selection.policy, len(units.labels), units.n_samples
    )
    sample_labels = units.labels if one_label else np.zeros(units.n_samples, dtype=np.int64)
    noise_record = {
        "phase": "offline",
        "event": "noise-estimate",
        "rate": noise.rate,
        "per_class": noise.per_class,
        "drop_fraction": drop,
        "how": how,
        **({"per_source": {k: v["rate"] for k, v in noise.per_source.items()}} if noise.per_source else {}),
    }
    return Valuation(
        policy,
        units,
        sample_labels,
        source_names,
        _describe(units, config.task, units.labels),
        _describe(units, config.task, noise.suggested),
        units.per_sample(noise.suggested_confidence, np.fmin, np.nan),
        units.per_sample(1.0 - noise.correct, np.fmax, 0.0),
        selection,
        noise,
        [noise_record, *({"phase": "offline", **d} for d in policy.decisions_)],
        fold_probes,
        probes[0],
        estimated,
    )


__all__ = [
    "IDLE_RATE",
    "IDLE_ROWS",
    "MAX_AUTO_DROP",
    "Valuation",
    "resolve_drop_fraction",
    "too_few_called_wrong",
    "too_little_noise",
    "value_samples",
]
