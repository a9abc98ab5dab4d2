"""Typed, self-validating configuration.

A config is YAML (or a dict) with the sections below; unknown keys, wrong types and out-of-range values
are rejected with the dotted field name, e.g. ``config.yaml: training.epochs: expected 'auto' or an integer
> 0, got 0``. Relative paths are taken relative to the current working directory.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from autoft.config.base import (
    AUTO,
    GENERATIVE_TASKS,
    ONE_LABEL_TASKS,
    TASK_COLUMNS,
    TEXT_TARGET_TASKS,
    Auto,
    DataFormat,
    TaskName,
    _Strict,
    load_yaml,
)
from autoft.config.sections import ContinualConfig, DataConfig, GenerationConfig, PeftConfig, TrainingConfig
from autoft.config.selection import DEFAULT_POLICY, REWARDS, SelectionConfig
from autoft.errors import ConfigError


class Config(_Strict):
    """A whole autoft job."""

    task: TaskName = Field(
        "classification",
        description="classification, multi-label-classification, "
        "token-classification (NER), relation-extraction, question-answering, generation or "
        "seq2seq",
    )
    model: str = Field(
        "default",
        description="'default' (the packaged MiniLM; generation: the packaged "
        "SmolLM2-135M-Instruct), a local save_pretrained folder, a .gguf file or a hub id",
    )
    data: DataConfig = Field(description="where the data lives")
    training: TrainingConfig = Field(TrainingConfig(), description="optimisation; every field optional")
    selection: SelectionConfig = Field(SelectionConfig(), description="the agent")
    continual: ContinualConfig = Field(ContinualConfig(), description="autoft update")
    generation: GenerationConfig = Field(GenerationConfig(), description="decoding of generative tasks")
    output_dir: str = Field(
        "runs/autoft", description="the run directory to write (refused when it holds another run, unless --overwrite)"
    )

    @model_validator(mode="after")
    def _task_defaults(self) -> Config:
        """Generative defaults: ``model: default`` is the packaged SmolLM2-135M-Instruct, and LoRA adapters train
        unless ``training.peft`` says otherwise (full fine-tuning of a causal LM is slow on a CPU and forgets more).
        ``seq2seq`` has no packaged model: it needs one named."""
        if self.task == "generation" and self.model == "default":
            self.model = "default-generative"
        if self.task == "seq2seq" and self.model == "default":
            raise ValueError(
                "model: task seq2seq needs an encoder-decoder model named (e.g. t5-small, "
                "facebook/bart-base, Helsinki-NLP/opus-mt-en-de, or a local folder)"
            )
        if self.task in GENERATIVE_TASKS and "peft" not in self.training.model_fields_set:
            self.training = self.training.model_copy(update={"peft": PeftConfig()})
        return self

    @model_validator(mode="after")
    def _known_columns(self) -> Config:
        roles = TASK_COLUMNS.get(self.task, ())
        unknown = [role for role in self.data.columns if role not in roles]
        if unknown:
            known = (
                f"known for {self.task}: {', '.join(roles)}"
                if roles
                else f"{self.task} reads text_column and label_column"
            )
            raise ValueError(f"data.columns: unknown role {unknown[0]!r} ({known})")
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _format_validation_error(error: ValidationError, source: str) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        message = "unknown field" if item["type"] == "extra_forbidden" else item["msg"].removeprefix("Value error, ")
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
        node[leaf] = load_yaml(value) if value else ""
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
        raw = load_yaml(text) or {}
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


__all__ = [
    "AUTO",
    "DEFAULT_POLICY",
    "GENERATIVE_TASKS",
    "ONE_LABEL_TASKS",
    "REWARDS",
    "TASK_COLUMNS",
    "TEXT_TARGET_TASKS",
    "Auto",
    "Config",
    "ContinualConfig",
    "DataConfig",
    "DataFormat",
    "GenerationConfig",
    "PeftConfig",
    "SelectionConfig",
    "TaskName",
    "TrainingConfig",
    "apply_overrides",
    "as_config",
    "load_config",
    "load_yaml",
    "parse_config",
]
