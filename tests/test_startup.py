"""Start-up: the command line and ``import autoft`` do not import torch or transformers until a command needs
them, and every command that does logs its first line before it imports them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import autoft

HEAVY = ("torch", "transformers")


def run_python(code: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False, cwd=cwd, timeout=120
    )


@pytest.mark.parametrize("statement", ["import autoft.cli", "import autoft", "from autoft import __version__"])
def test_importing_the_cli_and_the_package_imports_no_torch_or_transformers(statement):
    result = run_python(f"""
        import sys
        {statement}
        print([name for name in {HEAVY!r} if name in sys.modules])
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_help_imports_no_torch_or_transformers():
    result = run_python(f"""
        import sys
        from autoft.cli import main
        for argv in (["--help"], ["train", "--help"], ["update", "--help"], ["--version"]):
            try:
                main(argv)
            except SystemExit:
                pass
        print([name for name in {HEAVY!r} if name in sys.modules], file=sys.stderr)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "[]"
    assert "usage: autoft update" in result.stdout and "autoft 0.1.0" in result.stdout


def test_the_lazy_package_exports_the_same_names():
    assert "Run" in autoft.__all__ and "train" in autoft.__all__ and len(autoft.__all__) == 18
    for name in autoft.__all__:
        assert getattr(autoft, name) is not None, name
        assert name in dir(autoft)
    from autoft import Run, load, train
    from autoft.run import Run as RunClass

    assert Run is RunClass and callable(train) and callable(load)
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        autoft.nonexistent  # noqa: B018


COMMANDS = {
    "train": ["train", "c.yaml"],
    "value": ["value", "c.yaml"],
    "run": ["run", "c.yaml"],
    "evaluate": ["evaluate", "runs/x", "--data", "d.csv"],
    "predict": ["predict", "runs/x"],
    "export": ["export", "runs/x", "--output", "out"],
    "update": ["update", "runs/x", "--data", "d.csv"],
    "lineage": ["lineage", "runs/x"],
    "report": ["report", "runs/x"],
    "serve": ["serve", "runs/x"],
    "demo": ["demo", "--output-dir", "runs/demo"],
}


def test_every_command_logs_its_first_line_before_importing_torch(tmp_path):
    """An import hook stops each command at its first import of torch or transformers and records the log lines
    written by then: each command has said what it does (``autoft COMMAND: ...``) before that point."""
    (tmp_path / "d.csv").write_text("text,label\ngood match,sport\npizza soup,food\n")
    (tmp_path / "c.yaml").write_text("data: {train: d.csv}\noutput_dir: runs/out\n")
    result = run_python(
        f"""
        import json, logging, sys

        class Blocked(BaseException):
            pass

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in {HEAVY!r}:
                    raise Blocked(name)

        class Lines(logging.Handler):
            def emit(self, record):
                seen.append(record.getMessage())

        logging.getLogger().addHandler(Lines())  # main()'s basicConfig then adds no stderr handler
        logging.getLogger().setLevel(logging.INFO)
        sys.meta_path.insert(0, Block())
        from autoft.cli import main

        found = {{}}
        for command, argv in {COMMANDS!r}.items():
            seen = []
            try:
                code = main(argv)
            except Blocked as blocked:
                code = "blocked at " + str(blocked)
            found[command] = [code, seen[:1]]
        print(json.dumps(found))
    """,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    for command, (code, first) in found.items():  # stopped at torch, or (report, lineage: no such run) failed before
        assert str(code).startswith("blocked at ") or code == 2, (command, code, result.stderr[-2000:])
        assert first and first[0].startswith(f"autoft {command}: "), (command, first)
    assert sum(str(code).startswith("blocked at ") for code, _ in found.values()) >= 9
    assert found["train"][1] == ["autoft train: c.yaml → runs/out"]
