"""The one record every task's data becomes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Example:
    """One sample. Classification: ``text`` is a string, ``label`` a class name. Token classification:
    ``text`` is a list of words and ``label`` the list of their BIO tags. Question answering: ``text`` is the
    context, ``query`` the question, ``label`` the list of answers (``{"text", "start"}``, character offsets in
    the context). ``origin`` is ``file:line``."""

    text: str | list[str] | list[dict[str, str]]
    label: str | list[str] | list[dict] | None
    origin: str = ""
    source: str = field(default="", compare=False)
    query: str | None = None
