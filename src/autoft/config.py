"""Typed, self-validating configuration.

A config is YAML (or a dict) with the sections below; unknown keys, wrong types and out-of-range values
are rejected with the dotted field name, e.g. ``config.yaml: training.epochs: Input should be greater
than 0``. Relative paths are taken relative to the current working directory.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from autoft.errors import ConfigError

TaskName = Literal["classification", "token-classification"]
DataFormat = Literal["auto", "csv", "tsv", "jsonl", "parquet", "conll"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Strict):
    """Where the data lives and which columns hold text and labels."""

    train: str | list[str] = Field(description="training file, or a list of files (one source each)")
    validation: str | None = Field(None, description="clean validation file; else a seeded split of train")
    test: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    format: DataFormat = "auto"
    validation_fraction: float = Field(0.1, gt=0.0, lt=1.0)

    @field_validator("train")
    @classmethod
    def _non_empty(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("needs at least one file")
        return value

    @property
    def train_files(self) -> list[str]:
        return [self.train] if isinstance(self.train, str) else list(self.train)


class TrainingConfig(_Strict):
    """Optimisation settings of the one training loop."""

    epochs: int = Field(3, gt=0)
    learning_rate: float = Field(5.0e-5, gt=0.0)
    batch_size: int = Field(32, gt=0)
    eval_batch_size: int = Field(64, gt=0)
    max_length: int = Field(128, ge=8)
    seed: int = 0
    early_stopping_patience: int | None = Field(2, ge=1, description="epochs without improvement; null = off")
    weight_decay: float = Field(0.01, ge=0.0)
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    max_grad_norm: float | None = Field(1.0, gt=0.0)
    group_by_length: bool = Field(True, description="batch samples of similar length together")
    padding: Literal["dynamic", "max_length"] = Field("dynamic", description="pad to the batch's longest or to max_length")
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    progress: bool = Field(True, description="show tqdm progress bars")


DEFAULT_POLICY = "exp3"
"""The agent ``autoft run`` / ``value`` / ``demo`` use when the config says ``policy: none``: on TweetEval
with 40% noise it detected the noise best of the agents and trained the most accurate model (README)."""

REWARDS = ("primary", "accuracy", "macro_f1", "f1", "precision", "recall", "loss")


class SelectionConfig(_Strict):
    """The agent that decides which samples the model learns from (``policy: none`` = plain fine-tuning)."""

    policy: str = Field("none", description="none, random, small-loss, reinforce, q-learning or exp3")
    mode: Literal["sample", "weight", "mask"] = Field(
        "sample", description="drop low-valued samples, or weight their losses, or (NER) leave the tags of the "
        "lowest-valued entities out of the loss while the rest of their sentences trains",
    )
    drop_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="share of lowest-valued samples left out")
    balance: Literal["global", "per-class"] = Field(
        "global", description="drop that share over all samples, or within each given label"
    )
    reward: str = Field(
        "primary",
        description="online reward: the gain of this validation metric (primary: the task's own; accuracy, "
        "macro_f1, f1, precision, recall, loss) or of a user function 'module:function' called as "
        "f(predictions, labels) with the decoded validation predictions and gold labels",
    )
    update_every: Literal["epoch"] | int = Field(
        "epoch", description="reward the agent per epoch, or every N optimisation steps on a validation mini-batch"
    )
    reward_batch: int = Field(128, ge=1, description="validation samples in the mini-batch of update_every: N")
    bucket_by: Literal["value", "source"] = Field("value", description="buckets of q-learning / exp3")
    rescore: Literal["off", "dynamics", "model"] = Field(
        "dynamics",
        description="re-score samples each epoch: off; dynamics (area under the margin of the samples trained "
        "on, free); model (the fine-tuned model's margin on every training sample, also those left out, "
        "so they can come back: one inference pass over the training set per epoch)",
    )
    options: dict[str, Any] = Field(default_factory=dict, description="policy-specific options")

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
    def _known_policy(cls, value: str) -> str:
        from autoft.selection.policies import POLICIES

        key = value.strip().lower().replace("_", "-")
        if key not in POLICIES:
            raise ValueError(f"unknown policy {value!r}; known: {', '.join(sorted(POLICIES))}")
        return key


class Config(_Strict):
    """A whole autoft job."""

    task: TaskName = "classification"
    model: str = Field("default", description="'default' (packaged MiniLM), a local folder or a hub id")
    data: DataConfig
    training: TrainingConfig = TrainingConfig()
    selection: SelectionConfig = SelectionConfig()
    output_dir: str = "runs/autoft"

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _format_validation_error(error: ValidationError, source: str) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        message = "unknown field" if item["type"] == "extra_forbidden" else item["msg"]
        parts.append(f"{where}: {message}")
    return f"{source}: " + "; ".join(parts)


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings (values parsed as YAML) to a raw config dict."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. training.epochs=2")
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part} is not a section")
            node = child
        node[leaf] = yaml.safe_load(value) if value else ""
    return raw


def parse_config(raw: dict[str, Any], *, source: str = "config") -> Config:
    """Validate a raw dict; errors name ``source`` and the dotted field."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of config sections, got {type(raw).__name__}")
    try:
        return Config.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_format_validation_error(error, source)) from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a YAML config file, apply ``--set`` overrides and validate it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read config: {error}") from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of config sections")
    return parse_config(apply_overrides(raw, overrides or []), source=str(path))


def as_config(config: Config | dict[str, Any] | str | Path, overrides: list[str] | None = None) -> Config:
    """Accept a Config, a raw dict or a YAML path (the Python API's single entry point)."""
    if isinstance(config, Config):
        if not overrides:
            return config
        return parse_config(apply_overrides(config.model_dump(mode="json"), overrides))
    if isinstance(config, dict):
        return parse_config(apply_overrides(copy.deepcopy(config), overrides or []))
    return load_config(config, overrides)
