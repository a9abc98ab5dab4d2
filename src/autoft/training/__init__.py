"""The one training loop, its batching, and the sample-selection hook."""

from autoft.training.batching import LengthGroupedBatchSampler
from autoft.training.inference import predict_probabilities
from autoft.training.loop import EpochRecord, TrainResult, fit
from autoft.training.selection import AllData, SampleSelector

__all__ = [
    "AllData",
    "EpochRecord",
    "LengthGroupedBatchSampler",
    "SampleSelector",
    "TrainResult",
    "fit",
    "predict_probabilities",
]
