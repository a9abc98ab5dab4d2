"""JSON snapshots of an object's state, for checkpoints: no pickle, so loading one runs no code.

``snapshot(obj, names)`` encodes the named attributes (all of them by default); ``restore(obj, saved)`` sets them
back. Arrays keep their dtype and shape (base64 of the raw bytes), numpy random generators their bit generator's
state, and an attribute that is itself an object (a policy's value estimator, a reward tracker) is restored in
place, attribute by attribute. A value of any other type is a ``TypeError`` naming it, when saving: a callback
whose state cannot be written says so before a run depends on it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

import numpy as np

_ARRAY, _GENERATOR, _OBJECT, _TUPLE, _ITEMS = "__ndarray__", "__generator__", "__object__", "__tuple__", "__items__"


def to_json(value: Any, where: str = "state") -> Any:
    """``value`` as JSON-able data (see the module); ``where`` names it in an error."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError(f"{where}: an array of Python objects cannot be saved without pickle")
        data = np.ascontiguousarray(value)
        return {
            _ARRAY: base64.b64encode(data.tobytes()).decode("ascii"),
            "dtype": data.dtype.str,
            "shape": list(data.shape),
        }
    if isinstance(value, np.random.Generator):
        return {_GENERATOR: value.bit_generator.state}
    if isinstance(value, (list, tuple)):
        items = [to_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return {_TUPLE: items} if isinstance(value, tuple) else items
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: to_json(v, f"{where}.{k}") for k, v in value.items()}
        return {_ITEMS: [[to_json(k, where), to_json(v, f"{where}[{k!r}]")] for k, v in value.items()]}
    if hasattr(value, "__dict__") and not callable(value):
        return {_OBJECT: snapshot(value, where=where)}
    raise TypeError(f"{where}: a {type(value).__name__} cannot be saved in a checkpoint")


def from_json(value: Any) -> Any:
    """The value ``to_json`` encoded (an object's attributes stay a dict: ``restore`` sets them in place)."""
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if not isinstance(value, dict):
        return value
    if _ARRAY in value:
        raw = base64.b64decode(value[_ARRAY])
        return np.frombuffer(raw, dtype=np.dtype(value["dtype"])).reshape(value["shape"]).copy()
    if _GENERATOR in value:
        state = value[_GENERATOR]
        generator = np.random.Generator(getattr(np.random, state["bit_generator"])())
        generator.bit_generator.state = state
        return generator
    if _TUPLE in value:
        return tuple(from_json(v) for v in value[_TUPLE])
    if _ITEMS in value:
        return {from_json(k): from_json(v) for k, v in value[_ITEMS]}
    return {k: from_json(v) for k, v in value.items()}


def snapshot(obj: Any, names: Iterable[str] | None = None, *, where: str | None = None) -> dict[str, Any]:
    """The named attributes of ``obj`` (default: all of them) as JSON-able data."""
    where = where or type(obj).__name__
    attributes = vars(obj)
    return {name: to_json(attributes[name], f"{where}.{name}") for name in (attributes if names is None else names)}


def restore(obj: Any, saved: dict[str, Any]) -> None:
    """Set the attributes ``snapshot`` saved back on ``obj``; nested objects are restored in place."""
    for name, value in saved.items():
        if isinstance(value, dict) and _OBJECT in value:
            current = getattr(obj, name, None)
            if current is None or not hasattr(current, "__dict__"):
                raise ValueError(
                    f"{type(obj).__name__}.{name}: the checkpoint holds an object where this run has "
                    f"{type(current).__name__}; it was written by a different setup"
                )
            restore(current, value[_OBJECT])
        else:
            setattr(obj, name, from_json(value))


__all__ = ["from_json", "restore", "snapshot", "to_json"]
