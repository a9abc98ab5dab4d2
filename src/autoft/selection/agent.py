"""The agent in the training run: offline valuation on cached features, then the online selector.

``value_samples`` embeds every training and validation sample once with the frozen encoder (mean-
pooled last hidden state, cached on disk), builds each sample's state (probe probabilities, label
disagreement, source), and fits the configured policy: every sample gets a value before the first
fine-tuning step, so the first epoch already trains on cleaner data. ``AgentSelector`` then plugs
the policy into the training loop's ``SampleSelector`` hook: each epoch it hands out per-sample
weights, re-scores samples from the model's own training dynamics (area under the margin, taken
from the forward passes the loop already makes), and updates the policy from the validation reward.
Every step is logged for ``decisions.jsonl``; the final values go to ``data_values.csv``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import rankdata
from tqdm.auto import tqdm

from autoft.config import Config, SelectionConfig
from autoft.data.loading import Example
from autoft.data.splits import Splits
from autoft.errors import ConfigError
from autoft.io import to_builtin, write_text_atomic
from autoft.selection.policies import Policy, get_policy
from autoft.selection.state import TrainingDynamics, neighbour_agreement, probe_probabilities, state_features
from autoft.training.selection import SampleSelector

log = logging.getLogger(__name__)

DATA_VALUE_COLUMNS = ["row_id", "origin", "source", "text", "given_label", "suggested_label", "value",
                      "keep_probability", "flagged"]


# --- frozen-encoder embeddings -------------------------------------------------------------------
def _cache_dir() -> Path:
    return Path(os.environ.get("AUTOFT_CACHE", Path.home() / ".cache" / "autoft")) / "embeddings"


def _text(example: Example) -> str:
    return " ".join(example.text) if isinstance(example.text, list) else example.text


@torch.inference_mode()
def embed_examples(model_name: str, examples: list[Example], *, max_length: int, batch_size: int = 64,
                   progress: bool = True, cache: bool = True) -> np.ndarray:
    """[N, hidden] mean-pooled, L2-normalised embeddings of the frozen encoder, cached by content."""
    from transformers import AutoModel

    from autoft.modeling.load import load_model, load_tokenizer, resolve_model_name

    texts = [_text(e) for e in examples]
    resolved = resolve_model_name(model_name)
    key = hashlib.sha256(json.dumps([resolved, max_length, texts]).encode()).hexdigest()[:24]
    path = _cache_dir() / f"{key}.npy"
    if cache and path.exists():
        return np.load(path)
    tokenizer = load_tokenizer(model_name)
    encoder = load_model(model_name, AutoModel).eval()
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32)
    for start in tqdm(range(0, len(order), batch_size), desc="embed", disable=not progress, leave=False,
                      unit="batch"):
        rows = order[start : start + batch_size]
        batch = tokenizer([texts[i] for i in rows], truncation=True, max_length=max_length, padding=True,
                          return_tensors="pt")
        hidden = encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)
        out[rows] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=path.parent, suffix=".npy")
        os.close(handle)
        np.save(temp, out)
        os.replace(temp, path)
    return out


# --- offline valuation ---------------------------------------------------------------------------
@dataclass
class Valuation:
    """What the offline phase knows: the fitted policy and the per-sample arrays behind it."""

    policy: Policy
    labels: np.ndarray
    sources: np.ndarray
    source_names: list[str]
    probe_probs: np.ndarray
    selection: SelectionConfig
    decisions: list[dict[str, Any]] = field(default_factory=list)


def _check_task(config: Config) -> None:
    if config.task != "classification" and config.selection.policy != "none":
        raise ConfigError(
            f"selection.policy: {config.selection.policy!r} is not available for {config.task} yet "
            "(this release values classification samples); use policy: none"
        )


def value_samples(config: Config, splits: Splits, *, progress: bool = True) -> Valuation:
    """Fit ``config.selection.policy`` on cached features of ``splits`` (the offline phase)."""
    _check_task(config)
    selection = config.selection
    index = {label: i for i, label in enumerate(splits.labels)}
    labels = np.array([index[e.label] for e in splits.train], dtype=np.int64)
    val_labels = np.array([index[e.label] for e in splits.validation], dtype=np.int64)
    source_names = sorted({e.source for e in splits.train})
    sources = np.array([source_names.index(e.source) for e in splits.train], dtype=np.int64)
    n_classes = len(splits.labels)

    max_length = config.training.max_length
    embeddings = embed_examples(config.model, splits.train + splits.validation, max_length=max_length,
                                progress=progress)  # one encoder load, one pass
    train_x, val_x = embeddings[: len(splits.train)], embeddings[len(splits.train) :]
    seed = config.training.seed
    oof, val_probs = probe_probabilities(train_x, labels, val_x, val_labels, n_classes=n_classes, seed=seed)
    state = state_features(embeddings=train_x, labels=labels, n_classes=n_classes, oof_probs=oof,
                           val_probs=val_probs, agreement=neighbour_agreement(train_x, labels), sources=sources if len(source_names) > 1 else None,
                           n_sources=len(source_names), seed=seed)
    options = {"seed": seed, "drop_fraction": selection.drop_fraction, **selection.options}
    try:
        policy = get_policy(selection.policy, **options)
    except TypeError as error:
        raise ConfigError(f"selection.options: {error}") from None
    buckets = sources if selection.bucket_by == "source" else None
    policy.fit(state, labels, None, val_labels, n_classes=n_classes, embeddings=train_x, val_embeddings=val_x,
               buckets=buckets)
    log.info("offline valuation with %s: %d samples valued", selection.policy, len(labels))
    return Valuation(policy, labels, sources, source_names, 0.5 * (oof + val_probs), selection,
                     [{"phase": "offline", **d} for d in policy.decisions_])


# --- the online selector -------------------------------------------------------------------------
def _ranks(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return rankdata(values) / len(values) if len(values) else values


def kept_mask(values: np.ndarray, labels: np.ndarray, drop_fraction: float, balance: str) -> np.ndarray:
    """[N] bool: False for the lowest-valued ``drop_fraction`` of the samples — of each given class
    (``per-class``, so a hard minority class is not emptied) or of all samples (``global``)."""
    values = np.asarray(values, dtype=np.float64)
    keep = np.ones(len(values), dtype=bool)
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)] if balance == "per-class" else [
        np.arange(len(values))]
    for rows in groups:
        drop = round(drop_fraction * len(rows))
        keep[rows[np.argsort(values[rows], kind="stable")[:drop]]] = False
    return keep


class AgentSelector(SampleSelector):
    """Turns a fitted policy into per-epoch sample weights and learns from the validation reward."""

    def __init__(self, valuation: Valuation, *, primary_metric: str) -> None:
        self.valuation = valuation
        self.selection = valuation.selection
        self.primary_metric = primary_metric
        n = len(valuation.labels)
        self.dynamics = TrainingDynamics(n)
        self.last_prediction = np.full(n, -1, dtype=np.int64)
        self.values = valuation.policy.values_.copy()
        self.weights = np.ones(n)
        self.decisions: list[dict[str, Any]] = list(valuation.decisions)
        self._previous: float | None = None
        self._action: int | None = None

    # values -> weights
    def _current_values(self) -> np.ndarray:
        """Policy values, re-scored with the area under the margin of the samples training has seen.

        Samples left out (never seen, so without dynamics) keep their policy value; the seen samples'
        AUM ranks are mapped onto the range of their policy values and averaged with them, so the
        dynamics reorder the kept samples without lifting unseen ones by default."""
        values = _ranks(self.valuation.policy.values_)
        aum = self.dynamics.aum
        seen = ~np.isnan(aum)
        if not self.selection.rescore or not seen.any():
            return values
        low = values[seen].min()
        dynamics = low + (1.0 - low) * rankdata(aum[seen]) / seen.sum()
        values[seen] = 0.5 * values[seen] + 0.5 * dynamics
        return values

    def _weights(self, values: np.ndarray) -> np.ndarray:
        keep = kept_mask(values, self.valuation.labels, self.selection.drop_fraction, self.selection.balance)
        if self.selection.mode == "weight":
            return np.where(keep, np.clip(_ranks(values), 1e-3, 1.0), 0.0)
        return keep.astype(np.float64)

    def begin_epoch(self, epoch: int, n_samples: int) -> np.ndarray:
        self.values = self._current_values()
        self.weights = self._weights(self.values)
        policy = self.valuation.policy
        self._action = None
        if hasattr(policy, "act") and epoch > 1:
            # Bucket policies (Q-learning, Exp3): the chosen bucket's kept samples count double this epoch.
            self._action = int(policy.act())
            self.weights = self.weights * (1.0 + policy.bucket_weights(self._action))
        kept = self.weights > 0
        per_source = {name: float(kept[self.valuation.sources == i].mean())
                      for i, name in enumerate(self.valuation.source_names)}
        self.decisions.append({
            "phase": "online", "epoch": epoch, "event": "select", "policy": self.selection.policy,
            "kept": int(kept.sum()), "dropped": int((~kept).sum()), "keep_rate_by_source": per_source,
            "mean_value_kept": float(self.values[kept].mean()) if kept.any() else None,
            "rescored_from_dynamics": bool((self.dynamics.count > 0).any() and self.selection.rescore),
            "emphasised_bucket": self._action,
        })
        return self.weights

    def observe(self, indices, losses, logits, labels) -> None:
        self.dynamics.update_from_logits(indices, losses, logits, labels)
        self.last_prediction[np.asarray(indices)] = logits.argmax(-1).cpu().numpy()

    def _reward_value(self, validation: dict[str, Any]) -> float:
        name = self.selection.reward
        if name == "primary":
            return float(validation[self.primary_metric])
        if name == "loss":
            return -float(validation["loss"])
        if name in validation and not isinstance(validation[name], dict):
            return float(validation[name])
        raise ConfigError(f"selection.reward: {name!r} is not a validation metric "
                          f"({', '.join(k for k, v in validation.items() if not isinstance(v, dict))}, primary)")

    def end_epoch(self, epoch: int, validation: dict[str, Any]) -> None:
        score = self._reward_value(validation)
        reward = 0.0 if self._previous is None else score - self._previous
        self._previous = score
        decision = {"phase": "online", "epoch": epoch, "event": "reward", "reward": reward, "validation": score}
        if epoch > 1:  # the first epoch has no earlier score to improve on
            record = self.valuation.policy.update(reward, self.weights > 0, action=self._action)
            decision["policy_update"] = record.get("action")
        self.decisions.append(decision)

    # outputs
    def data_values(self, examples: list[Example], label_names: list[str]) -> list[dict[str, Any]]:
        """One row per training sample, worst value first (columns ``DATA_VALUE_COLUMNS``)."""
        return data_value_rows(examples, label_names, self.valuation, self._current_values(),
                               self.weights, self.last_prediction)

    def write_artifacts(self, folder: Path, examples: list[Example], label_names: list[str]) -> None:
        write_decisions(folder / "decisions.jsonl", self.decisions)
        write_data_values(folder / "data_values.csv", self.data_values(examples, label_names))


def data_value_rows(examples: list[Example], label_names: list[str], valuation: Valuation, values: np.ndarray,
                    weights: np.ndarray | None = None, predictions: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Rows for ``data_values.csv``: suggested label = the fine-tuned model's last prediction when there
    is one, else the probes'; flagged = left out by the agent."""
    values = np.asarray(values, dtype=np.float64)
    if weights is None:
        weights = kept_mask(values, valuation.labels, valuation.selection.drop_fraction,
                            valuation.selection.balance).astype(np.float64)
    keep_probability = _ranks(values)
    suggested = valuation.probe_probs.argmax(1)
    if predictions is not None:
        suggested = np.where(predictions >= 0, predictions, suggested)
    rows = []
    for i in np.argsort(values, kind="stable"):
        example = examples[i]
        rows.append({
            "row_id": int(i), "origin": example.origin, "source": example.source, "text": _text(example),
            "given_label": example.label, "suggested_label": label_names[int(suggested[i])],
            "value": round(float(values[i]), 6), "keep_probability": round(float(keep_probability[i]), 6),
            "flagged": bool(weights[i] == 0),
        })
    return rows


def write_data_values(path: Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=DATA_VALUE_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def write_decisions(path: Path, decisions: list[dict[str, Any]]) -> None:
    write_text_atomic(path, "".join(json.dumps(to_builtin(d), sort_keys=True) + "\n" for d in decisions))
