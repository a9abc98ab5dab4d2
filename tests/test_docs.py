"""docs/: generated pages agree with the code they are written from."""

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
    assert not missing, f"fields without a description in src/autoft/config.py: {missing}"


def test_the_configuration_page_is_what_the_models_give():
    """docs/configuration.md is written by docs/build.py; a field changed without running it fails here."""
    assert (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8") == reference_markdown(), \
        "docs/configuration.md is stale: run python docs/build.py"
    check = subprocess.run([sys.executable, str(ROOT / "docs" / "build.py"), "--check"], capture_output=True, text=True,
                           check=False)
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
    assert all(lines[i - 1].lstrip().startswith("#") for i, line in enumerate(lines)
               if line.strip() and not line.lstrip().startswith("#") and ":" in line and i > 0)


def test_the_markdown_reference_names_every_field_with_its_default():
    page = reference_markdown()
    assert "| `training.learning_rate` | number > 0 \\| 'auto' | `auto` |" in page
    assert "| `data.train` | text \\| list[text] | required |" in page
    assert "| `data.label_delimiter` | text length >= 1 | `'\\|'` |" in page  # a pipe escaped inside the table
    assert "| `training.peft.r` | integer > 0 | `8` |" in page


def test_the_readme_example_config_is_valid():
    """The README's config example loads as it stands (the reference itself lives in docs/)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Config"):]
    block = section[section.index("```yaml") + len("```yaml"):]
    config = parse_config(yaml.safe_load(block[: block.index("```")]), source="README.md")
    assert config.training.peft is not None and config.selection.relabel_confidence == 0.8
    assert "docs/configuration.md" in section[: section.index("###")]
