"""Write the generated pages of docs/ and the README's generated block, from the code and the benchmark result files.

    python docs/build.py           # write them
    python docs/build.py --check   # exit 1, naming the page, when a page differs from what its sources give

Generated are:

- ``docs/configuration.md``, from the config models (the field descriptions in ``src/autoft/config/``);
- every page under ``docs/benchmarks/``, from its template ``docs/_templates/benchmarks/NAME.md``. A template is
  Markdown with two kinds of placeholder: a line ``<!-- table: FILE.md -->`` is the table a benchmark script wrote
  to ``benchmarks/results/FILE.md``, as it stands, and ``<!-- table: NAME -->`` the table ``docs/tables.py``'s
  ``TABLES[NAME]`` formats from the result files; ``{{ topic.key }}`` in prose is one value that
  ``FIGURES[topic]`` reads from them. No figure is typed into a template;
- the README's block between ``<!-- generated: headline -->`` and ``<!-- end generated -->``.

A generated page is never edited by hand: change its source (the config field, the template, the result file) and
run this again; tests/test_docs.py fails while they disagree. After a benchmark re-writes a result file, run this.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import tables

from autoft.config_reference import reference_markdown
from autoft.io import write_text_atomic

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
TEMPLATES = DOCS / "_templates"
TABLE = re.compile(r"^<!-- table: (\S+) -->$", re.MULTILINE)
FIGURE = re.compile(r"\{\{\s*(\w+)\.(\w+)\s*\}\}")
BLOCKS: dict[str, dict[str, Callable[[], str]]] = {"README.md": {"headline": tables.headline}}
"""Per file (relative to the repository root), its generated blocks and the function that writes each."""


def render(template: Path) -> str:
    """A template with its tables and figures filled in from the result files."""
    source = template.relative_to(ROOT).as_posix()
    text = template.read_text(encoding="utf-8")

    def table(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.endswith(".md"):
            return tables.result_text(name)
        if name not in tables.TABLES:
            raise SystemExit(f"{source}: no table {name!r} in docs/tables.py TABLES")
        return tables.TABLES[name]()

    def figure(match: re.Match[str]) -> str:
        topic, key = match.groups()
        if topic not in tables.FIGURES:
            raise SystemExit(f"{source}: no figures {topic!r} in docs/tables.py FIGURES")
        figures = tables.FIGURES[topic]()
        if key not in figures:
            raise SystemExit(f"{source}: {topic} has no figure {key!r} (it has {', '.join(sorted(figures))})")
        return figures[key]

    text = FIGURE.sub(figure, TABLE.sub(table, text))
    title, _, rest = text.partition("\n")
    note = (
        f"<!-- Written by `python docs/build.py` from `{source}` and the result files it names; "
        "do not edit by hand. -->"
    )
    return f"{title}\n\n{note}\n{rest}"


def templated_pages() -> dict[str, Callable[[], str]]:
    return {path.relative_to(TEMPLATES).as_posix(): partial(render, path) for path in sorted(TEMPLATES.rglob("*.md"))}


PAGES: dict[str, Callable[[], str]] = {"configuration.md": reference_markdown, **templated_pages()}
"""Each generated page (relative to docs/) and the function that writes its text."""


def with_blocks(text: str, blocks: dict[str, Callable[[], str]], source: str) -> str:
    """``text`` with each generated block written afresh."""
    for name, write in blocks.items():
        start, end = f"<!-- generated: {name} -->", "<!-- end generated -->"
        if start not in text or end not in text[text.index(start) :]:
            raise SystemExit(f"{source}: no block '{start}' … '{end}'")
        before, _, rest = text.partition(start)
        text = f"{before}{start}\n{write().strip()}\n{end}{rest.partition(end)[2]}"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    targets = {DOCS / name: page for name, page in PAGES.items()}
    for name, blocks in BLOCKS.items():
        path = ROOT / name
        targets[path] = partial(with_blocks, path.read_text(encoding="utf-8"), blocks, name)
    stale = []
    for path, page in targets.items():
        text = page()
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(path.relative_to(ROOT).as_posix())
        elif not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, text)
            print(f"wrote {path.relative_to(ROOT)}")
    if args.check:  # a page under docs/benchmarks/ that no template writes any more
        stale += [
            path.relative_to(ROOT).as_posix()
            for path in sorted((DOCS / "benchmarks").glob("*.md"))
            if path not in targets
        ]
    for name in stale:
        print(f"{name} differs from what its sources give: run python docs/build.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
