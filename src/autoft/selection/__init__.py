"""The data-valuation agent's core, on cached per-sample features (no transformer in the loop).

``state`` builds each sample's state (probe probabilities, training dynamics, features), ``rewards``
scores validation improvement, and ``policies`` holds the agents (``get_policy(name, **options)``).
"""

from autoft.selection.policies import POLICIES, Policy, get_policy, register_policy
from autoft.selection.rewards import (
    accuracy,
    load_reward,
    log_likelihood,
    loss_delta,
    macro_f1,
    metric_delta,
    rescale_reward,
    scorer,
)
from autoft.selection.state import (
    TrainingDynamics,
    disagreement,
    margins_from_logits,
    neighbour_agreement,
    probe_probabilities,
    quantile_buckets,
    state_features,
    suspicion,
)

__all__ = [
    "POLICIES",
    "Policy",
    "TrainingDynamics",
    "accuracy",
    "disagreement",
    "get_policy",
    "load_reward",
    "log_likelihood",
    "loss_delta",
    "macro_f1",
    "margins_from_logits",
    "metric_delta",
    "neighbour_agreement",
    "probe_probabilities",
    "quantile_buckets",
    "register_policy",
    "rescale_reward",
    "scorer",
    "state_features",
    "suspicion",
]
