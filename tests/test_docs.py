"""docs/: generated pages agree with the code and the result files they are written from, and the README stays short."""

import re
import subprocess
import sys
from pathlib import Path

import yaml

from autoft.config import Config, parse_config
from autoft.config_reference import SECTIONS, fields, reference_markdown, reference_yaml

ROOT = Path(__file__).resolve().parents[1]


def test_every_config_field_is_described():
    """The reference is only as good as the descriptions it is written from: no field goes without one."""
    missing = [name for name, field in Config.model_fields.items() if not field.description]
    for section, model in SECTIONS:
        missing += [dotted for dotted, field in fields(model, section) if not field.description]
    assert not missing, f"fields without a description in src/autoft/config/: {missing}"


def test_the_generated_pages_are_what_their_sources_give():
    """docs/configuration.md, docs/benchmarks/ and the README's headline are written by docs/build.py; a config field,
    a template or a result file changed without running it fails here."""
    assert (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8") == reference_markdown(), (
        "docs/configuration.md is stale: run python docs/build.py"
    )
    check = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "build.py"), "--check"], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stderr


def test_the_reference_yaml_is_a_valid_config_at_every_default():
    """`autoft config` prints a config that loads, every field at its default (the train file a placeholder)."""
    printed = subprocess.run([sys.executable, "-m", "autoft.cli", "config"], capture_output=True, text=True, check=True)
    assert printed.stdout == reference_yaml()
    raw = yaml.safe_load(printed.stdout)
    assert parse_config(raw) == Config(data={"train": "data/train.csv"})
    for section, model in SECTIONS:  # every field is in it, and each has its comment above it
        assert set(raw[section]) == set(model.model_fields)
    lines = printed.stdout.splitlines()
    assert all(
        lines[i - 1].lstrip().startswith("#")
        for i, line in enumerate(lines)
        if line.strip() and not line.lstrip().startswith("#") and ":" in line and i > 0
    )


def test_the_markdown_reference_names_every_field_with_its_default():
    page = reference_markdown()
    assert "| `training.learning_rate` | number > 0 \\| 'auto' | `auto` |" in page
    assert "| `data.train` | text \\| list[text] | required |" in page
    assert "| `data.label_delimiter` | text length >= 1 | `'\\|'` |" in page  # a pipe escaped inside the table
    assert "| `training.peft.r` | integer > 0 | `8` |" in page


def test_the_readme_example_config_is_valid():
    """The README's config example loads as it stands (the reference itself lives in docs/)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Config") :]
    block = section[section.index("```yaml") + len("```yaml") :]
    config = parse_config(yaml.safe_load(block[: block.index("```")]), source="README.md")
    assert config.training.peft is not None and config.selection.relabel_confidence == 0.8
    assert "docs/configuration.md" in section[: section.index("\n## ", 1)]


README_LINES = 300
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
SCORE = re.compile(r"\b0\.\d{3}\b|\b\d+(\.\d+)? (macro-F1 |validation |test )?points\b|\b\d+(\.\d+)?×")
"""What a benchmark figure looks like in prose: a score to three decimals, a gap in points, a speed ratio."""


def pages() -> list[Path]:
    """README.md and every page of docs/ a reader sees (the templates are sources, not pages)."""
    return [ROOT / "README.md", *(p for p in sorted((ROOT / "docs").rglob("*.md")) if "_templates" not in p.parts)]


def generated() -> set[Path]:
    """The pages docs/build.py writes."""
    return {ROOT / "docs" / "configuration.md", *(ROOT / "docs" / "benchmarks").glob("*.md")}


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_readme_is_a_door_not_the_house():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_LINES, f"README.md has {len(lines)} lines (at most {README_LINES}): move detail to docs"


def test_every_relative_link_leads_somewhere():
    """Links between README.md and docs/ name files (and headings) that exist."""
    broken = []
    for page in pages():
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
            elif anchor and resolved.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", resolved.read_text(encoding="utf-8"), re.MULTILINE)
                if anchor not in {slug(h) for h in headings}:
                    broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, broken


def test_hand_written_pages_quote_no_benchmark_figures():
    """A measured figure lives on a generated benchmark page, read from its result file; hand-written pages link
    there. (A heuristic: three-decimal scores, gaps in points and speed ratios.)"""
    found = []
    for page in pages():
        if page in generated():
            continue
        text = page.read_text(encoding="utf-8")
        if page.name == "README.md":  # its headline block is generated
            text = re.sub(r"<!-- generated: headline -->.*?<!-- end generated -->", "", text, flags=re.DOTALL)
        found += [f"{page.relative_to(ROOT)}: {m.group(0)!r}" for m in SCORE.finditer(text)]
    assert not found, found


def test_benchmark_templates_type_no_scores():
    """The prose of a benchmark page quotes scores through ``{{ topic.key }}`` (read from the result files), never
    typed; targets (≥ 2 points, ≤ 1.3×) are the templates' own."""
    typed = []
    for template in sorted((ROOT / "docs" / "_templates").rglob("*.md")):
        text = re.sub(r"\{\{.*?\}\}", "", template.read_text(encoding="utf-8"))
        typed += [f"{template.relative_to(ROOT)}: {m.group(0)}" for m in re.finditer(r"\b0\.\d{3}\b", text)]
    assert not typed, typed


def test_every_benchmark_page_names_its_command():
    pages_ = sorted((ROOT / "docs" / "benchmarks").glob("*.md"))
    assert len(pages_) > 5
    missing = [
        p.name
        for p in pages_
        if p.name != "index.md"
        and not re.search(r"python benchmarks/\w+\.py|autoft demo", p.read_text(encoding="utf-8"))
    ]
    assert not missing, f"benchmark pages that name no command: {missing}"


def test_the_readme_headline_is_generated_from_the_never_worse_results():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text[text.index("<!-- generated: headline -->") : text.index("<!-- end generated -->")]
    assert "never_worse.py" in block and "| setting |" in block


def test_the_docs_site_builds_in_strict_mode(tmp_path):
    """mkdocs.yml: every page in the navigation, no link to a missing page, the API reference's objects importable."""
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-q",
            "-f",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    assert "autoft.run.train" in (tmp_path / "api" / "index.html").read_text(encoding="utf-8")
