"""Serving a run directory over HTTP (``autoft serve``): the FastAPI app and its dynamic batcher."""

from autoft.serving.app import ServeSettings, create_app, read_token, serve
from autoft.serving.batching import DynamicBatcher

__all__ = ["DynamicBatcher", "ServeSettings", "create_app", "read_token", "serve"]
