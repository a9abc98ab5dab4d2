"""The agent in the training run, in one import: offline valuation, then the online callback.

``value_samples`` (``valuation``) embeds every training and validation sample once with the frozen
encoder (``embeddings``, cached on disk), estimates the label noise (``noise``), builds each unit's
state (``units``, ``state``) and fits the configured policy: every sample gets a value before the
first fine-tuning step, so the first epoch already trains on cleaner data. ``AgentCallback``
(``callback``) then plugs the policy into the training loop as a ``TrainerCallback``: each epoch it
hands out per-sample weights, re-scores samples from the model's own training dynamics, and updates
the policy from the reward it measures on its own part of the validation set. ``reports`` writes
``decisions.jsonl``, ``data_values.csv`` and ``noise.json``.
"""

from autoft.selection.callback import AgentCallback
from autoft.selection.embeddings import embed_examples, embed_words, example_text
from autoft.selection.keeping import kept_mask
from autoft.selection.reports import (
    DATA_VALUE_COLUMNS,
    data_value_rows,
    write_data_values,
    write_decisions,
    write_noise,
)
from autoft.selection.units import Units, build_units
from autoft.selection.valuation import MAX_AUTO_DROP, Valuation, resolve_drop_fraction, value_samples

__all__ = [
    "DATA_VALUE_COLUMNS",
    "MAX_AUTO_DROP",
    "AgentCallback",
    "Units",
    "Valuation",
    "build_units",
    "data_value_rows",
    "embed_examples",
    "embed_words",
    "example_text",
    "kept_mask",
    "resolve_drop_fraction",
    "value_samples",
    "write_data_values",
    "write_decisions",
    "write_noise",
]
