"""``autoft report``: one self-contained HTML page about a run, from the files in its directory.

The page reads what a run directory holds (``metrics.json``, ``decisions.jsonl``, ``data_values.csv``,
``noise.json``, ``test_predictions.jsonl``) — or, for the output of ``autoft run``, its ``comparison.json`` and the
plain and autonomous runs beside it, shown side by side — and shows: the before/after table; learning curves; the
agent's rewards, its selections over time and its estimated noise rate; the histogram of data values; per class the
samples most likely mislabelled, with the given and suggested label and the action taken; then per task family the
test predictions (:mod:`autoft.reporting.predictions`): confusion matrices, per-label scores, NER sentences with
their entities highlighted, answers, or outputs before and after fine-tuning. Plots are inline SVG (matplotlib), so
the page needs nothing else.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, cast

import numpy as np

from autoft.io import read_jsonl, write_text_atomic
from autoft.reporting import figures
from autoft.reporting.files import Report, RunFiles, read_report
from autoft.reporting.markup import element_id, escape, figure, table
from autoft.reporting.predictions import predictions_section

SUSPECTS_PER_CLASS = 5
STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}th,td{border:1px solid #ccc;padding:3px 8px;font-size:14px}
th{background:#f2f2f2}td.n{text-align:right;font-variant-numeric:tabular-nums}h2{border-bottom:1px solid #ddd}
figure{margin:0.5em 0 1.5em}figure svg{max-width:100%;height:auto}.note{color:#555;font-size:14px}
mark{padding:0 2px;border-radius:3px}mark.gold{background:#cfe8ff}mark.pred{background:#ffe2b3}
td.text{max-width:520px}
"""


