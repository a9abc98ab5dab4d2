"""What every benchmark leaves: its result as JSON and its table as Markdown beside it, and the table printed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_result(output: Path, result: dict[str, Any], table: str) -> None:
    """``output`` (JSON) and ``output`` with ``.md`` (the table), each replaced whole; the table to stdout."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2))
    output.with_suffix(".md").write_text(table.rstrip("\n") + "\n")
    print(table)
