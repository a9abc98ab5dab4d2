"""Which rows train: the lowest-valued share left out (:func:`kept_mask`), and the floor that keeps every class
fed (:func:`class_floor`)."""

from __future__ import annotations

import math
from typing import cast

import numpy as np
from scipy.stats import rankdata

MAX_CLASS_LOSS = 0.5
"""No class loses more than this share of its training signal to the agent: each given class keeps at least
``1 - MAX_CLASS_LOSS`` of its row count as effective examples (its rows kept, plus rows relabelled into it)."""
CLASS_LOSS_SLACK = 1.5
"""A class loses at most this many times the share of its given labels the noise estimate calls wrong (and never
more than ``MAX_CLASS_LOSS``): rows left out are the most suspect overall, and with a low rate they can crowd into
one confusable class. On 1,500 clean BANKING77 rows (about 19 a class) the agent left out 0.3% to 1.7% of the rows
and lost one class to F1 0 on each of 3 seeds (``benchmarks/never_worse.py`` at 3345e94)."""
FLOOR_RELABEL_CONFIDENCE = 0.9
"""A class below its floor first takes in rows left out whose suggested label is that class with at least this
posterior (they train on it), then gets back its own best-valued rows left out."""


def class_floor(
    keep: np.ndarray,
    values: np.ndarray,
    labels: np.ndarray,
    suggested: np.ndarray,
    confidence: np.ndarray,
    class_names: list[str],
    *,
    max_loss: float = MAX_CLASS_LOSS,
    class_rates: np.ndarray | None = None,
    relabel_confidence: float = FLOOR_RELABEL_CONFIDENCE,
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """No class starves: each given class ``c`` of ``n_c`` rows keeps at least ``ceil((1 - a_c) * n_c)``
    effective examples — its rows in ``keep`` plus rows relabelled into it — where ``a_c`` is ``max_loss``, or
    with ``class_rates`` (the estimated share of wrong given labels per class id) at most ``CLASS_LOSS_SLACK``
    times ``c``'s rate. Below that, rows left out whose
    ``suggested`` label is ``c`` with at least ``relabel_confidence`` join it (most confident first; they train on
    ``c``), then ``c``'s own rows left out come back, best ``values`` first.

    Returns (keep with the rows taken back, [N] bool relabelled into their suggested class, records): one record
    per class the floor acted on, and per class that lost more than ``max_loss`` of its rows (left out or
    relabelled away) — ``{"class", "rows", "left_out", "taken_back", "relabelled_in", "effective"}``."""
    keep = np.asarray(keep, dtype=bool).copy()
    labels, suggested = np.asarray(labels), np.asarray(suggested)
    relabelled = np.zeros(len(keep), dtype=bool)
    records = []
    for c in np.unique(labels):
        rows = labels == c
        floor = math.ceil((1.0 - max_loss) * rows.sum())  # starving: confident relabels into c first
        need = floor - int((keep & rows).sum()) - int((relabelled & (suggested == c)).sum())
        taken_back = relabelled_in = 0
        if need > 0:
            offered = np.flatnonzero(
                ~keep & ~relabelled & ~rows & (suggested == c) & (confidence >= relabel_confidence)
            )
            offered = offered[np.argsort(-confidence[offered], kind="stable")][:need]
            relabelled[offered] = True
            relabelled_in = len(offered)
        if class_rates is not None:  # more left out than the estimate calls wrong in c: its own rows come back
            allowed = min(max_loss, CLASS_LOSS_SLACK * float(class_rates[int(c)]))
            floor = max(floor, math.ceil((1.0 - allowed) * rows.sum() - 1e-9))
        need = floor - int((keep & rows).sum()) - int((relabelled & (suggested == c)).sum())
        if need > 0:
            back = np.flatnonzero(~keep & ~relabelled & rows)
            back = back[np.argsort(-values[back], kind="stable")][:need]
            keep[back] = True
            taken_back = len(back)
        effective = int((keep & rows).sum()) + int((relabelled & (suggested == c)).sum())
        lost = int(rows.sum()) - int((keep & rows).sum())
        if taken_back or relabelled_in or lost > max_loss * rows.sum():
            records.append(
                {
                    "class": class_names[int(c)],
                    "rows": int(rows.sum()),
                    "left_out": lost,
                    "taken_back": taken_back,
                    "relabelled_in": relabelled_in,
                    "effective": effective,
                }
            )
    return keep, relabelled, records


def ranks(values: np.ndarray) -> np.ndarray:
    """Each value's rank over ``values``, scaled to (0, 1] (ties share the mean rank)."""
    values = np.asarray(values, dtype=np.float64)
    return rankdata(values) / len(values) if len(values) else values


def kept_mask(
    values: np.ndarray,
    labels: np.ndarray | None,
    drop_fraction: float,
    balance: str = "global",
    *,
    sources: np.ndarray | None = None,
    shares: np.ndarray | None = None,
) -> np.ndarray:
    """[N] bool: False for the lowest-valued ``drop_fraction`` of the samples — of each given class
    (``per-class``, so a hard minority class is not emptied; needs ``labels``), of each source (``per-source``:
    source ``s`` of ``sources`` [N] leaves out ``drop_fraction * shares[s]`` of its rows, at most all; without
    ``sources`` over all samples) or of all samples (``global``)."""
    values = np.asarray(values, dtype=np.float64)
    keep = np.ones(len(values), dtype=bool)
    if balance == "per-class":
        groups = [(np.flatnonzero(labels == c), 1.0) for c in np.unique(cast(np.ndarray, labels))]
    elif balance == "per-source" and sources is not None and shares is not None:
        groups = [(np.flatnonzero(sources == s), float(share)) for s, share in enumerate(shares)]
    else:
        groups = [(np.arange(len(values)), 1.0)]
    for rows, share in groups:
        drop = round(min(drop_fraction * share, 1.0) * len(rows))
        keep[rows[np.argsort(values[rows], kind="stable")[:drop]]] = False
    return keep


__all__ = ["CLASS_LOSS_SLACK", "FLOOR_RELABEL_CONFIDENCE", "MAX_CLASS_LOSS", "class_floor", "kept_mask", "ranks"]
