"""Per-sample state: what the data-valuation agent knows about each training sample (one module per signal:
``probes``, ``neighbours``, ``dynamics``, ``features``; the margin itself is the tasks' ``margins_from_logits``).

Everything here works on cached arrays (frozen-encoder embeddings, labels, probe probabilities), so a
state is built once per run in well under a second and the agent never touches the transformer:

* ``probe_probabilities``: two logistic-regression probes on the embeddings, one cross-fitted on the
  training set (out-of-fold, so a sample never scores itself) and one fitted on the clean validation set.
* ``neighbour_agreement``: the share of each sample's nearest neighbours in embedding space that carry
  its label (label noise is local: a flipped tweet sits among tweets of its true class).
* ``disagreement`` / ``suspicion`` / ``margins_from_logits``: how strongly the evidence contradicts each
  given label.
* ``TrainingDynamics``: per-sample loss and area under the margin (AUM) accumulated from the training
  loop's own forward passes (``TrainerCallback.on_step_end``).
* ``state_features``: all of the above as one float32 matrix, the value estimator's input.
"""

from autoft.selection.state.dynamics import TrainingDynamics, sequence_margins
from autoft.selection.state.features import quantile_buckets, reduce_embeddings, state_features, suspicion
from autoft.selection.state.neighbours import default_neighbours, neighbour_agreement
from autoft.selection.state.probes import (
    cross_fitted_probabilities,
    disagreement,
    fold_probe_probabilities,
    probe_probabilities,
    validation_probe_probabilities,
)
from autoft.tasks.base import margins_from_logits

__all__ = [
    "TrainingDynamics",
    "cross_fitted_probabilities",
    "default_neighbours",
    "disagreement",
    "fold_probe_probabilities",
    "margins_from_logits",
    "neighbour_agreement",
    "probe_probabilities",
    "quantile_buckets",
    "reduce_embeddings",
    "sequence_margins",
    "state_features",
    "suspicion",
    "validation_probe_probabilities",
]
