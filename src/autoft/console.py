"""What a terminal shows of autoft: Python warnings routed to the log, progress bars switched off, a run's scores."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Any

QUIET_WARNINGS = ("FutureWarning", "TracerWarning")
"""Warning classes (by name: torch.jit's TracerWarning is not imported for this) logged at debug level: notices
from transformers and torch.onnx about their own future, nothing a user of autoft can act on."""


def _log_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """``warnings.showwarning`` that logs one line to ``py.warnings`` (as ``logging.captureWarnings`` does), at
    debug level for :data:`QUIET_WARNINGS` and at warning level for the rest."""
    if file is not None:  # a caller that names its stream gets it, as with the default showwarning
        file.write(warnings.formatwarning(message, category, filename, lineno, line))
        return
    quiet = any(c.__name__ in QUIET_WARNINGS for c in category.__mro__)
    logging.getLogger("py.warnings").log(
        logging.DEBUG if quiet else logging.WARNING,
        "%s: %s (%s:%d)",
        category.__name__,
        str(message).strip(),
        filename,
        lineno,
    )


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


SUMMARY_ROWS = (("validation", "validation"), ("zero_shot", "test (zero-shot)"), ("test", "test"))
"""metrics.json key -> row name; ``zero_shot`` is the test set scored before fine-tuning (tasks with text targets)."""


def summary_metric_keys(task: str, metrics: dict[str, Any]) -> list[str]:
    """The headline scores of ``task``: its adapter's ``summary_metrics``, else (an adapter that declares none,
    a task the registry does not know) every number the run recorded, so nothing computed is hidden."""
    from autoft.tasks.registry import get_adapter_class

    try:
        declared = getattr(get_adapter_class(task), "summary_metrics", None)
    except KeyError:
        declared = None
    keys = declared
    if not keys:
        keys = dict.fromkeys(
            k
            for split, _ in SUMMARY_ROWS
            for k, v in (metrics.get(split) or {}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        )
    return list(keys)


def metrics_table(metrics: dict[str, Any], task: str) -> str:
    """The run's headline scores as an aligned text table: a row per split, a column per summary metric."""
    keys = summary_metric_keys(task, metrics)
    rows = [("split", *keys)]
    for split, name in SUMMARY_ROWS:
        values = metrics.get(split)
        if values:
            rows.append((name, *(f"{values[k]:.4f}" if values.get(k) is not None else "-" for k in keys)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


__all__ = [
    "QUIET_WARNINGS",
    "SUMMARY_ROWS",
    "hide_progress_bars",
    "metrics_table",
    "route_warnings",
    "summary_metric_keys",
]
