"""The one training loop, its batching, and the callbacks that steer it."""

from autoft.training.batching import LengthGroupedBatchSampler
from autoft.training.callbacks import StepOutput, TrainerCallback, TrainState
from autoft.training.inference import predict_probabilities
from autoft.training.loop import EpochRecord, TrainResult, fit

__all__ = [
    "EpochRecord",
    "LengthGroupedBatchSampler",
    "StepOutput",
    "TrainResult",
    "TrainState",
    "TrainerCallback",
    "fit",
    "predict_probabilities",
]
