"""What the agent writes for its users: ``data_values.csv``, ``decisions.jsonl`` and ``noise.json``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from autoft.data.generation import prompt_text
from autoft.data.loading import Example
from autoft.io import to_builtin, write_text_atomic
from autoft.selection.embeddings import example_text
from autoft.selection.keeping import ranks
from autoft.selection.valuation import Valuation

DATA_VALUE_COLUMNS = [
    "row_id",
    "origin",
    "source",
    "text",
    "given_label",
    "suggested_label",
    "suggested_confidence",
    "label_noise_probability",
    "model_label",
    "value",
    "keep_probability",
    "flagged",
    "action",
]
DATA_VALUE_MEANINGS = {
    "row_id": "the row's index among the training rows (0-based, in the order read; without data.validation the "
    "rows held out as validation are not counted)",
    "origin": "file:line the row was read from",
    "source": "the name (stem) of the training file it came from",
    "text": "the row's text (a list of words joined by spaces)",
    "given_label": "the label the data gives (NER: each entity as words/TYPE, joined by '; ')",
    "suggested_label": "the most likely true label given the evidence and the given label (the noise estimate's "
    "posterior), written as given_label is",
    "suggested_confidence": "the probability of suggested_label (empty where the estimate gives none)",
    "label_noise_probability": "the posterior that the given label is wrong",
    "model_label": "the fine-tuned model's label of the row from the last model pass that scored it: the row's "
    "last training step, or, for a row left out of the last epoch, a pass of the kept model "
    "(the best epoch's weights) as training ended; empty where no model pass scored the row: autoft value and "
    "autoft.integrations (nothing is fine-tuned) and NER (its model labels words, not rows)",
    "value": "the policy's value of the row (low: likely harmful); rows are written lowest value first",
    "keep_probability": "the row's rank by value as a share of the rows (near 0: the lowest, 1: the highest)",
    "flagged": "True: the agent leaves the row out (drop) or masks its entity (NER)",
    "action": "what the agent did with the row last: keep, drop, relabel (trained on suggested_label), unlabel "
    "(trained on model_label) or mask (NER: the entity's tags left out of the loss)",
}
"""What each column of a classification, relation or NER ``data_values.csv`` holds (README's table cites it)."""


def data_value_rows(
    examples: list[Example],
    label_names: list[str],
    valuation: Valuation,
    values: np.ndarray,
    flagged: np.ndarray | None = None,
    predictions: np.ndarray | None = None,
    relabelled: np.ndarray | None = None,
    unlabelled: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Rows for ``data_values.csv``, lowest value first, with the columns ``DATA_VALUE_MEANINGS`` describes.
    ``predictions``: [N] each row's class id from the last model pass that scored it, -1 (an empty
    ``model_label``) where none did; None: no model was fine-tuned (``autoft value``). The agent's callback
    passes its training steps' predictions, and for the rows left out of the last epoch a pass as training
    ended."""
    values = np.asarray(values, dtype=np.float64)
    if flagged is None:
        flagged = valuation.flagged(values)
    masking = valuation.selection.mode == "mask"
    keep_probability = ranks(values)
    rows = []
    for i in np.argsort(values, kind="stable"):
        example = examples[i]
        confidence = valuation.suggested_confidence[i]
        model_label = label_names[int(predictions[i])] if predictions is not None and predictions[i] >= 0 else ""
        rows.append(
            {
                "row_id": int(i),
                "origin": example.origin,
                "source": example.source,
                "text": example_text(example),
                "given_label": valuation.given[i],
                "suggested_label": valuation.suggested[i],
                "suggested_confidence": "" if np.isnan(confidence) else round(float(confidence), 4),
                "label_noise_probability": round(float(valuation.noise_probability[i]), 4),
                "model_label": model_label,
                "value": round(float(values[i]), 6),
                "keep_probability": round(float(keep_probability[i]), 6),
                "flagged": bool(flagged[i]),
                "action": (
                    "relabel"
                    if relabelled is not None and relabelled[i]
                    else "unlabel"
                    if unlabelled is not None and unlabelled[i]
                    else ("mask" if masking else "drop")
                    if flagged[i]
                    else "keep"
                ),
            }
        )
    return rows


PAIR_VALUE_COLUMNS = [
    "row_id",
    "origin",
    "source",
    "prompt",
    "response",
    "response_tokens",
    "conditional_loss",
    "unconditional_loss",
    "prompt_gain",
    "mismatch_probability",
    "value",
    "flagged",
]


def pair_value_rows(
    examples: list[Example],
    valuation: Any,
    *,
    values: np.ndarray | None = None,
    flagged: np.ndarray | None = None,
    trained: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Rows for a generative task's ``data_values.csv`` (:mod:`autoft.selection.pairs`), worst first: the base
    model's losses of the response with and without its prompt, their difference, the posterior of a mismatch,
    the value (default: the posterior of a match; an agent run: its policy's last value), whether the pair is left
    out and (an agent run) how often it was trained on."""
    values = valuation.values if values is None else values
    flagged = valuation.flagged() if flagged is None else flagged
    rows = []
    for i in np.argsort(values, kind="stable"):
        rows.append(
            {
                "row_id": int(i),
                "origin": examples[i].origin,
                "source": examples[i].source,
                "prompt": prompt_text(examples[i]),
                "response": examples[i].label[0],
                "response_tokens": int(valuation.tokens[i]),
                "conditional_loss": round(float(valuation.conditional[i]), 4),
                "unconditional_loss": round(float(valuation.unconditional[i]), 4),
                "prompt_gain": round(float(valuation.gain[i]), 4),
                "mismatch_probability": round(float(valuation.mismatch_probability[i]), 4),
                "value": round(float(values[i]), 6),
                "flagged": bool(flagged[i]),
                **({"times_trained": int(trained[i])} if trained is not None else {}),
            }
        )
    return rows


def write_data_values(path: Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else DATA_VALUE_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def write_decisions(path: Path, decisions: list[dict[str, Any]]) -> None:
    write_text_atomic(path, "".join(json.dumps(to_builtin(d), sort_keys=True) + "\n" for d in decisions))


def write_noise(path: Path, valuation: Valuation) -> None:
    """``noise.json``: the estimated noise rates and what the agent made of them."""
    if valuation.noise is None:
        return
    summary = {
        **valuation.noise.to_dict(valuation.units.class_names),
        "units": "entities" if valuation.units.names is not None else "samples",
        "drop_fraction": valuation.selection.drop_fraction,
    }
    write_text_atomic(path, json.dumps(to_builtin(summary), indent=2) + "\n")


__all__ = [
    "DATA_VALUE_COLUMNS",
    "DATA_VALUE_MEANINGS",
    "PAIR_VALUE_COLUMNS",
    "data_value_rows",
    "pair_value_rows",
    "write_data_values",
    "write_decisions",
    "write_noise",
]
