"""Valuing a pool too large to value whole: a million texts, read as a stream, on one machine.

``autoft value`` on a classification pool with more than ``selection.fit_rows`` training rows:

1. The training files are read as a stream (``data.loading.stream_examples``) straight into the encoder's feature
   store (``selection.embeddings.stored_rows``): a chunk of texts at a time is encoded (only texts the store has
   not seen) and appended to its memory-mapped file. What stays in memory per row is its store row and its given
   label; a seeded reservoir keeps ``fit_rows`` whole examples.
2. The offline phase (``value_samples``: probes, noise estimate, state, policy) runs on that sample, exactly as on
   a data set of that size.
3. Every other row gets what the sample's rows got, in chunks read back through short-lived memory maps: the
   fold probes' probabilities, the noise estimate's posterior (the same calibration and transition matrix),
   the agreement of its nearest neighbours among ``REFERENCE_ROWS`` of the sample. A gradient-boosted model
   fitted on the sample (these inputs, an embedding projection and the given label -> the rank of the policy's
   value) carries the value to it. Its quality is measured: the rank correlation and the flagged-set overlap of
   cross-validated predictions on the sample.
4. ``data_values.csv`` is written as the files are read a second time, in file order (``autoft value`` prints
   the lowest-valued rows), through a temporary file.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import logging
import os
import random
import tempfile
import time
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from scipy.stats import spearmanr

from autoft.config import Config
from autoft.data.loading import BadRows, Example, stream_examples
from autoft.data.splits import Splits, check_known_labels, read_file, sorted_labels
from autoft.errors import DataError
from autoft.selection.embeddings import example_text, stored_rows
from autoft.selection.keeping import kept_mask, ranks
from autoft.selection.state import default_neighbours, fold_probe_probabilities
from autoft.selection.state.features import _entropy, _one_hot, _top_margin
from autoft.selection.units import feature_max_length
from autoft.selection.valuation import Valuation, value_samples

if TYPE_CHECKING:
    from autoft.selection.noise import NoiseEstimate

log = logging.getLogger(__name__)

REFERENCE_ROWS = 4096
"""Sample rows a pool row's neighbours are looked for among (their agreement with its label is an input)."""
CHUNK_ROWS = 16384
"""Pool rows scored at a time."""
AGREEMENT_BLOCK = 2048
"""Rows whose similarities to the reference rows are computed at a time."""
PROJECTION = 16
"""Dimensions of the embedding projection the value model reads."""


@dataclass
class PoolValuation:
    """Every pool row's valuation, as arrays in file order, and the sample's own."""

    labels: list[str]
    given: np.ndarray  # [N] class ids
    values: np.ndarray  # [N] in [0, 1]: the policy's value rank (the sample's rows) or its model's estimate
    noise_probability: np.ndarray  # [N] posterior that the given label is wrong
    suggested: np.ndarray  # [N] most likely true class
    suggested_confidence: np.ndarray  # [N]
    flagged: np.ndarray  # [N] bool: the lowest-valued drop_fraction
    fitted: np.ndarray  # [N] bool: valued by the offline phase itself (the sample), not carried by the model
    valuation: Valuation  # the sample's
    extension: dict[str, Any]  # the value model's inputs and measured quality

    @property
    def rate(self) -> float:
        """The estimated share of wrong labels over the whole pool."""
        return float(self.noise_probability.mean())


def count_lines(paths: list[str]) -> int:
    """An upper bound of the rows in ``paths`` (their line breaks), read fast in blocks; Parquet: its row count."""
    total = 0
    for path in map(Path, paths):
        if not path.is_file():
            continue
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            with contextlib.suppress(Exception):  # a broken file is reported when it is read
                total += pq.ParquetFile(path).metadata.num_rows
            continue
        with path.open("rb") as stream:
            total += sum(block.count(b"\n") for block in iter(functools.partial(stream.read, 1 << 24), b""))
    return total


def _stream(config: Config, bad: BadRows):
    data = config.data
    return chain.from_iterable(
        stream_examples(
            path,
            task=config.task,
            text_column=data.text_column,
            label_column=data.label_column,
            fmt=data.format,
            bad_rows=bad,
            label_delimiter=data.label_delimiter,
        )
        for path in data.train_files
    )


def _inputs(
    x: np.ndarray,
    given: np.ndarray,
    probs: np.ndarray,
    wrong: np.ndarray,
    agreement: np.ndarray,
    projection: np.ndarray,
    n_classes: int,
) -> np.ndarray:
    """The value model's input: probe columns, noise posterior, neighbour agreement, given label, projection."""
    return np.column_stack(
        [
            probs[np.arange(len(given)), given],
            probs.max(axis=1),
            _top_margin(probs),
            _entropy(probs),
            wrong,
            agreement,
            _one_hot(given, n_classes),
            x @ projection,
        ]
    ).astype(np.float32)


