"""``autoft report``: one self-contained HTML page about a run, from the files in its directory.

The page reads what a run directory holds (``metrics.json``, ``decisions.jsonl``, ``data_values.csv``,
``noise.json``, ``test_predictions.jsonl``) — or, for the output of ``autoft run``, its ``comparison.json`` and the
autonomous run beside it — and shows: the before/after table; learning curves; the agent's rewards, its selections
over time and its estimated noise rate; the histogram of data values; per class the samples most likely
mislabelled, with the given and suggested label and the action taken; the confusion matrix; NER sentences with
their entities highlighted; for generative tasks, test outputs before and after fine-tuning. Plots are inline
SVG (matplotlib), so the page needs nothing else.
"""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from autoft.errors import RunDirError
from autoft.io import read_jsonl, write_text_atomic
from autoft.reporting import figures

SUSPECTS_PER_CLASS = 5
EXAMPLES = 8
STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}th,td{border:1px solid #ccc;padding:3px 8px;font-size:14px}
th{background:#f2f2f2}td.n{text-align:right;font-variant-numeric:tabular-nums}h2{border-bottom:1px solid #ddd}
figure{margin:0.5em 0 1.5em}figure svg{max-width:100%;height:auto}.note{color:#555;font-size:14px}
mark{padding:0 2px;border-radius:3px}mark.gold{background:#cfe8ff}mark.pred{background:#ffe2b3}
td.text{max-width:520px}
"""


def _escape(value: Any) -> str:
    return html.escape(str(value))


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else _escape(value)


def _table(header: list[str], rows: list[list[Any]], *, numeric_from: int = 1, table_id: str = "") -> str:
    head = "".join(f"<th>{_escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f'<td class="n">{_number(cell)}</td>' if i >= numeric_from and isinstance(cell, (int, float))
        else f'<td class="text">{_escape(cell)}</td>' for i, cell in enumerate(row)) + "</tr>" for row in rows)
    identifier = f' id="{table_id}"' if table_id else ""
    return f"<table{identifier}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(svg: str, caption: str, figure_id: str) -> str:
    return f'<figure id="{figure_id}">{svg}<figcaption class="note">{_escape(caption)}</figcaption></figure>'


def _scalars(metrics: dict[str, Any] | None) -> dict[str, float]:
    return {k: v for k, v in (metrics or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


class RunFiles:
    """What one run directory holds, read once."""

    def __init__(self, folder: Path) -> None:
        for name in ("config.yaml", "metrics.json"):
            if not (folder / name).is_file():
                raise RunDirError(f"{folder}: not a finished autoft run (missing {name})")
        self.folder = folder
        try:
            self.config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8")) or {}
            self.metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        except (yaml.YAMLError, json.JSONDecodeError) as error:
            raise RunDirError(f"{folder}: a run file is damaged ({error.__class__.__name__}): {error}") from None
        labels = folder / "labels.json"
        self.labels = json.loads(labels.read_text(encoding="utf-8"))["labels"] if labels.is_file() else []
        self.task = self.metrics.get("task") or self.config.get("task", "classification")

    def optional(self, name: str) -> Path | None:
        path = self.folder / name
        return path if path.is_file() else None


def _before_after(job: dict[str, Any] | None, run: RunFiles) -> str:
    if job is not None and "autonomous" in job:
        plain, agent, zero = job["plain"]["test"] or {}, job["autonomous"]["test"] or {}, job.get("zero_shot") or {}
        header = ["test metric", *(["before fine-tuning (zero-shot)"] if zero else []), "plain fine-tuning",
                  f"autonomous ({job.get('policy')})", "change"]
        rows = [[k, *([zero.get(k, "–")] if zero else []), v, agent[k], agent[k] - v]
                for k, v in _scalars(plain).items() if isinstance(agent.get(k), (int, float))]
        rows.append(["wall seconds", *([""] if zero else []), job["plain"]["wall_seconds"],
                     job["autonomous"]["wall_seconds"], ""])
        return _table(header, rows, table_id="before-after")
    test, zero = _scalars(run.metrics.get("test")), _scalars(run.metrics.get("zero_shot"))
    if not test:
        return '<p class="note">No test set: see the validation scores below.</p>'
    if zero:
        rows = [[k, zero.get(k, "–"), v, v - zero[k] if k in zero else ""] for k, v in test.items()]
        return _table(["test metric", "before fine-tuning (zero-shot)", "fine-tuned", "change"], rows,
                      table_id="before-after")
    return _table(["test metric", "fine-tuned"], [[k, v] for k, v in test.items()], table_id="before-after")


def _learning(run: RunFiles) -> str:
    epochs = run.metrics.get("epochs") or []
    if not epochs:
        return ""
    validation = epochs[0].get("validation") or {}
    metric = next((k for k in validation if k != "loss" and isinstance(validation[k], (int, float))), "loss")
    rows = [[e["epoch"], e.get("train_loss"), *[(e.get("validation") or {}).get(k) for k in ("loss", metric)
                                                  if metric != "loss" or k == "loss"], e.get("samples")]
            for e in epochs]
    header = ["epoch", "training loss", "validation loss", *([f"validation {metric}"] if metric != "loss" else []),
              "samples trained on"]
    return ("<h2>Learning curves</h2>"
            + _figure(figures.learning_curves(epochs, metric, run.metrics.get("best_epoch")),
                      "Training loss and validation scores per epoch; the dotted line is the best epoch, whose "
                      "weights the run keeps.", "learning-curves")
            + _table(header, rows, table_id="epochs"))


def _agent(run: RunFiles, folder: Path) -> str:
    def agent_file(name: str) -> Path | None:  # the report's folder first (autoft run copies them there), then the run's
        return folder / name if (folder / name).is_file() else run.optional(name)

    parts = []
    decisions_path, noise_path = agent_file("decisions.jsonl"), agent_file("noise.json")
    if noise_path is not None:
        noise = json.loads(noise_path.read_text(encoding="utf-8"))
        rows = [["estimated noise rate", noise.get("rate")], ["share left out", noise.get("drop_fraction")]]
        rows += [[f"noise rate of {k}", v] for k, v in (noise.get("per_class") or {}).items()]
        units = noise.get("units", "labels")
        parts.append(f"<p>The agent was never told the noise rate; it estimated it from the data ({_escape(units)}"
                     ").</p>" + _table(["estimate", "value"], rows, table_id="noise"))
    if decisions_path is not None:
        decisions = read_jsonl(decisions_path)
        rewards = [d for d in decisions if d.get("event") == "reward" and d.get("phase") == "online"]
        if rewards:
            parts.append(_figure(figures.reward_curve([float(d["reward"]) for d in rewards],
                                                      [float(d["validation"]) for d in rewards]),
                                 f"{len(rewards)} online updates: the reward is the gain of the agent's validation "
                                 "score since the one before.", "rewards"))
        selections = [d for d in decisions if d.get("event") == "select"]
        if selections:
            parts.append(_figure(figures.actions([d["epoch"] for d in selections], [d["kept"] for d in selections],
                                                 [d["dropped"] for d in selections]),
                                 "How many training samples each epoch trained on and left out.", "actions"))
    values_path = agent_file("data_values.csv")
    if values_path is not None:
        table = _read_csv(values_path)
        if table:
            values = np.array([float(r["value"]) for r in table])
            flagged = np.array([r.get("flagged") == "True" for r in table])
            parts.append(_figure(figures.value_histogram(values, flagged),
                                 f"{len(table)} training samples valued; {int(flagged.sum())} flagged.", "values"))
            parts.append(_suspects(table))
    return "<h2>The agent</h2>" + "".join(parts) if parts else ""


def _suspects(table: list[dict[str, str]]) -> str:
    if "given_label" in table[0]:  # classification and NER: per given class, the most likely wrong
        by_class: dict[str, list[dict[str, str]]] = {}
        for row in sorted(table, key=lambda r: -float(r.get("label_noise_probability") or 0)):
            by_class.setdefault(row["given_label"], []).append(row)
        rows = [[c, r["text"][:200], r["given_label"], r["suggested_label"],
                 float(r.get("label_noise_probability") or 0), r.get("action", "")]
                for c in sorted(by_class) for r in by_class[c][:SUSPECTS_PER_CLASS]]
        return ("<h3>Most likely mislabelled, per given class</h3>"
                + _table(["given class", "text", "given label", "suggested label", "P(label wrong)", "action"], rows,
                         numeric_from=4, table_id="suspects"))
    rows = [[r["prompt"][:160], r["response"][:160], float(r["mismatch_probability"]), r["flagged"]]
            for r in table[: SUSPECTS_PER_CLASS * 4]]
    return ("<h3>Responses least likely to belong to their prompts</h3>"
            + _table(["prompt", "response", "P(mismatched)", "flagged"], rows, numeric_from=2, table_id="suspects"))


def _predictions(run: RunFiles) -> str:
    path = run.optional("test_predictions.jsonl")
    if path is None:
        return ""
    rows = read_jsonl(path)
    if not rows:
        return ""
    if run.task in ("classification", "relation-extraction") and run.labels:
        index = {label: i for i, label in enumerate(run.labels)}
        matrix = np.zeros((len(run.labels), len(run.labels)), dtype=np.int64)
        for row in rows:
            if row["gold"] in index and row["prediction"] in index:
                matrix[index[row["gold"]], index[row["prediction"]]] += 1
        accuracy = np.trace(matrix) / max(matrix.sum(), 1)
        return ("<h2>Test predictions</h2>" + _figure(figures.confusion(matrix, run.labels),
                                                      f"{matrix.sum()} test samples, accuracy {accuracy:.4f}.",
                                                      "confusion"))
    if run.task == "token-classification":
        return "<h2>Test sentences</h2>" + _ner_examples(rows)
    if "zero_shot" in rows[0] and run.task in ("generation", "seq2seq"):
        shown = [[row["input"] if isinstance(row["input"], str) else " | ".join(
            f"{m['role']}: {m['content']}" for m in row["input"]), (row["gold"] or [""])[0], row["zero_shot"],
            row["prediction"]] for row in rows[:EXAMPLES]]
        return ("<h2>Outputs before and after fine-tuning</h2>"
                + _table(["prompt", "reference", "before (zero-shot)", "after"], shown, numeric_from=99,
                         table_id="outputs"))
    if run.task == "question-answering":
        shown = [[row.get("question", ""), ", ".join(a["text"] for a in row["gold"] or []),
                  (row.get("zero_shot") or {}).get("answer", ""), (row["prediction"] or {}).get("answer", "")]
                 for row in rows[:EXAMPLES]]
        return ("<h2>Answers before and after fine-tuning</h2>"
                + _table(["question", "gold answers", "before (zero-shot)", "after"], shown, numeric_from=99,
                         table_id="outputs"))
    return ""


def _highlight(tokens: list[str], tags: list[str], kind: str) -> str:
    from seqeval.metrics.sequence_labeling import get_entities

    starts = {start: (label, end) for label, start, end in get_entities(list(tags))}
    out, i = [], 0
    while i < len(tokens):
        if i in starts:
            label, end = starts[i]
            words = " ".join(_escape(t) for t in tokens[i : end + 1])
            out.append(f'<mark class="{kind}" title="{_escape(label)}">{words} <sub>{_escape(label)}</sub></mark>')
            i = end + 1
        else:
            out.append(_escape(tokens[i]))
            i += 1
    return " ".join(out)


def _ner_examples(rows: list[dict[str, Any]]) -> str:
    chosen = [r for r in rows if any(t != "O" for t in r["gold"] or [])][:EXAMPLES] or rows[:EXAMPLES]
    body = "".join(f"<tr><td>{_highlight(r['input'], r['gold'], 'gold')}</td>"
                   f"<td>{_highlight(r['input'], r['prediction'], 'pred')}</td></tr>" for r in chosen)
    return ('<table id="ner-examples"><thead><tr><th>gold entities</th><th>predicted entities</th></tr></thead>'
            f"<tbody>{body}</tbody></table>")


def render(path: str | Path) -> str:
    """The report's HTML for a run directory, or for the output folder of ``autoft run``."""
    folder = Path(path)
    if not folder.is_dir():
        raise RunDirError(f"{folder}: run directory not found")
    job = None
    if (folder / "comparison.json").is_file():
        job = json.loads((folder / "comparison.json").read_text(encoding="utf-8"))
        inner = folder / ("autonomous" if (folder / "autonomous").is_dir() else "plain")
        run = RunFiles(inner)
    else:
        run = RunFiles(folder)
    metrics = run.metrics
    sizes = metrics.get("sizes") or {}
    policy = job.get("policy") if job else metrics.get("policy")
    summary = _table(["run", "value"], [
        ["task", run.task], ["model", metrics.get("model", run.config.get("model", ""))],
        ["policy", policy or "none"], ["training samples", sizes.get("train", "")],
        ["validation samples", sizes.get("validation", "")], ["test samples", sizes.get("test", "")],
        ["best epoch", metrics.get("best_epoch", "")], ["wall seconds", metrics.get("wall_seconds", "")],
    ], table_id="summary")
    validation = _table(["validation metric", "at the best epoch"], [[k, v] for k, v in
                                                              _scalars(metrics.get("validation")).items()],
                        table_id="validation")
    body = (f"<h1>autoft report: {_escape(folder.name)}</h1>{summary}<h2>Before and after</h2>"
            f"{_before_after(job, run)}{validation}{_learning(run)}{_agent(run, folder)}{_predictions(run)}")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>autoft report: '
            f"{_escape(folder.name)}</title><style>{STYLE}</style></head><body>{body}</body></html>\n")


def write_report(path: str | Path) -> Path:
    """Write ``report.html`` into the run directory (atomically) and return its path."""
    page = render(path)
    output = Path(path) / "report.html"
    write_text_atomic(output, page)
    return output


__all__ = ["render", "write_report"]
