"""Data-selection policies: each module registers one or more with ``register_policy``.

``get_policy(name, **options)`` builds one; ``POLICIES`` lists them: ``none``, ``random``,
``small-loss``, ``suspicion`` (baselines), ``reinforce`` (DVRL), ``q-learning`` and ``exp3`` (bucket agents), and
``alignment`` (per-sample values from the validation-gradient alignment of every training step).
"""

from autoft.selection.policies.alignment import GradientAlignment
from autoft.selection.policies.base import (
    POLICIES,
    FitData,
    Policy,
    check_policy,
    get_policy,
    rank_probabilities,
    register_policy,
)
from autoft.selection.policies.baselines import NoSelection, RandomSelection, SmallLoss
from autoft.selection.policies.exp3 import Exp3S
from autoft.selection.policies.q_learning import QLearning
from autoft.selection.policies.reinforce import Reinforce

__all__ = [
    "POLICIES",
    "Exp3S",
    "FitData",
    "GradientAlignment",
    "NoSelection",
    "Policy",
    "QLearning",
    "RandomSelection",
    "Reinforce",
    "SmallLoss",
    "check_policy",
    "get_policy",
    "rank_probabilities",
    "register_policy",
]