def _agreement(
    x: np.ndarray,
    given: np.ndarray,
    reference: np.ndarray,
    reference_labels: np.ndarray,
    k: int,
    exclude_self: np.ndarray | None = None,
) -> np.ndarray:
    """[n] share of each row's ``k`` most similar reference rows (cosine: the vectors are unit length) that have
    its given label; ``exclude_self`` [n]: the reference position of a row that is itself a reference (or -1)."""
    out = np.empty(len(x))
    for start in range(0, len(x), AGREEMENT_BLOCK):  # a block of rows at a time: the similarities stay small
        block = slice(start, start + AGREEMENT_BLOCK)
        similarity = x[block] @ reference.T
        if exclude_self is not None:
            own = np.flatnonzero(exclude_self[block] >= 0)
            similarity[own, exclude_self[block][own]] = -np.inf
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        out[block] = (reference_labels[nearest] == given[block, None]).mean(axis=1)
    return out


def _check_pool(config: Config) -> None:
    """A pool is valued for classification, against a clean validation file."""
    data, selection = config.data, config.selection
    if config.task != "classification":
        raise DataError(
            f"{data.train_files[0]}: pools above selection.fit_rows ({selection.fit_rows}) are valued "
            f"for classification so far, not {config.task}; raise selection.fit_rows to value it whole"
        )
    if not data.validation:
        raise DataError(
            f"{data.train_files[0]}: a pool above selection.fit_rows ({selection.fit_rows}) rows needs "
            f"data.validation (clean labels: the noise estimate and the values rest on them)"
        )


