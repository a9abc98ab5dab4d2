"""The report's plots, drawn with matplotlib (Agg) and returned as self-contained SVG text."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

WIDTH, HEIGHT = 6.4, 3.2


def _svg(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    figure.tight_layout()
    figure.savefig(buffer, format="svg")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # without the XML prolog, to inline it in HTML


def _figure(width: float = WIDTH, height: float = HEIGHT) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def learning_curves(epochs: list[dict[str, Any]], metric: str, best_epoch: int | None) -> str:
    """Training loss and the validation metric (and loss) per epoch; the best epoch marked."""
    figure, left = _figure()
    x = [e["epoch"] for e in epochs]
    left.plot(x, [e.get("train_loss") for e in epochs], "o-", color="tab:blue", label="training loss")
    if metric != "loss":
        left.plot(x, [(e.get("validation") or {}).get("loss") for e in epochs], "s--", color="tab:cyan",
                  label="validation loss")
    left.set_xlabel("epoch")
    left.set_ylabel("loss")
    right = left.twinx()
    right.plot(x, [(e.get("validation") or {}).get(metric) for e in epochs], "^-", color="tab:orange",
               label=f"validation {metric}")
    right.set_ylabel(f"validation {metric}")
    if best_epoch is not None:
        left.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch ({best_epoch})")
    handles = [h for axis in (left, right) for h in axis.get_legend_handles_labels()[0]]
    left.legend(handles, [h.get_label() for h in handles], fontsize=8, loc="best")
    left.set_xticks(x)
    left.set_title("Learning curves")
    return _svg(figure)


def reward_curve(rewards: list[float], validation: list[float]) -> str:
    """The agent's reward at each update and its validation score."""
    figure, left = _figure()
    steps = np.arange(1, len(rewards) + 1)
    left.bar(steps, rewards, color=["tab:green" if r >= 0 else "tab:red" for r in rewards], label="reward")
    left.axhline(0, color="black", linewidth=0.5)
    left.set_xlabel("agent update")
    left.set_ylabel("reward (validation gain)")
    right = left.twinx()
    right.plot(steps, validation, "k.-", label="its validation score")
    right.set_ylabel("validation score")
    left.set_title("The agent's rewards")
    return _svg(figure)


def actions(epochs: list[int], kept: list[int], dropped: list[int]) -> str:
    """Samples kept and left out at each of the agent's selections."""
    figure, axis = _figure()
    x = np.arange(len(epochs))
    axis.bar(x, kept, color="tab:blue", label="kept")
    axis.bar(x, dropped, bottom=kept, color="tab:red", label="left out")
    axis.set_xticks(x, [str(e) for e in epochs])
    axis.set_xlabel("epoch")
    axis.set_ylabel("training samples")
    axis.legend(fontsize=8)
    axis.set_title("The agent's selection per epoch")
    return _svg(figure)


def value_histogram(values: np.ndarray, flagged: np.ndarray) -> str:
    """Histogram of the data values, the samples left out in red."""
    figure, axis = _figure()
    bins = np.histogram_bin_edges(values, bins=30)
    axis.hist(values[~flagged], bins=bins, color="tab:blue", label="kept")
    axis.hist(values[flagged], bins=bins, color="tab:red", alpha=0.8, label="flagged / left out")
    axis.set_xlabel("data value (higher: more useful)")
    axis.set_ylabel("samples")
    axis.legend(fontsize=8)
    axis.set_title("Data values")
    return _svg(figure)


def confusion(matrix: np.ndarray, labels: list[str]) -> str:
    """A confusion matrix (rows: gold, columns: predicted), with counts."""
    size = min(max(3.2, 0.35 * len(labels) + 1.5), 14)
    figure, axis = _figure(size + 1, size)
    axis.imshow(matrix, cmap="Blues")
    axis.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    axis.set_yticks(range(len(labels)), labels, fontsize=7)
    axis.set_xlabel("predicted")
    axis.set_ylabel("gold")
    if len(labels) <= 20:
        top = matrix.max() or 1
        for (i, j), count in np.ndenumerate(matrix):
            if count:
                axis.text(j, i, str(count), ha="center", va="center", fontsize=7,
                          color="white" if count > top / 2 else "black")
    axis.set_title("Confusion matrix (test)")
    return _svg(figure)


__all__ = ["actions", "confusion", "learning_curves", "reward_curve", "value_histogram"]
