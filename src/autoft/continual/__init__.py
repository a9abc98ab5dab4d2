"""Continual learning: ``autoft update`` continues a finished run on new data without forgetting the old.

An update is a new run directory trained from its parent's weights (``Run.load(..., trainable=True)``) on the new
data plus a replay of old training samples (``continual.replay_budget``: by default as many as the update brings new
ones, at least a tenth of all the data the lineage has trained on and at most all of it; chosen by
``continual.replay_by``: by default those that best represent their class in the parent model's own representation
(herding), or those it holds most firmly — its margin for the given label — or a seeded random sample; never one an
agent of the lineage flagged), optionally pulled toward
the parent's weights (``continual.method: ewc | l2``, :mod:`autoft.training.regularizers`). New labels widen
the task head; the old label ids keep their meaning. Question answering and generation (answers and responses,
no label set) update the same way, with a seeded random replay (no label margin ranks their samples), no head to
grow and no distillation; their gate reads the primary metric's direction (a loss must not rise).

The update trains with its parent's resolved settings, but of the epoch budget, early-stopping patience and the
agent's drop fraction, those the parent left to ``auto`` (chosen for its data's size and noise) are ``auto``
again, decided for the new data; those its config set (``training.epochs: 1``) stay. Both are logged.

A lineage (:mod:`autoft.lineage`) is the first run (its root) and every update made from it or its descendants:

    root/lineage.jsonl   one line per update (run, parent, data, when, metrics, gate, promoted)
    root/latest          symlink to the newest promoted run (absent: the root itself)
    root/.update.lock    held while an update runs: two updates never write the same lineage
    update/lineage.json  the update's own record, with ``parent`` and ``root``
    update/replay.<ext>  the old samples it replayed (in the training data's format)

After training, the lineage's validation data (and the new validation data, on the labels the parent knows)
is scored by parent and update alike; the promotion gate (``continual.gate``) lets the update become ``latest``
only if it is not worse than its parent on either by more than the tolerance. A candidate that fails is kept
for inspection. Any error (bad input, a half-written parent, a lock held) leaves the parent untouched.
"""

from autoft.continual.replay import choose_replay, lineage_data
from autoft.continual.updates import DECIDED_AFRESH, UpdateResult, _child_config, update
from autoft.lineage import (
    LATEST,
    LINEAGE,
    LOCK,
    RECORD,
    chain_of,
    history,
    latest,
    lineage_lock,
    lineage_table,
    root_of,
)

__all__ = [
    "DECIDED_AFRESH",
    "LATEST",
    "LINEAGE",
    "LOCK",
    "RECORD",
    "UpdateResult",
    "_child_config",
    "chain_of",
    "choose_replay",
    "history",
    "latest",
    "lineage_data",
    "lineage_lock",
    "lineage_table",
    "root_of",
    "update",
]
