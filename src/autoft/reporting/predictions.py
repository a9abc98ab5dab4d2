"""The report's test-set section, per task family, from each run's ``test_predictions.jsonl``.

What a row holds per family (``autoft.rundir.write_test_predictions``; ``gold`` and ``prediction`` as the adapter
decodes them): classification and relation extraction, a label each; multi-label classification, a list of labels
each; token classification, ``input`` a list of words and a tag per word each; question answering, ``input`` the
context, ``question``, ``gold`` a list of ``{"text", "start"}`` answers, ``prediction`` the answer text; generation
and seq2seq, ``input`` a prompt (or a list of chat messages), ``gold`` a list of references, ``prediction`` a text.
Tasks whose targets are texts also hold ``zero_shot``, the output of the model before fine-tuning. Every section
shows each run of the report side by side.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autoft.reporting import figures
from autoft.reporting.files import Report, RunFiles
from autoft.reporting.markup import Html, escape, figure, table

EXAMPLES = 8
SNIPPET = 80  # characters of a question's context shown on either side of its gold answer


def _one_label(runs: list[RunFiles]) -> str:
    """Classification and relation extraction: the confusion matrices side by side, then test samples some run
    got wrong."""
    labels = runs[0].labels
    index = {label: i for i, label in enumerate(labels)}
    matrices, captions, parts = [], [], []
    for run in runs:
        matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
        for row in run.predictions:
            if row["gold"] in index and row["prediction"] in index:
                matrix[index[row["gold"]], index[row["prediction"]]] += 1
        matrices.append((run.title, matrix))
        accuracy = np.trace(matrix) / max(matrix.sum(), 1)
        captions.append(f"{run.title}: {matrix.sum()} test samples, accuracy {accuracy:.4f}")
    if labels:
        parts.append(figure(figures.confusion(matrices, labels), "; ".join(captions) + ".", "confusion"))
    wrong = [i for i, row in enumerate(runs[0].predictions) if any(_differs(run, i) for run in runs)][:EXAMPLES]
    if wrong:
        rows = [
            [runs[0].predictions[i]["input"], runs[0].predictions[i]["gold"], *(_at(run, i) for run in runs)]
            for i in wrong
        ]
        parts.append(
            "<h3>Test samples a run got wrong</h3>"
            + table(
                ["text", "gold label", *(f"predicted: {run.title}" for run in runs)],
                rows,
                numeric_from=99,
                table_id="mistakes",
            )
        )
    return "".join(parts)


def _at(run: RunFiles, i: int) -> Any:
    return run.predictions[i]["prediction"] if i < len(run.predictions) else None


def _differs(run: RunFiles, i: int) -> bool:
    return i < len(run.predictions) and run.predictions[i]["prediction"] != run.predictions[i]["gold"]


def _listed(labels: Any) -> str:
    return ", ".join(labels) if labels else "(none)"


def _label_sets(runs: list[RunFiles]) -> str:
    """Multi-label classification: per label each run's F1 as grouped bars, then sample label sets."""
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    labels, parts = runs[0].labels, []
    if labels:
        binarize = MultiLabelBinarizer(classes=labels).fit([labels])

        def indicators(rows: list[dict[str, Any]], field: str) -> np.ndarray:
            return binarize.transform([[label for label in row[field] or [] if label in labels] for row in rows])

        gold = indicators(runs[0].predictions, "gold")
        scores = [
            (
                run.title,
                [
                    float(s)
                    for s in f1_score(gold, indicators(run.predictions, "prediction"), average=None, zero_division=0)
                ],
            )
            for run in runs
            if len(run.predictions) == len(gold)
        ]
        parts.append(
            figure(
                figures.label_scores(labels, [int(n) for n in gold.sum(axis=0)], scores),
                f"{len(gold)} test samples; F1 of each label over them.",
                "label-scores",
            )
        )
    rows = [
        [row["input"], _listed(row["gold"]), *(_listed(_at(run, i)) for run in runs)]
        for i, row in enumerate(runs[0].predictions[:EXAMPLES])
    ]
    parts.append(
        table(
            ["text", "gold labels", *(f"predicted: {run.title}" for run in runs)],
            rows,
            numeric_from=99,
            table_id="outputs",
        )
    )
    return "".join(parts)


def _highlight(tokens: list[str], tags: list[str], kind: str) -> Html:
    """The sentence with its entities marked (``kind``: ``gold`` or ``pred``, the colour)."""
    from seqeval.metrics.sequence_labeling import get_entities

    starts = {start: (label, end) for label, start, end in get_entities(list(tags))}
    out, i = [], 0
    while i < len(tokens):
        if i in starts:
            label, end = starts[i]
            words = " ".join(escape(t) for t in tokens[i : end + 1])
            out.append(f'<mark class="{kind}" title="{escape(label)}">{words} <sub>{escape(label)}</sub></mark>')
            i = end + 1
        else:
            out.append(escape(tokens[i]))
            i += 1
    return Html(" ".join(out))


