"""autoft report: one self-contained page, looked at in headless Chromium (every plot renders, the tables hold the
run's numbers), for a classification job with the agent, an NER run and a generative run; a missing or
half-written run is a one-line error."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess

import pytest

import autoft
from autoft.autonomous import run as full_job
from autoft.cli import main
from tests.conftest import synthetic_rows, tiny_config, write_csv

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHECKS = """
<script>
window.addEventListener('load', () => {
  const pictures = [...document.querySelectorAll('svg, img')].filter(e => !e.parentElement.closest('svg'));
  const sizes = pictures.map(e => e.tagName.toLowerCase() === 'img' ? [e.naturalWidth, e.naturalHeight]
                                    : [e.getBoundingClientRect().width, e.getBoundingClientRect().height]);
  const tables = {};
  for (const t of document.querySelectorAll('table[id]'))
    tables[t.id] = [...t.querySelectorAll('tr')].map(r => [...r.children].map(c => c.textContent.trim()));
  const out = document.createElement('pre');
  out.id = 'checks';
  out.textContent = JSON.stringify({figures: [...document.querySelectorAll('figure')].map(f => f.id), sizes, tables});
  document.body.appendChild(out);
});
</script>
"""


def look(page, tmp_path) -> dict:
    """Open ``page`` in headless Chromium; what its scripts measured: figure ids, each picture's rendered size and
    every table's cell text."""
    if CHROMIUM is None:
        pytest.skip("headless Chromium is not installed (Debian package chromium; .ci/run installs it)")
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", CHECKS + "</body>"), encoding="utf-8")
    result = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             "--disable-background-networking", "--disable-component-update", "--disable-sync",
                             "--disable-quic", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
                             "--dump-dom", probe.as_uri()], check=False, capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="checks">(.*?)</pre>', result.stdout, re.DOTALL)
    assert found, result.stderr[-2000:]
    import html

    return json.loads(html.unescape(found.group(1)))


def _noisy(tmp_path):
    rng = random.Random(0)
    labels = sorted({label for _, label in synthetic_rows(30, 0)})
    rows = [(text, rng.choice([x for x in labels if x != label]) if rng.random() < 0.3 else label)
            for text, label in synthetic_rows(150, 0)]
    return {"train": write_csv(tmp_path / "train.csv", rows),
            "validation": write_csv(tmp_path / "val.csv", synthetic_rows(45, 1)),
            "test": write_csv(tmp_path / "test.csv", synthetic_rows(30, 2))}


def test_the_report_of_an_agent_job_renders_every_plot_and_holds_the_run_s_numbers(tmp_path, tiny_model_dir):
    config = tiny_config(tiny_model_dir, _noisy(tmp_path), tmp_path / "job", epochs=2)
    config["selection"] = {"policy": "exp3", "drop_fraction": 0.3}
    comparison = full_job(config)
    page = tmp_path / "job" / "report.html"
    assert comparison["report"] == str(page) and page.is_file()  # autoft run writes it
    seen = look(page, tmp_path)
    assert {"learning-curves", "rewards", "actions", "values", "confusion"} <= set(seen["figures"])
    assert seen["sizes"] and all(w > 50 and h > 50 for w, h in seen["sizes"]), seen["sizes"]
    table = {row[0]: row[1:] for row in seen["tables"]["before-after"][1:]}
    for key in ("macro_f1", "accuracy"):
        plain, agent = comparison["plain"]["test"][key], comparison["autonomous"]["test"][key]
        assert table[key][:2] == [f"{plain:.4f}", f"{agent:.4f}"], (key, table[key])
    noise = json.loads((tmp_path / "job" / "noise.json").read_text())
    assert dict(seen["tables"]["noise"][1:])["estimated noise rate"] == f"{noise['rate']:.4f}"
    suspects = seen["tables"]["suspects"]
    assert suspects[0][:4] == ["given class", "text", "given label", "suggested label"] and len(suspects) > 3
    epochs = json.loads((tmp_path / "job" / "autonomous" / "metrics.json").read_text())["epochs"]
    assert [row[0] for row in seen["tables"]["epochs"][1:]] == [str(e["epoch"]) for e in epochs]
    # autoft report rewrites it; a single run directory has a page too.
    page.unlink()
    assert main(["report", str(tmp_path / "job")]) == 0 and page.is_file()
    assert main(["report", str(tmp_path / "job" / "plain")]) == 0
    single = look(tmp_path / "job" / "plain" / "report.html", tmp_path)
    assert "confusion" in single["figures"] and "rewards" not in single["figures"]


def test_ner_sentences_show_their_entities(tmp_path, tiny_model_dir, ner_files):
    run = autoft.train(tiny_config(tiny_model_dir, ner_files, tmp_path / "ner", task="token-classification",
                                   epochs=2))
    assert main(["report", str(run.path)]) == 0
    seen = look(run.path / "report.html", tmp_path)
    examples = seen["tables"]["ner-examples"]
    assert len(examples) > 1 and any("PER" in cell for cell in examples[1])
    assert "<mark class=\"gold\"" in (run.path / "report.html").read_text()


def test_a_generative_report_shows_outputs_before_and_after(tmp_path, tiny_gpt2):
    rows = [{"prompt": f"say {w}", "response": w} for w in ("apple", "river", "stone", "cloud")] * 6
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = autoft.train({"task": "generation", "model": str(tiny_gpt2), "output_dir": str(tmp_path / "gen"),
                        "data": {"train": str(path), "validation": str(path), "test": str(path)},
                        "training": {"epochs": 2, "batch_size": 8, "learning_rate": 1e-2, "progress": False},
                        "generation": {"max_new_tokens": 3}})
    assert main(["report", str(run.path)]) == 0
    seen = look(run.path / "report.html", tmp_path)
    outputs = seen["tables"]["outputs"]
    assert outputs[0] == ["prompt", "reference", "before (zero-shot)", "after"] and outputs[1][0] == "say apple"
    predictions = [json.loads(line) for line in (run.path / "test_predictions.jsonl").open()]
    assert outputs[1][3] == predictions[0]["prediction"].strip() and "zero_shot" in predictions[0]
    zero = {r[0]: r[1] for r in seen["tables"]["before-after"][1:]}
    assert zero["loss"] == f"{run.metrics['zero_shot']['loss']:.4f}"


def test_a_missing_or_half_written_run_is_one_line_exit_2(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "run directory not found" in capsys.readouterr().err
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.yaml").write_text("task: classification\n")
    assert main(["report", str(tmp_path / "half")]) == 2
    err = capsys.readouterr().err
    assert "missing metrics.json" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "half" / "metrics.json").write_text('{"task": ')
    assert main(["report", str(tmp_path / "half")]) == 2
    assert "damaged" in capsys.readouterr().err and not (tmp_path / "half" / "report.html").exists()
