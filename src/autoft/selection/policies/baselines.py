"""Reference policies every learned policy should beat: ``none``, ``random``, ``small-loss`` and
``suspicion``."""

from __future__ import annotations

import numpy as np

from autoft.selection.policies.base import FitData, Policy, register_policy


class NoSelection(Policy):
    """Plain fine-tuning: every sample, weight 1, whatever ``drop_fraction`` says."""

    def _fit(self, data: FitData) -> np.ndarray:
        self._log("offline", {"kept": len(data.labels)}, None)
        return np.ones(len(data.labels))

    def _start_from(self, prior: np.ndarray, state: np.ndarray | None) -> np.ndarray:
        self._log("offline", {"kept": len(prior)}, None)
        return np.ones(len(prior))


class RandomSelection(Policy):
    """Drops a seeded random ``drop_fraction`` of the samples: the control for any learned selection.

    ``values_`` is a seeded random permutation scaled to (0, 1], so leaving out the lowest drops exactly
    ``round(drop_fraction * N)`` random samples; keep-probabilities are ``1 - drop_fraction`` for all.
    """

    def _fit(self, data: FitData) -> np.ndarray:
        return self._random(len(data.labels))

    def _start_from(self, prior: np.ndarray, state: np.ndarray | None) -> np.ndarray:
        return self._random(len(prior))

    def _random(self, n: int) -> np.ndarray:
        values = (np.random.default_rng(self.seed).permutation(n) + 1) / n
        self._log("offline", {"dropped": round(self.drop_fraction * n)}, None)
        return values

    def _keep_probabilities(self, values: np.ndarray) -> np.ndarray:
        return np.full(len(values), 1.0 - self.drop_fraction)


class SmallLoss(Policy):
    """The small-loss trick on the probes: value = log-probability of the given label, averaged over the
    out-of-fold and the validation-set probe, so the samples with the largest probe loss go first."""

    def _fit(self, data: FitData) -> np.ndarray:
        oof, val = data.probes
        given = 0.5 * (oof + val)[np.arange(len(data.labels)), data.labels]
        values = np.log(np.clip(given, 1e-12, 1.0))
        self._log("offline", {"mean_probe_loss": round(float(-values.mean()), 6)}, None)
        return values


class Suspicion(Policy):
    """The agent's offline ranking without any learning: value = 1 - ``suspicion`` (the noise estimate's
    posterior, the validation-set probe and the neighbours), so the most contradicted labels go first.
    The control that shows what the learned policies add to the ranking they start from."""

    def _fit(self, data: FitData) -> np.ndarray:
        values = 1.0 - data.disagreement
        self._log("offline", {"mean_suspicion": round(float(data.disagreement.mean()), 6)}, None)
        return values


register_policy("none", NoSelection)
register_policy("random", RandomSelection)
register_policy("small-loss", SmallLoss)
register_policy("suspicion", Suspicion)

__all__ = ["NoSelection", "RandomSelection", "SmallLoss", "Suspicion"]
