"""The config's ``selection`` section: the agent that decides which samples the model learns from."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from autoft.config.base import AUTO, Auto, _auto_or_positive, _Strict

DEFAULT_POLICY = "suspicion"
"""The agent ``autoft run`` / ``value`` / ``demo`` use when the config says ``policy: none``: the noise estimate's
ranking (value = 1 - the suspicion of each given label) with the re-scoring, loss correction and guards, and no
learning. Against it, the learned policies (exp3 rewarded each epoch, alignment rewarded per sample each step) were
not ahead on the noisy settings measured (issue 27, ``benchmarks/results/learned_vs_static.md``), so the learned
ones are opt-in (``selection.policy``)."""

REWARDS = ("primary", "accuracy", "macro_f1", "f1", "precision", "recall", "loss")


class SelectionConfig(_Strict):
    """The agent that decides which samples the model learns from (``policy: none`` = plain fine-tuning)."""

    policy: str = Field(
        "none",
        description="none, random, small-loss, suspicion, reinforce, q-learning, exp3 or alignment; "
        "train uses it as given (none: plain fine-tuning); run, value and demo use suspicion (the noise estimate's "
        "ranking, no learning) where it says none (their agent)",
    )
    mode: Literal["auto", "sample", "weight", "mask"] = Field(
        "auto",
        description="drop low-valued samples, or weight their losses, or (NER) leave the tags of the "
        "lowest-valued entities out of the loss while the rest of their sentences trains; auto: mask for NER, "
        "sample for classification",
    )
    drop_fraction: Annotated[float, Field(ge=0.0, lt=1.0)] | Auto = Field(
        AUTO,
        description="share of lowest-valued samples left out; auto: the label-noise rate estimated from the "
        "data (out-of-fold probes calibrated on the validation labels), at most 0.5",
    )
    relabel_confidence: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="repair instead of drop: a sample the agent leaves out whose suggested "
        "label (the noise estimate's posterior) differs from the given one with at least this probability trains on "
        "the suggested label instead (NER: each suspect entity on its suggested type; a masked entity is unmasked "
        "so); null: leave it out",
    )
    flagged: Literal["drop", "unlabel"] = Field(
        "drop",
        description="what happens to a sample the agent leaves out (and does not relabel): drop, or unlabel "
        "(classification: its text stays and trains on the fine-tuned model's own label once that is consistent "
        "across two epochs and at least self_training_threshold confident)",
    )
    balance: Literal["global", "per-class", "per-source"] = Field(
        "global",
        description="drop that share over all samples, within each given label, or (per-source) within each "
        "training file, each file leaving out the share its own noise estimate gives (every file an annotator "
        "of its own; classification, relations and NER valued in memory)",
    )
    correction: Literal["auto", "off", "forward"] = Field(
        AUTO,
        description="forward (classification): forward-correct the loss of the samples that train on their "
        "given label with the label-transition matrix the noise estimate fits on the clean validation labels "
        "(GLC), re-estimated each epoch on the samples kept; off: plain cross-entropy; auto: forward for "
        "classification agent runs, off otherwise",
    )
    reward: str = Field(
        "primary",
        description="online reward: the gain of this validation metric (primary: the task's own; accuracy, "
        "macro_f1, f1, precision, recall, loss) or of a user function 'module:function' called as "
        "f(predictions, labels) with the decoded validation predictions and gold labels",
    )
    update_every: Literal["auto", "epoch"] | int = Field(
        AUTO,
        description="reward the agent per epoch, or every N optimisation steps on a validation mini-batch; "
        "auto: per epoch for classification and NER, four times an epoch on 32 pairs for generative tasks (their runs "
        "are a few epochs long)",
    )
    reward_batch: int = Field(128, ge=1, description="validation samples in the mini-batch of update_every: N")
    fit_rows: int = Field(
        20000,
        ge=100,
        description="autoft value on a pool with more training rows (classification): the offline "
        "phase runs on a seeded sample of this many and its values are carried to every row by a model of the "
        "sample's values; the pool is read, encoded and written as a stream",
    )
    reward_fraction: float = Field(
        0.5,
        gt=0.0,
        lt=1.0,
        description="share of the validation set (seeded, stratified) the agent learns from "
        "(its valuation, noise estimate and rewards); the rest alone chooses early stopping and the best epoch",
    )
    bucket_by: Literal["value", "source"] = Field("value", description="buckets of q-learning / exp3")
    rescore: Literal["off", "dynamics", "model"] = Field(
        "dynamics",
        description="re-score samples each epoch: off; dynamics (area under the margin of the samples trained "
        "on, free); model (the fine-tuned model's margin on every training sample, also those left out, "
        "so they can come back: one inference pass over the training set per epoch)",
    )
    self_training: Literal["agent", "threshold", "off"] = Field(
        "agent",
        description="how data.unlabeled texts are learned from: agent (pseudo-labels consistent across "
        "epochs, admitted per class above the confidence whose precision on the agent's validation part reaches a "
        "target the agent chooses online), threshold (every pseudo-label above self_training_threshold), off",
    )
    self_training_threshold: float = Field(0.9, gt=0.0, le=1.0, description="confidence of self_training: threshold")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="policy-specific options, e.g. reinforce: "
        "iterations, hidden, epsilon; exp3: gamma, eta; q-learning: epsilon, n_buckets; "
        "every policy: reward, the inner learner's score (log_likelihood, accuracy, "
        "macro_f1 or a user function 'module:function')",
    )

    @property
    def uses_agent(self) -> bool:
        """Whether a run values its samples (a policy other than ``none``, or a loss correction, which needs
        the noise estimate)."""
        return self.policy != "none" or self.correction == "forward"

    @field_validator("drop_fraction", mode="before")
    @classmethod
    def _fraction(cls, value: Any) -> Any:
        value = _auto_or_positive(value, float, minimum=0.0, inclusive=True)
        if value != AUTO and value >= 1.0:
            raise ValueError(f"expected 'auto' or a number in [0, 1), got {value!r}")
        return value

    @field_validator("reward")
    @classmethod
    def _known_reward(cls, value: str) -> str:
        if value not in REWARDS and ":" not in value:
            raise ValueError(f"unknown reward {value!r}; known: {', '.join(REWARDS)}, or 'module:function'")
        return value

    @field_validator("rescore", mode="before")
    @classmethod
    def _rescore_flag(cls, value: Any) -> Any:
        return {True: "dynamics", False: "off"}.get(value, value) if isinstance(value, bool) else value

    @field_validator("update_every")
    @classmethod
    def _positive_steps(cls, value: str | int) -> str | int:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"must be 'epoch' or a number of steps >= 1, got {value}")
        return value

    @field_validator("policy")
    @classmethod
    def _policy_key(cls, value: str) -> str:
        # Normalised here; whether it names a registered policy is checked where policies live
        # (``autoft.selection.policies.check_policy``), before any training starts.
        return value.strip().lower().replace("_", "-")
