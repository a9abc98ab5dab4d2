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
from autoft.selection.valuation import Valuation, _ranks

DATA_VALUE_COLUMNS = ["row_id", "origin", "source", "text", "given_label", "suggested_label",
                      "suggested_confidence", "label_noise_probability", "model_label", "value", "keep_probability",
                      "flagged", "action"]


def data_value_rows(examples: list[Example], label_names: list[str], valuation: Valuation, values: np.ndarray,
                    flagged: np.ndarray | None = None, predictions: np.ndarray | None = None,
                    relabelled: np.ndarray | None = None, unlabelled: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Rows for ``data_values.csv``: the suggested label is the most likely true one given the evidence
    and the given label (the noise estimate's posterior), with its probability; ``label_noise_probability``
    is the posterior that the given label is wrong; ``model_label`` the fine-tuned model's last prediction
    (classification, when there is one); flagged = left out by the agent; action = what the agent did with
    the sample last: keep, drop, relabel (trained on the suggested label), unlabel (trained on the model's
    own label, ``model_label``) or mask (NER: an entity's tags left out of the loss)."""
    values = np.asarray(values, dtype=np.float64)
    if flagged is None:
        flagged = valuation.flagged(values)
    masking = valuation.selection.mode == "mask"
    keep_probability = _ranks(values)
    rows = []
    for i in np.argsort(values, kind="stable"):
        example = examples[i]
        confidence = valuation.suggested_confidence[i]
        model_label = label_names[int(predictions[i])] if predictions is not None and predictions[i] >= 0 else ""
        rows.append({
            "row_id": int(i), "origin": example.origin, "source": example.source, "text": example_text(example),
            "given_label": valuation.given[i], "suggested_label": valuation.suggested[i],
            "suggested_confidence": "" if np.isnan(confidence) else round(float(confidence), 4),
            "label_noise_probability": round(float(valuation.noise_probability[i]), 4), "model_label": model_label,
            "value": round(float(values[i]), 6), "keep_probability": round(float(keep_probability[i]), 6),
            "flagged": bool(flagged[i]),
            "action": ("relabel" if relabelled is not None and relabelled[i] else
                       "unlabel" if unlabelled is not None and unlabelled[i] else
                       ("mask" if masking else "drop") if flagged[i] else "keep"),
        })
    return rows


PAIR_VALUE_COLUMNS = ["row_id", "origin", "source", "prompt", "response", "response_tokens", "conditional_loss",
                      "unconditional_loss", "prompt_gain", "mismatch_probability", "value", "flagged"]


def pair_value_rows(examples: list[Example], valuation: Any, *, values: np.ndarray | None = None,
                    flagged: np.ndarray | None = None, trained: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Rows for a generative task's ``data_values.csv`` (:mod:`autoft.selection.pairs`), worst first: the base
    model's losses of the response with and without its prompt, their difference, the posterior of a mismatch,
    the value (default: the posterior of a match; an agent run: its policy's last value), whether the pair is left
    out and (an agent run) how often it was trained on."""
    values = valuation.values if values is None else values
    flagged = valuation.flagged() if flagged is None else flagged
    rows = []
    for i in np.argsort(values, kind="stable"):
        rows.append({"row_id": int(i), "origin": examples[i].origin, "source": examples[i].source,
                     "prompt": prompt_text(examples[i]), "response": examples[i].label[0],
                     "response_tokens": int(valuation.tokens[i]),
                     "conditional_loss": round(float(valuation.conditional[i]), 4),
                     "unconditional_loss": round(float(valuation.unconditional[i]), 4),
                     "prompt_gain": round(float(valuation.gain[i]), 4),
                     "mismatch_probability": round(float(valuation.mismatch_probability[i]), 4),
                     "value": round(float(values[i]), 6), "flagged": bool(flagged[i]),
                     **({"times_trained": int(trained[i])} if trained is not None else {})})
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
    summary = {**valuation.noise.to_dict(valuation.units.class_names),
               "units": "entities" if valuation.units.names is not None else "samples",
               "drop_fraction": valuation.selection.drop_fraction}
    write_text_atomic(path, json.dumps(to_builtin(summary), indent=2) + "\n")


__all__ = ["DATA_VALUE_COLUMNS", "PAIR_VALUE_COLUMNS", "data_value_rows", "pair_value_rows", "write_data_values", "write_decisions", "write_noise"]
