"""The report's HTML pieces: escaped cells, tables and figures."""

from __future__ import annotations

import html
from typing import Any


class Html(str):
    """Text that is already HTML (a table cell with highlighted spans): :func:`table` leaves it unescaped."""


def escape(value: Any) -> str:
    return value if isinstance(value, Html) else html.escape(str(value))


def number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else escape(value)


def element_id(base: str, key: str) -> str:
    """The id of one run's copy of an element (``epochs-plain``); a report of a single run uses ``base``."""
    return f"{base}-{key}" if key else base


def table(header: list[str], rows: list[list[Any]], *, numeric_from: int = 1, table_id: str = "") -> str:
    """A table; cells from column ``numeric_from`` on that are numbers are right-aligned (floats to 4 places)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{number(cell)}</td>'
            if i >= numeric_from and isinstance(cell, (int, float)) and not isinstance(cell, bool)
            else f'<td class="text">{escape("–" if cell is None else cell)}</td>'
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    identifier = f' id="{table_id}"' if table_id else ""
    return f"<table{identifier}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure(svg: str, caption: str, figure_id: str) -> str:
    return f'<figure id="{figure_id}">{svg}<figcaption class="note">{escape(caption)}</figcaption></figure>'


__all__ = ["Html", "element_id", "escape", "figure", "number", "table"]
