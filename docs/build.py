"""Write the generated pages of docs/ from the code (and, as they move here, from the benchmark result files).

    python docs/build.py           # write them
    python docs/build.py --check   # exit 1, naming the page, when a page differs from what the code gives

A generated page is never edited by hand: change its source (for configuration.md, the field descriptions in
src/autoft/config.py) and run this again; tests/test_docs.py fails while they disagree.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from autoft.config_reference import reference_markdown
from autoft.io import write_text_atomic

DOCS = Path(__file__).resolve().parent
PAGES: dict[str, Callable[[], str]] = {"configuration.md": reference_markdown}
"""Each generated page and the function that writes its text."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    stale = []
    for name, page in PAGES.items():
        path, text = DOCS / name, page()
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            write_text_atomic(path, text)
            print(f"wrote {path}")
    for name in stale:
        print(f"docs/{name} differs from what the code gives: run python docs/build.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
