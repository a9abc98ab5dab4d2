"""The shape of the library (CONTRIBUTING, *Layout*): imports run one way down the layers, no function over 100
lines, no file over 500."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "autoft"

LAYERS = (
    ("cli", "cli_parser", "demo", "serving", "console"),
    ("run", "rundir", "scoring", "autonomous", "continual", "lineage", "comparison", "reporting", "integrations"),
    ("selection",),
    ("training",),
    ("tasks",),
    ("modeling", "data"),
    ("config", "config_reference", "io", "errors"),
)
"""Top to bottom: a module may import from its own layer and the layers below it, never from one above."""


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "autoft" or len(parts) < 2:
        return None
    return next((i for i, names in enumerate(LAYERS) if parts[1] in names), None)


def _modules() -> list[tuple[str, Path]]:
    return [
        (".".join(["autoft", *(part for part in p.relative_to(SRC).with_suffix("").parts if part != "__init__")]), p)
        for p in sorted(SRC.rglob("*.py"))
    ]


def test_every_module_has_a_layer():
    unplaced = [name for name, _ in _modules() if name != "autoft" and _layer(name) is None]
    assert not unplaced, f"modules in no layer of LAYERS: {unplaced}"


def test_no_module_imports_from_a_higher_layer():
    upward = []
    for name, path in _modules():
        mine = _layer(name)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = (
                [node.module]
                if isinstance(node, ast.ImportFrom) and node.module
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            for target in targets:
                theirs = _layer(target)
                if mine is not None and theirs is not None and theirs < mine:
                    upward.append(f"{path.relative_to(SRC.parent)}:{node.lineno} {name} -> {target}")
    assert not upward, "imports that point up the layers:\n" + "\n".join(upward)


@pytest.mark.parametrize(("limit", "what"), [(100, "function"), (500, "file")])
def test_nothing_too_long(limit, what):
    long = []
    for _, path in _modules():
        text = path.read_text(encoding="utf-8")
        if what == "file" and text.count("\n") > limit:
            long.append(f"{path.relative_to(SRC.parent)}: {text.count(chr(10))} lines")
        if what == "function":
            long += [
                f"{path.relative_to(SRC.parent)}:{n.lineno} {n.name}: {n.end_lineno - n.lineno + 1} lines"
                for n in ast.walk(ast.parse(text))
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > limit
            ]
    assert not long, f"over {limit} lines:\n" + "\n".join(long)
