"""Models and tokenizers by name."""

from autoft.modeling.load import DEFAULT_MODEL, load_model, load_tokenizer, resolve_model_name

__all__ = ["DEFAULT_MODEL", "load_model", "load_tokenizer", "resolve_model_name"]
