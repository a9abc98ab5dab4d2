"""autoft: autonomous fine-tuning of pretrained transformers.

Python API::

    import autoft
    run = autoft.train("config.yaml")            # or a dict / autoft.Config
    run.metrics["test"]["macro_f1"]
    run.predict(["great product", "never again"])
    run = autoft.load("runs/my-run")

The names below are imported on first use (PEP 562), so ``import autoft`` and the command line's ``--help``
do not pay for torch and transformers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Config": "autoft.config",
    "DataConfig": "autoft.config",
    "GenerationConfig": "autoft.config",
    "TrainingConfig": "autoft.config",
    "load_config": "autoft.config",
    "Example": "autoft.data.loading",
    "AutoftError": "autoft.errors",
    "ConfigError": "autoft.errors",
    "DataError": "autoft.errors",
    "ModelLoadError": "autoft.errors",
    "RunDirError": "autoft.errors",
    "Run": "autoft.run",
    "load": "autoft.run",
    "train": "autoft.run",
    "StepOutput": "autoft.training.callbacks",
    "TrainState": "autoft.training.callbacks",
    "TrainerCallback": "autoft.training.callbacks",
}
"""Public name -> the module that defines it."""

__all__ = [
    "AutoftError",
    "Config",
    "ConfigError",
    "DataConfig",
    "DataError",
    "Example",
    "GenerationConfig",
    "ModelLoadError",
    "Run",
    "RunDirError",
    "StepOutput",
    "TrainState",
    "TrainerCallback",
    "TrainingConfig",
    "__version__",
    "load",
    "load_config",
    "train",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports on demand
    from autoft.config import Config, DataConfig, GenerationConfig, TrainingConfig, load_config
    from autoft.data.loading import Example
    from autoft.errors import AutoftError, ConfigError, DataError, ModelLoadError, RunDirError
    from autoft.run import Run, load, train
    from autoft.training.callbacks import StepOutput, TrainerCallback, TrainState


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'autoft' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
