"""Reading data files into examples, and splitting them."""

from autoft.data.loading import Example, load_examples, read_texts
from autoft.data.splits import Splits, load_splits, split_validation

__all__ = ["Example", "Splits", "load_examples", "load_splits", "read_texts", "split_validation"]
