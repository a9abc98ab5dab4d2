"""Exceptions raised by autoft.

Every error a user can cause (a bad config, a bad data file, a model that cannot be found) is an
``AutoftError`` whose message is one line naming the file, line or field at fault. The CLI prints that
line and exits with status 2; library users catch the class they care about.
"""

from __future__ import annotations


class AutoftError(Exception):
    """Base class of every error autoft raises on purpose."""


class ConfigError(AutoftError, ValueError):
    """The configuration is invalid (unknown key, wrong type, bad value)."""


class DataError(AutoftError, ValueError):
    """A data file is missing or malformed; the message names ``file:line``."""


class ModelLoadError(AutoftError, OSError):
    """A model or tokenizer could not be loaded (missing folder, offline, wrong format)."""


class RunDirError(AutoftError, OSError):
    """A run directory is missing, incomplete, or would be overwritten."""