def _entities(runs: list[RunFiles]) -> str:
    """Token classification: test sentences with their gold entities and each run's."""
    rows = runs[0].predictions
    chosen = [i for i, r in enumerate(rows) if any(t != "O" for t in r["gold"] or [])][:EXAMPLES] or list(
        range(min(EXAMPLES, len(rows)))
    )
    body = [
        [
            _highlight(rows[i]["input"], rows[i]["gold"] or [], "gold"),
            *(_highlight(rows[i]["input"], _at(run, i) or [], "pred") for run in runs),
        ]
        for i in chosen
    ]
    heads = ["predicted entities"] if len(runs) == 1 else [f"predicted: {run.title}" for run in runs]
    return table(["gold entities", *heads], body, numeric_from=99, table_id="ner-examples")


def _snippet(context: str, answers: list[dict[str, Any]]) -> Html:
    """The part of ``context`` around its first gold answer, the answer marked."""
    first = next(
        (
            a
            for a in answers
            if isinstance(a.get("start"), int)
            and context[a["start"] : a["start"] + len(a.get("text", ""))] == a.get("text")
        ),
        None,
    )
    if first is None:
        return Html(escape(context[: 2 * SNIPPET]) + ("…" if len(context) > 2 * SNIPPET else ""))
    start, end = first["start"], first["start"] + len(first["text"])
    left, right = max(0, start - SNIPPET), min(len(context), end + SNIPPET)
    return Html(
        ("…" if left else "") + escape(context[left:start]) + f'<mark class="gold">{escape(first["text"])}'
        f"</mark>{escape(context[end:right])}" + ("…" if right < len(context) else "")
    )


def _answers(runs: list[RunFiles]) -> str:
    """Question answering: question, context around the gold answer, the gold answers, the answer before
    fine-tuning and each run's, and whether it matches a gold answer exactly (SQuAD's normalisation)."""
    from autoft.tasks.text_metrics import normalize_answer

    def exact(answer: Any, gold: list[dict[str, Any]]) -> str:
        if answer is None:
            return "–"
        same = any(normalize_answer(str(answer)) == normalize_answer(g.get("text", "")) for g in gold)
        return "yes" if same else "no"

    rows, before = runs[0].predictions, "zero_shot" in runs[0].predictions[0]
    shown = []
    for i, row in enumerate(rows[:EXAMPLES]):
        gold = [a for a in row["gold"] or [] if isinstance(a, dict)]
        after = [_at(run, i) for run in runs]
        shown.append(
            [
                row.get("question", ""),
                _snippet(str(row["input"]), gold),
                " | ".join(dict.fromkeys(a.get("text", "") for a in gold)),
                *([row["zero_shot"]] if before else []),
                *after,
                *(exact(a, gold) for a in after),
            ]
        )
    after_heads = ["after"] if len(runs) == 1 else [f"after: {run.title}" for run in runs]
    match_heads = ["exact match"] if len(runs) == 1 else [f"exact match: {run.title}" for run in runs]
    return table(
        [
            "question",
            "context",
            "gold answers",
            *(["before (zero-shot)"] if before else []),
            *after_heads,
            *match_heads,
        ],
        shown,
        numeric_from=99,
        table_id="outputs",
    )


def _prompt(value: Any) -> str:
    if isinstance(value, list):  # chat messages
        return " | ".join(
            f"{m.get('role', '')}: {m.get('content', '')}" if isinstance(m, dict) else str(m) for m in value
        )
    return str(value)


def _outputs(runs: list[RunFiles]) -> str:
    """Generation and seq2seq: prompts, their first reference, the output before fine-tuning and each run's."""
    rows = runs[0].predictions
    before = "zero_shot" in rows[0]
    shown = [
        [
            _prompt(row["input"]),
            (row["gold"] or [""])[0] if isinstance(row["gold"], list) else row["gold"],
            *([row["zero_shot"]] if before else []),
            *(_at(run, i) for run in runs),
        ]
        for i, row in enumerate(rows[:EXAMPLES])
    ]
    heads = ["after"] if len(runs) == 1 else [f"after: {run.title}" for run in runs]
    return table(
        ["prompt", "reference", *(["before (zero-shot)"] if before else []), *heads],
        shown,
        numeric_from=99,
        table_id="outputs",
    )


SECTIONS = {
    "classification": ("Test predictions", _one_label),
    "relation-extraction": ("Test predictions", _one_label),
    "multi-label-classification": ("Test label sets", _label_sets),
    "token-classification": ("Test sentences", _entities),
    "question-answering": ("Answers before and after fine-tuning", _answers),
    "generation": ("Outputs before and after fine-tuning", _outputs),
    "seq2seq": ("Outputs before and after fine-tuning", _outputs),
}


def predictions_section(report: Report) -> str:
    """The test-set section of the report's task for every run with test predictions ("" when none has any)."""
    runs = [run for run in report.runs if run.predictions]
    if not runs or report.task not in SECTIONS:
        return ""
    title, section = SECTIONS[report.task]
    if report.task in ("question-answering", "generation", "seq2seq") and "zero_shot" not in runs[0].predictions[0]:
        title = title.replace(" before and after fine-tuning", " after fine-tuning")
    return f"<h2>{escape(title)}</h2>" + section(runs)


__all__ = ["SECTIONS", "predictions_section"]
