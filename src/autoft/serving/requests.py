"""What a request to ``autoft serve`` holds, and what is wrong with one that does not fit, in one line."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

ONE_INPUT = "a text, a list of words (NER) or an object with the task's columns"
"""What one input is: what one line of ``autoft predict``'s JSON-lines input holds."""


class PredictRequest(BaseModel):
    """``{"input": X}`` or ``{"inputs": [X, ...]}`` (exactly one of them)."""

    model_config = ConfigDict(extra="forbid")
    input: str | list[str] | dict[str, Any] | None = Field(None, description=ONE_INPUT)
    inputs: list[str | list[str] | dict[str, Any]] | None = Field(
        None, description=f"a list of inputs, each {ONE_INPUT}"
    )


MAX_TEMPERATURE, MAX_REPETITION_PENALTY = 2.0, 2.0
"""The bounds of a request's decoding settings (past them a model writes noise or nothing useful)."""


class GenerationParameters(BaseModel):
    """A request's decoding settings (absent: the run's ``generation`` settings); ``temperature`` or ``top_p``
    without ``do_sample`` samples. ``max_new_tokens`` is bounded by the server's ``--max-new-tokens``."""

    model_config = ConfigDict(extra="forbid")
    max_new_tokens: int | None = Field(None, gt=0, description="at most this many tokens")
    do_sample: bool | None = Field(None, description="sample instead of choosing the likeliest token")
    temperature: float | None = Field(None, gt=0.0, le=MAX_TEMPERATURE, description="sampling temperature")
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="sampling: nucleus share")
    repetition_penalty: float | None = Field(
        None, gt=0.0, le=MAX_REPETITION_PENALTY, description="above 1 discourages repeated tokens"
    )
    seed: int | None = Field(None, description="seed of sampling")

    def overrides(self) -> dict[str, Any]:
        """The settings given, as ``GenerationConfig`` fields."""
        given = self.model_dump(exclude_none=True)
        if self.do_sample is None and ("temperature" in given or "top_p" in given):
            given["do_sample"] = True
        return given


class StreamRequest(BaseModel):
    """``{"input": X, "parameters": {...}}``: one prompt to stream the generation of."""

    model_config = ConfigDict(extra="forbid")
    input: str | dict[str, Any] = Field(
        description="a prompt: a text, or an object with the task's columns (prompt, or chat messages)"
    )
    parameters: GenerationParameters | None = Field(
        None,
        description="decoding settings for this request: max_new_tokens, do_sample, temperature, top_p, "
        "repetition_penalty, seed (absent: the run's)",
    )


class Detail(BaseModel):
    """A 4xx answer: ``{"detail": "one line"}``."""

    detail: str = Field(description="what is wrong, in one line")


NESTED = ("parameters",)
"""Request fields that hold an object: an error names the object's field, as ``parameters.top_p``."""


def _shown(value: Any) -> str:
    """A short description of a value a client sent."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return f"the text {text if len(text) <= 40 else text[:36] + '…' + text[-1]}"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _place(loc: Sequence[Any], fields: Sequence[str]) -> str:
    """The field an error is at as a client writes it (``inputs[2]``); "" for the body itself. pydantic adds the
    union member it tried (``str``, ``list[str]``), which is no part of the request."""
    loc = list(loc[1:] if loc[:1] in (["body"], ("body",)) else loc)
    if not loc or not isinstance(loc[0], str):
        return ""
    place = loc[0]
    if place in fields:
        for part in loc[1:]:
            if isinstance(part, int):
                place += f"[{part}]"
            elif isinstance(part, str) and place in NESTED:  # (a name it does not take included)
                place += f".{part}"
            else:
                break
    return place


def one_line(errors: Sequence[dict[str, Any]], model: type[BaseModel]) -> str:
    """One line for a request body that does not fit ``model``, from FastAPI's validation ``errors``: the first
    field that is wrong, what it takes and what came, and how many more fields are wrong."""
    fields = list(model.model_fields)
    places = list(dict.fromkeys(_place(e.get("loc") or (), fields) for e in errors))
    first = errors[0]
    kind, place = first.get("type"), places[0]
    more = f" (and {len(places) - 1} more)" if len(places) > 1 else ""
    takes = " or ".join(repr(f) for f in fields)
    if kind == "json_invalid":
        return f"the body is not valid JSON: {(first.get('ctx') or {}).get('error', 'decode error')}"
    if not place:
        return f'the body must be a JSON object with {takes}, such as {{"input": "a text"}}'
    if "." in place:  # a field of a nested object (parameters.temperature): pydantic's words for what it takes
        if kind == "extra_forbidden":
            return f"{place}: not a setting this request takes{more}"
        return f"{place}: {first.get('msg', 'invalid')}, got {_shown(first.get('input'))}{more}"
    if kind == "extra_forbidden" or place.split("[")[0] not in fields:
        return f"{place}: not a field of this request (it takes {takes}){more}"
    expected = ONE_INPUT if "[" in place else model.model_fields[place].description
    if kind == "missing":
        return f"{place}: missing, expected {expected}{more}"
    return f"{place}: expected {expected}, got {_shown(first.get('input'))}{more}"


__all__ = [
    "MAX_REPETITION_PENALTY",
    "MAX_TEMPERATURE",
    "ONE_INPUT",
    "Detail",
    "GenerationParameters",
    "PredictRequest",
    "StreamRequest",
    "one_line",
]
