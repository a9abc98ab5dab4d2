"""``autoft serve --collect DIR`` (opt-in): keep what the server answered, as unlabelled data for the next update.

Every input a ``POST /predict`` answered is appended to ``DIR/served-YYYY-MM-DD.jsonl`` (UTC days) as one JSON line
that ``data.unlabeled`` (and ``autoft update --unlabeled``) reads as it is: the input under the run's text column (or,
for an input given as an object, its columns), with ``served`` holding what the server said — the prediction, the
run that made it and when. Collection stops, with one warning, once the folder's ``served-*.jsonl`` files reach
``max_bytes``; nothing is collected unless ``--collect`` is given. Lines are written off the event loop, in order.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
PATTERN = "served-*.jsonl"
MAX_MB = 100.0


class Collector:
    """Appends served inputs with their predictions to daily JSON-lines files in ``folder``, up to ``max_bytes``."""

    def __init__(self, folder: str | Path, *, text_column: str = "text", max_bytes: int = int(MAX_MB * (1 << 20))):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.text_column, self.max_bytes = text_column, max_bytes
        self.size = sum(p.stat().st_size for p in self.folder.glob(PATTERN))
        self.collected = 0
        self.full = False
        self._lock = threading.Lock()

    def record(self, value: Any, prediction: Any, run: str, at: datetime) -> dict[str, Any]:
        row = dict(value) if isinstance(value, dict) else {self.text_column: value}
        row["served"] = {"prediction": prediction, "run": run, "at": at.isoformat(timespec="milliseconds")}
        return row

    def add(self, values: list[Any], predictions: list[Any], run: str) -> int:
        """Append one line per served input (thread-safe); returns how many were written (0 once full)."""
        at = datetime.now(UTC)
        text = "".join(
            json.dumps(self.record(v, p, run, at), ensure_ascii=False) + "\n" for v, p in zip(values, predictions)
        )
        data = text.encode("utf-8")
        with self._lock:
            if self.full:
                return 0
            if self.size + len(data) > self.max_bytes:
                self.full = True
                log.warning(
                    "--collect: %s holds %.1f MB of served inputs, the most --collect-max-mb allows: "
                    "collecting stops (move the files away and restart to collect more)",
                    self.folder,
                    self.size / (1 << 20),
                )
                return 0
            with (self.folder / f"served-{at:%Y-%m-%d}.jsonl").open("ab") as out:
                out.write(data)
            self.size += len(data)
            self.collected += len(values)
        return len(values)


__all__ = ["MAX_MB", "PATTERN", "Collector"]
