"""Models and tokenizers by name."""

from autoft.modeling.load import (
    DEFAULT_GENERATIVE_MODEL,
    DEFAULT_MODEL,
    load_model,
    load_tokenizer,
    resolve_model_name,
)

__all__ = ["DEFAULT_GENERATIVE_MODEL", "DEFAULT_MODEL", "load_model", "load_tokenizer", "resolve_model_name"]
