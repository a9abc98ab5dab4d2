"""autoft: autonomous fine-tuning of pretrained transformers.

Python API::

    import autoft
    run = autoft.train("config.yaml")            # or a dict / autoft.Config
    run.metrics["test"]["macro_f1"]
    run.predict(["great product", "never again"])
    run = autoft.load("runs/my-run")
"""

from autoft.config import Config, DataConfig, GenerationConfig, TrainingConfig, load_config
from autoft.data.loading import Example
from autoft.errors import AutoftError, ConfigError, DataError, ModelLoadError, RunDirError
from autoft.run import Run, load, train
from autoft.training.callbacks import StepOutput, TrainerCallback, TrainState

__version__ = "0.1.0"

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
