"""What a terminal shows of autoft: Python warnings routed to the log, progress bars switched off."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Any

QUIET_WARNINGS = ("FutureWarning", "TracerWarning")
"""Warning classes (by name: torch.jit's TracerWarning is not imported for this) logged at debug level: notices
from transformers and torch.onnx about their own future, nothing a user of autoft can act on."""


def _log_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
                 line: str | None = None) -> None:
    """``warnings.showwarning`` that logs one line to ``py.warnings`` (as ``logging.captureWarnings`` does), at
    debug level for :data:`QUIET_WARNINGS` and at warning level for the rest."""
    if file is not None:  # a caller that names its stream gets it, as with the default showwarning
        file.write(warnings.formatwarning(message, category, filename, lineno, line))
        return
    quiet = any(c.__name__ in QUIET_WARNINGS for c in category.__mro__)
    logging.getLogger("py.warnings").log(logging.DEBUG if quiet else logging.WARNING, "%s: %s (%s:%d)",
                                         category.__name__, str(message).strip(), filename, lineno)


def route_warnings() -> None:
    """Python warnings go to the log, not straight to stderr (see :func:`_log_warning`)."""
    logging.captureWarnings(True)
    warnings.showwarning = _log_warning


def hide_progress_bars() -> None:
    """No progress bars from tqdm, transformers (GGUF conversion included) or the Hub client. Their switches are
    environment variables read when they are imported; one imported already (a test, an embedding program) is
    switched off directly."""
    os.environ["TQDM_DISABLE"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    transformers_logging = sys.modules.get("transformers.utils.logging")
    if transformers_logging is not None:
        transformers_logging.disable_progress_bar()


__all__ = ["QUIET_WARNINGS", "hide_progress_bars", "route_warnings"]
