"""Look at an HTML page in headless Chromium: what its pictures and tables render to, and every console message.

``look(page, tmp_path)`` opens a copy of ``page`` with two scripts added: one at the very start of the document
that records uncaught errors, failed resource loads and ``console.error`` / ``console.warn`` calls, and one that
measures the page once it has loaded. It returns a dict:

* ``figures``: the ids of the ``<figure>`` elements, in page order;
* ``texts``: per figure id, its text (an SVG's ``<text>`` elements, then the caption), whitespace collapsed;
* ``sizes``: [width, height] of each picture (inline ``<svg>`` outside another svg, ``<img>``) as rendered;
* ``tables``: per ``<table id=...>``, its rows as lists of cell texts;
* ``errors``: what the page's scripts hit (uncaught errors, failed loads, ``console.error`` / ``console.warn``);
* ``console``: every console message Chromium logged for the page (``--enable-logging=stderr``), which also holds
  what Blink reports itself, such as an SVG attribute it cannot parse. A page without scripts logs none.

``console_problems(seen)`` joins the last two, for ``assert not console_problems(seen), console_problems(seen)``.
Without Chromium, ``look`` skips the calling test (``SKIP_REASON``); ``requires_chromium`` skips a whole test up front.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SKIP_REASON = "headless Chromium is not installed (Debian package chromium; .ci/run installs it)"
requires_chromium = pytest.mark.skipif(CHROMIUM is None, reason=SKIP_REASON)

RECORDER = """<script>
window.__problems = [];
window.addEventListener('error', e => window.__problems.push(e.message ? 'uncaught: ' + e.message
  : 'failed to load: ' + ((e.target && (e.target.src || e.target.href)) || e.target)), true);
window.addEventListener('unhandledrejection', e => window.__problems.push('unhandled rejection: ' + e.reason));
for (const level of ['error', 'warn']) {
  const original = console[level].bind(console);
  console[level] = (...args) => { window.__problems.push(level + ': ' + args.join(' ')); original(...args); };
}
</script>"""
CHECKS = r"""<script>
window.addEventListener('load', () => {
  const pictures = [...document.querySelectorAll('svg, img')].filter(e => !e.parentElement.closest('svg'));
  const sizes = pictures.map(e => e.tagName.toLowerCase() === 'img' ? [e.naturalWidth, e.naturalHeight]
                                    : [e.getBoundingClientRect().width, e.getBoundingClientRect().height]);
  const tables = {};
  for (const t of document.querySelectorAll('table[id]'))
    tables[t.id] = [...t.querySelectorAll('tr')].map(r => [...r.children].map(c => c.textContent.trim()));
  const out = document.createElement('pre');
  out.id = 'checks';
  const figures = [...document.querySelectorAll('figure')];
  const texts = Object.fromEntries(figures.filter(f => f.id).map(f => [f.id, f.textContent.replace(/\s+/g, ' ')]));
  out.textContent = JSON.stringify({figures: figures.map(f => f.id), texts, sizes, tables, errors: window.__problems});
  document.body.appendChild(out);
});
</script>"""
CONSOLE = re.compile(r":CONSOLE(?:\(\d+\))?:?\d*\] (.*)$", re.MULTILINE)


def _probe(page: str) -> str:
    """``page`` with the recorder first (before anything of the page's own runs) and the checks last."""
    start = re.search(r"<head[^>]*>|<html[^>]*>", page, re.IGNORECASE)
    at = start.end() if start else 0
    page = page[:at] + RECORDER + page[at:]
    end = page.lower().rfind("</body>")
    return page[:end] + CHECKS + page[end:] if end >= 0 else page + CHECKS


def look(page_path: str | Path, tmp_path: Path) -> dict:
    """Open ``page_path`` in headless Chromium; what it rendered and logged (see the module docstring)."""
    if CHROMIUM is None:
        pytest.skip(SKIP_REASON)
    page_path = Path(page_path)
    probe = tmp_path / f"probe-{page_path.stem}.html"
    probe.write_text(_probe(page_path.read_text(encoding="utf-8")), encoding="utf-8")
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--enable-logging=stderr",
            "--v=0",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            probe.as_uri(),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r'<pre id="checks">(.*?)</pre>', result.stdout, re.DOTALL)
    assert found, f"the page never finished loading in Chromium: {result.stderr[-2000:]}"
    seen = json.loads(html.unescape(found.group(1)))
    seen["console"] = CONSOLE.findall(result.stderr)
    return seen


def console_problems(seen: dict) -> list[str]:
    """Everything the page logged or hit, for ``assert not console_problems(seen), console_problems(seen)``."""
    return [*seen["errors"], *seen["console"]]