def _value_model(
    inputs: np.ndarray, values: np.ndarray, given: np.ndarray, drop: float, balance: Any, seed: int
) -> tuple[Any, dict[str, Any]]:
    """The gradient-boosted regression of the sample's value ranks on its inputs, fitted on the whole sample, and how
    well it ranks held-out rows (5-fold: rank correlation, overlap of the rows it would flag with those truly
    flagged)."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.model_selection import cross_val_predict

    model = HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05, random_state=seed)
    held_out = cross_val_predict(model, inputs, values, cv=5)
    truly = ~kept_mask(values, given, drop, balance)
    predicted = ~kept_mask(held_out, given, drop, balance)
    extension: dict[str, Any] = {
        "method": "gradient-boosted regression of the value rank on probe, noise, neighbour and embedding inputs, "
        "fitted on the sample",
        "held_out_spearman": round(float(spearmanr(held_out, values)[0]), 4),
        "held_out_flagged_overlap": round(float((truly & predicted).sum() / max(truly.sum(), 1)), 4),
    }
    model.fit(inputs, values)
    log.info(
        "value model on the sample: cross-validated rank correlation %.3f, flagged overlap %.1f%%",
        extension["held_out_spearman"],
        100 * extension["held_out_flagged_overlap"],
    )
    return model, extension


def value_pool(config: Config, *, progress: bool = True) -> PoolValuation:
    """The valuation of every row of the training files (see the module); needs ``data.validation``."""
    data, selection, seed = config.data, config.selection, config.training.seed
    _check_pool(config)
    bad = BadRows(data.on_bad_rows, data.max_bad_rows)
    validation = read_file(cast(str, data.validation), data, task=config.task, bad_rows=bad)  # _check_pool: given
    ids: dict[str, int] = {}
    given: list[int] = []
    sample: list[tuple[int, Example]] = []
    chooser = random.Random(seed)

    def texts():
        for i, example in enumerate(_stream(config, bad)):
            given.append(ids.setdefault(example.label, len(ids)))
            if i < selection.fit_rows:  # reservoir sampling: every row equally likely to be in the sample
                sample.append((i, example))
            elif (j := chooser.randrange(i + 1)) < selection.fit_rows:
                sample[j] = (i, example)
            yield example_text(example)

    max_length = feature_max_length(config)
    started = time.perf_counter()
    store, rows = stored_rows(
        config.model, texts(), max_length=max_length, progress=progress, total=count_lines(data.train_files) or None
    )
    labels = sorted_labels(set(ids))
    if len(labels) < 2:
        raise DataError(f"{data.train_files[0]}: need at least two distinct labels, found {labels}")
    check_known_labels(validation, set(labels), "validation")
    remap = np.array([labels.index(name) for name in ids], dtype=np.int64)
    given_ids = remap[np.asarray(given, dtype=np.int64)]
    n, n_classes = len(given_ids), len(labels)
    sample.sort(key=lambda pair: pair[0])
    sample_rows = np.array([i for i, _ in sample], dtype=np.int64)
    seconds = time.perf_counter() - started
    log.info(
        "pool of %d rows streamed into the feature store in %.1f s (%.0f rows/s); the offline phase runs on a "
        "seeded sample of %d (selection.fit_rows)",
        n,
        seconds,
        n / max(seconds, 1e-9),
        len(sample),
    )

    # The offline phase on the sample (its features come from the store).
    splits = Splits([e for _, e in sample], validation, None, labels, bad.skipped)
    valuation = value_samples(config, splits, progress=progress)
    x_fit = valuation.units.x.astype(np.float32)
    fit_values = ranks(valuation.sample_values())
    fit_given = valuation.units.labels
    rng = np.random.default_rng(seed)
    reference_at = np.sort(rng.choice(len(sample), min(REFERENCE_ROWS, len(sample)), replace=False))
    reference, reference_labels = x_fit[reference_at], fit_given[reference_at]
    k = min(default_neighbours(len(reference_at)), len(reference_at) - 1)
    position = np.full(len(sample), -1)
    position[reference_at] = np.arange(len(reference_at))
    projection = np.linalg.svd(x_fit - x_fit.mean(0), full_matrices=False)[2][:PROJECTION].T
    fit_inputs = _inputs(
        x_fit,
        fit_given,
        cast(np.ndarray, valuation.oof_probs),
        valuation.noise_probability,
        _agreement(x_fit, fit_given, reference, reference_labels, k, position),
        projection,
        n_classes,
    )

    drop, noise = cast(float, valuation.selection.drop_fraction), cast("NoiseEstimate", valuation.noise)  # resolved
    balance = valuation.selection.balance
    model, extension = _value_model(fit_inputs, fit_values, fit_given, drop, balance, seed)
    extension.update({"sample_rows": len(sample), "reference_rows": len(reference_at)})

    # Every row: the sample's own results, the others through the same probes, estimate and value model.
    values = np.empty(n, dtype=np.float32)
    wrong = np.empty(n, dtype=np.float32)
    suggested = np.empty(n, dtype=np.int16)
    confidence = np.empty(n, dtype=np.float32)
    fitted = np.zeros(n, dtype=bool)
    fitted[sample_rows] = True
    for start in range(0, n, CHUNK_ROWS):
        chunk = np.arange(start, min(start + CHUNK_ROWS, n))
        chunk = chunk[~fitted[chunk]]
        if not len(chunk):
            continue
        x = store.gather(rows[chunk])
        probs = fold_probe_probabilities(valuation.fold_probes, x, n_classes)
        posterior = noise.posterior_of(probs, given_ids[chunk])
        wrong[chunk] = 1.0 - posterior[np.arange(len(chunk)), given_ids[chunk]]
        suggested[chunk], confidence[chunk] = posterior.argmax(1), posterior.max(1)
        agreement = _agreement(x, given_ids[chunk], reference, reference_labels, k)
        values[chunk] = np.clip(
            model.predict(_inputs(x, given_ids[chunk], probs, wrong[chunk], agreement, projection, n_classes)), 0.0, 1.0
        )
    values[sample_rows] = fit_values
    wrong[sample_rows] = valuation.noise_probability
    suggested[sample_rows] = noise.suggested
    confidence[sample_rows] = noise.suggested_confidence
    flagged = ~kept_mask(values, given_ids, drop, balance)
    return PoolValuation(labels, given_ids, values, wrong, suggested, confidence, flagged, fitted, valuation, extension)


POOL_COLUMNS = [
    "row_id",
    "origin",
    "text",
    "given_label",
    "suggested_label",
    "suggested_confidence",
    "label_noise_probability",
    "value",
    "flagged",
    "action",
    "valued_by",
]


def write_pool_values(path: Path, config: Config, pool: PoolValuation) -> int:
    """``data_values.csv`` in file order, written as the training files are read again (a temporary file, then
    renamed); returns the rows written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    written = 0
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(POOL_COLUMNS)
            for i, example in enumerate(_stream(config, BadRows(config.data.on_bad_rows, config.data.max_bad_rows))):
                writer.writerow(
                    [
                        i,
                        example.origin,
                        example.text,
                        example.label,
                        pool.labels[pool.suggested[i]],
                        round(float(pool.suggested_confidence[i]), 4),
                        round(float(pool.noise_probability[i]), 4),
                        round(float(pool.values[i]), 4),
                        bool(pool.flagged[i]),
                        "drop" if pool.flagged[i] else "keep",
                        "offline phase" if pool.fitted[i] else "value model",
                    ]
                )
                written += 1
        if written != len(pool.values):
            raise DataError(f"{config.data.train_files[0]}: the training files changed while they were valued")
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return written


__all__ = ["POOL_COLUMNS", "PoolValuation", "count_lines", "value_pool", "write_pool_values"]