def _scalars(metrics: dict[str, Any] | None) -> dict[str, float]:
    return {k: v for k, v in (metrics or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


def _summary(report: Report) -> str:
    """Task, model and sizes of each run."""
    policy = (report.job or {}).get("policy")

    def facts(run: RunFiles) -> list[Any]:
        metrics, sizes = run.metrics, run.metrics.get("sizes") or {}
        return [
            run.task,
            metrics.get("model", run.config.get("model", "")),
            metrics.get("policy") or policy or "none",
            sizes.get("train", ""),
            sizes.get("validation", ""),
            sizes.get("test", ""),
            metrics.get("best_epoch", ""),
            metrics.get("wall_seconds", ""),
        ]

    names = [
        "task",
        "model",
        "policy",
        "training samples",
        "validation samples",
        "test samples",
        "best epoch",
        "wall seconds",
    ]
    columns = [facts(run) for run in report.runs]
    header = ["run", "value"] if len(report.runs) == 1 else ["run", *(run.title for run in report.runs)]
    return table(header, [[name, *(c[i] for c in columns)] for i, name in enumerate(names)], table_id="summary")


def _before_after(report: Report) -> str:
    job, run = report.job, report.runs[-1]
    if job is not None and "autonomous" in job:
        plain, agent, zero = job["plain"]["test"] or {}, job["autonomous"]["test"] or {}, job.get("zero_shot") or {}
        header = [
            "test metric",
            *(["before fine-tuning (zero-shot)"] if zero else []),
            "plain fine-tuning",
            f"autonomous ({job.get('policy')})",
            "change",
        ]
        rows = [
            [k, *([zero.get(k, "–")] if zero else []), v, agent[k], agent[k] - v]
            for k, v in _scalars(plain).items()
            if isinstance(agent.get(k), (int, float))
        ]
        rows.append(
            [
                "wall seconds",
                *([""] if zero else []),
                job["plain"]["wall_seconds"],
                job["autonomous"]["wall_seconds"],
                "",
            ]
        )
        return table(header, rows, table_id="before-after") + _served(job)
    test, zero = _scalars(run.metrics.get("test")), _scalars(run.metrics.get("zero_shot"))
    if not test:
        return '<p class="note">No test set: see the validation scores below.</p>'
    if zero:
        rows = [[k, zero.get(k, "–"), v, v - zero[k] if k in zero else ""] for k, v in test.items()]
        return table(
            ["test metric", "before fine-tuning (zero-shot)", "fine-tuned", "change"], rows, table_id="before-after"
        )
    return table(["test metric", "fine-tuned"], [[k, v] for k, v in test.items()], table_id="before-after")


def _served(job: dict[str, Any]) -> str:
    """Which run a command given the job's folder uses (``comparison.json``'s ``better``), when the job says."""
    better = job.get("better")
    if not isinstance(better, dict) or better.get("run") not in ("plain", "autonomous"):
        return ""
    why = f" ({escape(better['why'])})" if better.get("why") else ""
    return (
        f'<p class="note" id="served">autoft serve, predict, evaluate and export given this folder use its '
        f"<b>{escape(better['run'])}</b> run, the better on validation{why}.</p>"
    )


def _validation(report: Report) -> str:
    scores = [_scalars(run.metrics.get("validation")) for run in report.runs]
    keys = list(dict.fromkeys(k for s in scores for k in s))
    header = [
        "validation metric",
        *(
            ["at the best epoch"]
            if len(report.runs) == 1
            else [f"{run.title}, at its best epoch" for run in report.runs]
        ),
    ]
    return table(header, [[k, *(s.get(k) for s in scores)] for k in keys], table_id="validation")


PLOTTED_METRICS = ("macro_f1", "f1", "micro_f1", "exact_match", "accuracy")
"""The validation score the learning curves plot: the task's main metric (``metrics.json``'s ``primary_metric``, or
the job's ``comparison.json`` ``better.metric``), else, for a run written before either, the first of these the run
has (the loss when none: generative tasks validate by loss)."""


def _validation_metric(report: Report, run: RunFiles) -> str:
    validation = run.metrics["epochs"][0].get("validation") or {}
    scores = [k for k, v in validation.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    better = (report.job or {}).get("better")
    named = better.get("metric") if isinstance(better, dict) else None
    return cast(
        str, next((k for k in (run.metrics.get("primary_metric"), named, *PLOTTED_METRICS) if k in scores), "loss")
    )


def _learning(report: Report) -> str:
    """One figure with every run's learning curves, then each run's epochs as a table."""
    runs = [run for run in report.runs if run.metrics.get("epochs")]
    if not runs:
        return ""
    metric = _validation_metric(report, runs[0])
    curves = figures.learning_curves(
        [(run.title, run.metrics["epochs"], run.metrics.get("best_epoch")) for run in runs], metric
    )
    parts = [
        "<h2>Learning curves</h2>",
        figure(
            curves,
            "Training loss (solid) and validation loss (dashed) per epoch"
            + ("" if metric == "loss" else f", and the validation {metric}")
            + "; the dotted line marks the best "
            "epoch, whose weights the run keeps" + (", one colour per run." if len(runs) > 1 else "."),
            "learning-curves",
        ),
    ]
    for run in runs:
        rows = [
            [
                e["epoch"],
                e.get("train_loss"),
                (e.get("validation") or {}).get("loss"),
                *([(e.get("validation") or {}).get(metric)] if metric != "loss" else []),
                e.get("samples"),
            ]
            for e in run.metrics["epochs"]
        ]
        header = [
            "epoch",
            "training loss",
            "validation loss",
            *([f"validation {metric}"] if metric != "loss" else []),
            "samples trained on",
        ]
        parts.append(
            (f"<h3>Epochs: {escape(run.title)}</h3>" if len(runs) > 1 else "")
            + table(header, rows, table_id=element_id("epochs", run.key))
        )
    return "".join(parts)


def _agent(report: Report) -> str:
    """The agent's estimates, rewards, selections and data values (the autonomous run's, or a single run's)."""
    parts = []
    decisions_path, noise_path = report.agent_file("decisions.jsonl"), report.agent_file("noise.json")
    if noise_path is not None:
        noise = json.loads(noise_path.read_text(encoding="utf-8"))
        rows = [["estimated noise rate", noise.get("rate")], ["share left out", noise.get("drop_fraction")]]
        if noise.get("em_rate") is not None and noise.get("em_rate") != noise.get("rate"):
            rows.insert(1, ["EM's rate, above the lower bound acted on (small data)", noise["em_rate"]])
        rows += [[f"noise rate of {k}", v] for k, v in (noise.get("per_class") or {}).items()]
        units = noise.get("units", "labels")
        parts.append(
            f"<p>The agent was never told the noise rate; it estimated it from the data ({escape(units)}"
            ").</p>" + table(["estimate", "value"], rows, table_id="noise")
        )
    if decisions_path is not None:
        decisions = read_jsonl(decisions_path)
        rewards = [d for d in decisions if d.get("event") == "reward" and d.get("phase") == "online"]
        if rewards:
            parts.append(
                figure(
                    figures.reward_curve(
                        [float(d["reward"]) for d in rewards], [float(d["validation"]) for d in rewards]
                    ),
                    f"{len(rewards)} online updates: the reward is the gain of the agent's validation "
                    "score since the one before.",
                    "rewards",
                )
            )
        selections = [d for d in decisions if d.get("event") == "select"]
        if selections:
            parts.append(
                figure(
                    figures.actions(
                        [d["epoch"] for d in selections],
                        [d["kept"] for d in selections],
                        [d["dropped"] for d in selections],
                    ),
                    "How many training samples each epoch trained on and left out.",
                    "actions",
                )
            )
        guards = [d for d in decisions if d.get("event") in ("idle", "back-off", "class-warning")]
        if guards:
            rows = [
                [
                    f"from epoch {d['epoch']}" if d.get("epoch") else "before training",
                    d.get("why", "nothing to act on")
                    if d["event"] == "idle"
                    else f"behind plain fine-tuning on validation: it now leaves out {d['drop_fraction']:.0%}"
                    if d["event"] == "back-off"
                    else f"class {d['class']!r} lost {d['left_out']} of its {d['rows']} rows; it trains on "
                    f"{d['effective']} ({d['relabelled_in']} relabelled into it)",
                ]
                for d in guards
            ]
            parts.append("<h3>Where the agent held back</h3>" + table(["when", "what"], rows, table_id="held-back"))
    values_path = report.agent_file("data_values.csv")
    if values_path is not None:
        valued = _read_csv(values_path)
        if valued:
            values = np.array([float(r["value"]) for r in valued])
            flagged = np.array([r.get("flagged") == "True" for r in valued])
            parts.append(
                figure(
                    figures.value_histogram(values, flagged),
                    f"{len(valued)} training samples valued; {int(flagged.sum())} flagged.",
                    "values",
                )
            )
            parts.append(_suspects(valued))
    title = "The agent" + (f" ({escape(report.agent_run.title)})" if len(report.runs) > 1 else "")
    return f"<h2>{title}</h2>" + "".join(parts) if parts else ""


def _suspects(values: list[dict[str, str]]) -> str:
    if "given_label" in values[0]:  # classification and NER: per given class, the most likely wrong
        by_class: dict[str, list[dict[str, str]]] = {}
        for row in sorted(values, key=lambda r: -float(r.get("label_noise_probability") or 0)):
            by_class.setdefault(row["given_label"], []).append(row)
        rows = [
            [
                c,
                r["text"][:200],
                r["given_label"],
                r["suggested_label"],
                float(r.get("label_noise_probability") or 0),
                r.get("action", ""),
            ]
            for c in sorted(by_class)
            for r in by_class[c][:SUSPECTS_PER_CLASS]
        ]
        return "<h3>Most likely mislabelled, per given class</h3>" + table(
            ["given class", "text", "given label", "suggested label", "P(label wrong)", "action"],
            rows,
            numeric_from=4,
            table_id="suspects",
        )
    rows = [
        [r["prompt"][:160], r["response"][:160], float(r["mismatch_probability"]), r["flagged"]]
        for r in values[: SUSPECTS_PER_CLASS * 4]
    ]
    return "<h3>Responses least likely to belong to their prompts</h3>" + table(
        ["prompt", "response", "P(mismatched)", "flagged"], rows, numeric_from=2, table_id="suspects"
    )


def render(path: str | Path) -> str:
    """The report's HTML for a run directory, or for the output folder of ``autoft run``."""
    report = read_report(path)
    name = escape(report.folder.name)
    body = (
        f"<h1>autoft report: {name}</h1>{_summary(report)}<h2>Before and after</h2>{_before_after(report)}"
        f"{_validation(report)}{_learning(report)}{_agent(report)}{predictions_section(report)}"
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>autoft report: {name}</title>'
        f"<style>{STYLE}</style></head><body>{body}</body></html>\n"
    )


def write_report(path: str | Path) -> Path:
    """Write ``report.html`` into the run directory (atomically) and return its path."""
    page = render(path)
    output = Path(path) / "report.html"
    write_text_atomic(output, page)
    return output


__all__ = ["render", "write_report"]
