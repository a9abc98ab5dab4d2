"""The configuration reference, written from the config models themselves (one source of truth).

``reference_markdown()`` is ``docs/configuration.md`` (``python docs/build.py`` writes it; a test fails when the
file and the models disagree); ``reference_yaml()`` is a complete config with every default and a comment per
field (``autoft config``).
"""

from __future__ import annotations

import inspect
import textwrap
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from autoft.config import Config

SECTIONS: tuple[tuple[str, type[BaseModel]], ...] = tuple(
    (name, field.annotation)
    for name, field in Config.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
)
"""The config's sections (``data``, ``training``, ...), in the model's order, with their models."""
NESTED = frozenset({"training.peft"})
"""Fields whose value is itself a section with fields of its own (documented as ``training.peft.*``)."""


def type_text(annotation: Any) -> str:
    """A field's type as a reader writes it: ``auto | integer > 0``, ``'metric' | 'metric-or-loss'``, ..."""
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *metadata = get_args(annotation)
        inner = [bound for item in metadata for bound in getattr(item, "metadata", [])]  # a Field(...) inside
        return " ".join(p for p in (type_text(base), _bound_text([*metadata, *inner])) if p)
    if origin is Literal:
        return " \\| ".join(repr(a) if isinstance(a, str) else str(a) for a in get_args(annotation))
    if origin in (Union, types.UnionType):
        return " \\| ".join(type_text(a) for a in get_args(annotation))
    if origin in (list, dict):
        args = ", ".join(type_text(a) for a in get_args(annotation))
        return f"{origin.__name__}[{args}]"
    if annotation is type(None):
        return "null"
    names = {str: "text", int: "integer", float: "number", bool: "true \\| false"}
    if annotation in names:
        return names[annotation]
    return getattr(annotation, "__name__", str(annotation))


BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="), ("min_length", "length >="))
"""pydantic's constraint attributes and how the reference writes them."""


def _bound_text(metadata: list[Any]) -> str:
    """The constraints among a field's ``metadata`` (annotated-types objects), e.g. ``> 0 < 1``."""
    return " ".join(
        f"{sign} {getattr(item, attribute):g}"
        for item in metadata
        for attribute, sign in BOUNDS
        if getattr(item, attribute, None) is not None
    )


def default_of(field: FieldInfo) -> Any:
    """A field's default as YAML would hold it (``PydanticUndefined``: required)."""
    if field.default is PydanticUndefined and field.default_factory is None:
        return PydanticUndefined
    value = field.get_default(call_default_factory=True)
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def fields(model: type[BaseModel], prefix: str) -> list[tuple[str, FieldInfo]]:
    """``(dotted name, field)`` of every field of ``model`` and of its nested sections (``NESTED``)."""
    out = []
    for name, field in model.model_fields.items():
        dotted = f"{prefix}.{name}"
        out.append((dotted, field))
        nested = next((a for a in get_args(field.annotation) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if nested is not None and dotted in NESTED:
            out += fields(nested, dotted)
    return out


def _yaml_value(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("\n...").strip()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def reference_markdown() -> str:
    """``docs/configuration.md``: every section and field, with its type, default and description."""
    lines = [
        "# Configuration reference",
        "",
        "<!-- Written by `python docs/build.py` from `src/autoft/config/`; do not edit by hand. -->",
        "",
        (
            "A config is YAML (or a dict, or `--set key=value` on the command line). Unknown keys, wrong types and "
            "out-of-range values are refused with the dotted field name. Every section but `data` is optional, "
            "and so is every field with a default: `auto` values are resolved per task, data size and machine, and "
            "recorded in the run directory (`config.yaml`, `training_plan.json`)."
        ),
        "",
        "`autoft config` prints the same as a commented YAML file with every default.",
        "",
        "## Top level",
        "",
        "| field | type | default | description |",
        "|---|---|---|---|",
    ]
    for name, field in Config.model_fields.items():
        if name in dict(SECTIONS):
            lines.append(f"| `{name}` | section | | {_cell(field.description or '')} (below) |")
            continue
        lines.append(_row(name, field))
    for section, model in SECTIONS:
        lines += [
            "",
            f"## `{section}`",
            "",
            " ".join(inspect.cleandoc(model.__doc__ or "").split()).replace("``", "`"),
            "",
            "| field | type | default | description |",
            "|---|---|---|---|",
        ]
        lines += [_row(dotted, field) for dotted, field in fields(model, section)]
    return "\n".join(lines) + "\n"


def _row(dotted: str, field: FieldInfo) -> str:
    default = default_of(field)
    shown = "required" if default is PydanticUndefined else f"`{_cell(_yaml_value(default))}`"
    kind = " ".join(p for p in (type_text(field.annotation), _bound_text(field.metadata)) if p)
    return f"| `{dotted}` | {kind} | {shown} | {_cell(field.description or '')} |"


def reference_yaml() -> str:
    """A complete config: every field at its default (``data.train`` a placeholder), a comment above each."""
    lines = ["# autoft configuration: every field at its default (docs/configuration.md explains each)."]
    for name, field in Config.model_fields.items():
        if name in dict(SECTIONS):
            model = dict(SECTIONS)[name]
            lines += ["", *_comment(field.description or "", 0), f"{name}:"]
            for key, sub in model.model_fields.items():
                value = default_of(sub)
                if value is PydanticUndefined:
                    value = "data/train.csv"
                lines += [*_comment(sub.description or "", 2), f"  {key}: {_yaml_value(value)}"]
        else:
            lines += [*_comment(field.description or "", 0), f"{name}: {_yaml_value(default_of(field))}"]
    return "\n".join(lines) + "\n"


def _comment(text: str, indent: int) -> list[str]:
    return [" " * indent + "# " + line for line in textwrap.wrap(text, 116 - indent)] if text else []


__all__ = ["default_of", "fields", "reference_markdown", "reference_yaml", "type_text"]
