"""The report's plots, drawn with matplotlib (Agg) and returned as self-contained SVG text."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

WIDTH, HEIGHT = 6.4, 3.2


def _svg(figure: Any) -> str:
    import matplotlib
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    figure.tight_layout()
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text stays text: searchable, and smaller
        figure.savefig(buffer, format="svg")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # without the XML prolog, to inline it in HTML


def _figure(width: float = WIDTH, height: float = HEIGHT, *, columns: int = 1) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt.subplots(1, columns, figsize=(width, height), squeeze=True)


RUN_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple")


def learning_curves(runs: list[tuple[str, list[dict[str, Any]], int | None]], metric: str) -> str:
    """Per run (title, epoch records, best epoch): training and validation loss on the left, the validation
    ``metric`` on the right (no right panel when it is the loss); one colour per run, its best epoch dotted."""
    panels = 1 if metric == "loss" else 2
    figure, axes = _figure(WIDTH * (1.3 if panels == 2 else 1), HEIGHT, columns=panels)
    losses, scores = (axes, None) if panels == 1 else axes
    for (title, epochs, best_epoch), colour in zip(runs, RUN_COLOURS):
        x = [e["epoch"] for e in epochs]
        validation = [e.get("validation") or {} for e in epochs]
        losses.plot(x, [e.get("train_loss") for e in epochs], "o-", color=colour, label=f"{title}: training")
        losses.plot(x, [v.get("loss") for v in validation], "s--", color=colour, label=f"{title}: validation")
        if scores is not None:
            scores.plot(x, [v.get(metric) for v in validation], "^-", color=colour, label=title)
        for axis in (losses, scores):
            if axis is not None and best_epoch is not None:
                axis.axvline(best_epoch, color=colour, linestyle=":", alpha=0.7)
    epochs_seen = sorted({e["epoch"] for _, epochs, _ in runs for e in epochs})
    for axis, ylabel, title in ((losses, "loss", "Loss"), (scores, f"validation {metric}", f"Validation {metric}")):
        if axis is not None:
            axis.set_xlabel("epoch")
            axis.set_ylabel(ylabel)
            axis.set_xticks(epochs_seen)
            axis.set_title(title)
            axis.legend(fontsize=7, loc="best")
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


def confusion(matrices: list[tuple[str, np.ndarray]], labels: list[str]) -> str:
    """Confusion matrices (rows: gold, columns: predicted) with their counts, side by side: one per run."""
    size = min(max(3.2, 0.35 * len(labels) + 1.5), 14 / len(matrices) ** 0.5)
    figure, axes = _figure((size + 1) * len(matrices), size, columns=len(matrices))
    for axis, (title, matrix) in zip(np.atleast_1d(axes), matrices):
        axis.imshow(matrix, cmap="Blues")
        axis.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        axis.set_yticks(range(len(labels)), labels, fontsize=7)
        axis.set_xlabel("predicted")
        axis.set_ylabel("gold")
        if len(labels) <= 20:
            top = matrix.max() or 1
            for (i, j), count in np.ndenumerate(matrix):
                if count:
                    axis.text(
                        j,
                        i,
                        str(count),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if count > top / 2 else "black",
                    )
        axis.set_title(title)
    return _svg(figure)


def label_scores(labels: list[str], support: list[int], runs: list[tuple[str, list[float]]]) -> str:
    """Per label, each run's test F1 as grouped bars; the label's test count under its name."""
    figure, axis = _figure(max(WIDTH, 0.5 * len(labels) * len(runs) + 2), HEIGHT)
    x, width = np.arange(len(labels)), 0.8 / len(runs)
    for k, ((title, scores), colour) in enumerate(zip(runs, RUN_COLOURS)):
        axis.bar(x + (k - (len(runs) - 1) / 2) * width, scores, width, color=colour, label=title)
    axis.set_xticks(
        x, [f"{label}\n({n})" for label, n in zip(labels, support)], fontsize=7, rotation=90 if len(labels) > 12 else 0
    )
    axis.set_ylim(0, 1.05)
    axis.set_ylabel("test F1")
    axis.legend(fontsize=8)
    axis.set_title("Per label (test samples carrying it)")
    return _svg(figure)


__all__ = ["actions", "confusion", "label_scores", "learning_curves", "reward_curve", "value_histogram"]
