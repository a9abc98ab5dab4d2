"""The full job: plain fine-tuning and autonomous fine-tuning side by side, and offline valuation alone.

``run(config)`` trains twice on the same splits and seed — once on all data (``policy: none``), once
with the agent — and writes::

    OUTPUT/
      plain/          run directory of plain fine-tuning
      autonomous/     run directory of the agent's run (with its decisions.jsonl and data_values.csv)
      comparison.json / comparison.md   the before/after table on the test set
      decisions.jsonl, data_values.csv, noise.json, corrected.<ext>  copies from autonomous/, for users

``value(config)`` runs only the offline phase and writes ``data_values.csv`` (worst first).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from autoft.comparison import better_run
from autoft.config import AUTO, DEFAULT_POLICY, GENERATIVE_TASKS, TEXT_TARGET_TASKS, Config, as_config
from autoft.data.splits import Splits, agent_validation, load_splits
from autoft.errors import ConfigError
from autoft.io import staged_folder, work_folder, write_json
from autoft.run import Run, train
from autoft.rundir import prepare_output
from autoft.selection.guard import BackOff, ReferenceScores, read_reference, reference_score
from autoft.selection.policies import check_policy
from autoft.tasks.registry import get_adapter_class

if TYPE_CHECKING:
    from autoft.selection.noise import NoiseEstimate

log = logging.getLogger(__name__)

UNVALUED_TASKS = (TEXT_TARGET_TASKS - GENERATIVE_TASKS) | {"multi-label-classification"}
"""Tasks whose samples the agent does not value yet (answers, label sets): ``run`` fine-tunes once and compares the
result with the model before fine-tuning."""


def _with(
    config: Config, *, policy: str | None = None, output_dir: str | None = None, training: dict[str, Any] | None = None
) -> Config:
    """A copy of ``config`` with another selection policy, output folder and/or training settings. Plain
    fine-tuning (policy ``none``) learns from the labelled data alone: no self-training or loss correction either."""
    selection = (
        config.selection
        if policy is None
        else config.selection.model_copy(
            update={"policy": policy, **({"self_training": "off", "correction": "off"} if policy == "none" else {})}
        )
    )
    return config.model_copy(
        update={
            "selection": selection,
            "output_dir": output_dir or config.output_dir,
            "training": config.training.model_copy(update=training or {}),
        }
    )


SHARED_SETTINGS = (
    "epochs",
    "learning_rate",
    "head_learning_rate",
    "batch_size",
    "max_length",
    "early_stopping_patience",
)
"""Training settings the agent's run takes from the plain run where the config says ``auto``: the two runs differ
only in what the agent does. (A second learning-rate range test on the rows the agent keeps is not evidence for
another rate: fewer rows move the test's choice, and a rate that suits the kept rows can still collapse.)"""


def _shared_settings(config: Config, plain: Run) -> dict[str, Any]:
    """The plain run's resolved value of every setting of ``SHARED_SETTINGS`` the config leaves ``auto``."""
    resolved = plain.metrics["training"]
    shared = {
        k: resolved[k]
        for k in SHARED_SETTINGS
        if getattr(config.training, k) == AUTO and resolved.get(k) not in (None, AUTO)
    }
    if shared:
        log.info(
            "autonomous run: the settings resolved for the plain run (%s)",
            ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in shared.items()),
        )
    return shared


def _reference(config: Config) -> Callable[[Splits], ReferenceScores]:
    """For the plain run: a callback that scores plain fine-tuning after each epoch on the validation rows that
    choose early stopping in the agent's run (``stopping_half.json``), which the agent's run compares itself with."""
    adapter = get_adapter_class(config.task)

    def make(splits: Splits) -> ReferenceScores:
        return ReferenceScores(
            agent_validation(splits.validation, config)[0],
            metric=adapter.primary_metric,
            greater_is_better=adapter.greater_is_better,
            loss_only=adapter.validate_by_loss,
        )

    return make


def agent_config(config: Config) -> Config:
    """The config with an agent: the configured policy, or the default one when it says ``none``."""
    if config.selection.policy == "none":
        return _with(config, policy=DEFAULT_POLICY)
    return config


def value(config: Config | dict | str | Path, *, overrides: list[str] | None = None) -> Path:
    """Offline valuation only: writes ``data_values.csv``, ``decisions.jsonl`` and ``noise.json`` into ``output_dir``."""
    from autoft.selection.agent import data_value_rows, value_samples, write_data_values, write_decisions, write_noise

    config = agent_config(as_config(config, overrides))
    check_policy(config.selection.policy)
    if config.task == "classification":
        from autoft.selection.large_pool import count_lines

        if count_lines(config.data.train_files) > config.selection.fit_rows:
            return _value_pool(config)
    splits = load_splits(config.data, task=config.task, seed=config.training.seed)
    if config.task in GENERATIVE_TASKS:
        return _value_pairs(config, splits)
    valuation = value_samples(config, splits, progress=config.training.progress)
    output = Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    rows = data_value_rows(splits.train, splits.labels, valuation, valuation.sample_values())
    write_data_values(output / "data_values.csv", rows)
    write_decisions(output / "decisions.jsonl", valuation.decisions)
    write_noise(output / "noise.json", valuation)
    log.info(
        "%d samples valued; %d flagged; written to %s",
        len(rows),
        sum(r["flagged"] for r in rows),
        output / "data_values.csv",
    )
    return output / "data_values.csv"


def _value_pool(config: Config) -> Path:
    """A pool above ``selection.fit_rows``: streamed, valued on a seeded sample, the values carried to every row
    (:mod:`autoft.selection.large_pool`); ``data_values.csv`` in file order."""
    from autoft.selection.large_pool import value_pool, write_pool_values
    from autoft.selection.reports import write_decisions

    pool = value_pool(config, progress=config.training.progress)
    output = Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    written = write_pool_values(output / "data_values.csv", config, pool)
    write_decisions(output / "decisions.jsonl", pool.valuation.decisions)
    noise = cast("NoiseEstimate", pool.valuation.noise)  # value_samples always estimates it
    per_class = {
        name: round(float(pool.noise_probability[pool.given == k].mean()), 4)
        for k, name in enumerate(pool.labels)
        if (pool.given == k).any()
    }
    write_json(
        output / "noise.json",
        {
            **noise.to_dict(pool.labels),
            "rate": round(pool.rate, 4),
            "per_class": per_class,
            "units": "samples",
            "rows": written,
            "sample_rate": round(noise.rate, 4),
            "drop_fraction": pool.valuation.selection.drop_fraction,
            "flagged": int(pool.flagged.sum()),
            "value_model": pool.extension,
        },
    )
    log.info(
        "%d samples valued (%d by the offline phase, the rest by its value model); %d flagged; written to %s",
        written,
        int(pool.fitted.sum()),
        int(pool.flagged.sum()),
        output / "data_values.csv",
    )
    return output / "data_values.csv"


def _value_pairs(config: Config, splits: Any) -> Path:
    """Generative tasks: each training pair's posterior of a response that does not belong to its prompt
    (:mod:`autoft.selection.pairs`), in ``data_values.csv`` worst first, and the estimated share in ``noise.json``."""
    from autoft.selection.pairs import value_pairs
    from autoft.selection.reports import pair_value_rows, write_data_values

    valuation = value_pairs(config, splits)
    output = Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    rows = pair_value_rows(splits.train, valuation)
    write_data_values(output / "data_values.csv", rows)
    write_json(output / "noise.json", valuation.summary())
    log.info(
        "%d pairs valued; %d flagged; written to %s",
        len(rows),
        sum(r["flagged"] for r in rows),
        output / "data_values.csv",
    )
    return output / "data_values.csv"


def _scores(run: Run) -> dict[str, Any]:
    pick = lambda m: {k: v for k, v in (m or {}).items() if not isinstance(v, dict)}
    return {
        "validation": pick(run.metrics.get("validation")),
        "test": pick(run.metrics.get("test")),
        "best_epoch": run.metrics["best_epoch"],
        "wall_seconds": run.metrics["wall_seconds"],
        "trained_samples": sum(e["samples"] for e in run.metrics["epochs"]),
    }


def _agent_summary(decisions: Path) -> dict[str, Any]:
    """From the agent's decisions log: the per-source keep rates of its last selection, its back-offs (when it
    fell behind plain fine-tuning on validation), the classes it warned about, and why it held back from the start
    (``idle``: the reason, or False)."""
    summary: dict[str, Any] = {"keep_rate_by_source": {}, "back_offs": [], "class_warnings": [], "idle": False}
    for line in decisions.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("event") == "select":
            summary["keep_rate_by_source"] = record.get("keep_rate_by_source", {})
        elif record.get("event") == "back-off":
            summary["back_offs"].append({k: record.get(k) for k in ("epoch", "intervention", "drop_fraction")})
        elif record.get("event") == "class-warning":
            summary["class_warnings"].append(record["class"])
        elif record.get("event") == "idle":
            summary["idle"] = record.get("why") or True
    return summary


def comparison_table(comparison: dict[str, Any]) -> str:
    """Markdown before/after table of the two runs."""
    plain, agent = comparison["plain"], comparison["autonomous"]
    split = "test" if plain["test"] else "validation"
    keys = [k for k in plain[split] if k != "loss"] + ["loss"]
    before = comparison.get("zero_shot") if split == "test" else None  # generative tasks: the model before
    head, rule = ("| before fine-tuning (zero-shot) ", "---:|") if before else ("", "")
    lines = [
        f"| {split} {head}| plain fine-tuning | autonomous ({comparison['policy']}) | change |",
        f"|---|{rule}---:|---:|---:|",
    ]
    for key in keys:
        a, b = plain[split].get(key), agent[split].get(key)
        if a is None or b is None:
            continue
        zero = "" if not before else f"{before[key]:.4f} | " if isinstance(before.get(key), float) else "– | "
        lines.append(f"| {key} | {zero}{a:.4f} | {b:.4f} | {b - a:+.4f} |")
    gap = "| " if before else ""
    lines.append(
        f"| wall seconds | {gap}{plain['wall_seconds']:.0f} | {agent['wall_seconds']:.0f} | "
        f"×{agent['wall_seconds'] / max(plain['wall_seconds'], 1e-9):.2f} |"
    )
    lines.append(f"| samples trained on | {gap}{plain['trained_samples']} | {agent['trained_samples']} | |")
    rates = comparison.get("keep_rate_by_source") or {}
    if len(rates) > 1:
        kept = ", ".join(f"{name} {rate:.0%}" for name, rate in rates.items())
        lines.append(f"| kept per source | 100% each | {kept} | |")
    if comparison.get("idle"):
        why = comparison["idle"] if isinstance(comparison["idle"], str) else "no label noise found to act on"
        lines.append(f"| the agent held back: {why.split(':')[0]} | {gap}| | trained as plain fine-tuning | |")
    for back_off in comparison.get("back_offs") or []:
        what = "left out half as much" if back_off["intervention"] else "stopped intervening"
        lines.append(
            f"| agent backed off (behind plain on validation) | {gap}| | after epoch {back_off['epoch'] - 1}: "
            f"{what} | |"
        )
    if comparison.get("class_warnings"):
        lines.append(
            f"| classes that lost over half their rows | {gap}| | {', '.join(comparison['class_warnings'])} | |"
        )
    better = comparison.get("better")
    if better and isinstance(better.get("plain"), float) and isinstance(better.get("autonomous"), float):
        winner = better["run"] + (" (a tie)" if better["plain"] == better["autonomous"] else "")
        lines.append(
            f"| better on validation: {better['metric']} (served) | {gap}{better['plain']:.4f} | "
            f"{better['autonomous']:.4f} | {winner} |"
        )
    return "\n".join(lines)


def _better(plain: Run, agent: Run | None) -> dict[str, Any]:
    """Which run ``autoft serve OUTPUT`` (and predict, evaluate, export) uses: the better main validation metric
    of the task, ties to plain (:func:`autoft.comparison.better_run`). Both are scored on the same rows: the
    agent's run validates on the part of validation that does not reward the agent, and the plain run's kept
    weights were scored on those rows too (``stopping_half.json``); a plain run without that file is compared on
    its whole validation set (``compared_on`` says which)."""
    metric = plain.adapter.primary_metric
    plain_scores = plain.metrics.get("validation") or {}
    reference = read_reference(plain.path)
    compared_on = "each run's validation set"
    same_rows = (
        agent is not None
        and reference is not None
        and reference["epochs"]
        and reference["examples"] == (agent.metrics.get("sizes") or {}).get("validation")
    )
    if same_rows and reference is not None:  # (an idle agent's run validates on the whole set, as plain does)
        plain_scores = {metric: reference_score(reference, plain.metrics["best_epoch"])}
        compared_on = f"the same {reference['examples']} validation rows (the agent's stopping half)"
    better = better_run(
        plain_scores,
        None if agent is None else agent.metrics.get("validation") or {},
        metric=metric,
        greater_is_better=plain.adapter.greater_is_better,
    )
    sizes = {
        name: (run.metrics.get("sizes") or {}).get("validation")
        for name, run in (("plain", plain), ("autonomous", agent))
        if run is not None
    }
    log.info("better on validation: %s/ (%s, on %s)", better["run"], better["why"], compared_on)
    return {**better, "compared_on": compared_on, "validation_examples": sizes}


def _before_after(config: Config, output: Path, resume: bool) -> dict[str, Any]:
    """Question answering and multi-label classification (whose samples the agent does not value yet): one
    fine-tuning run, compared on the test
    set with the model before it (its zero-shot scores, which ``train`` records)."""
    log.info(
        "%s: the agent does not value these samples yet; autoft run fine-tunes on all of them and compares "
        "the result with the model before fine-tuning",
        config.task,
    )
    with staged_folder(output, resumable=True) as temp:
        fine_tuned = _train_or_load(config.model_copy(update={"output_dir": str(temp / "plain")}), resume)
        before, after = fine_tuned.metrics.get("zero_shot") or {}, fine_tuned.metrics.get("test") or {}
        if before:  # a pretrained model that answers before fine-tuning (question answering)
            lines = ["| test | before fine-tuning (zero-shot) | fine-tuned | change |", "|---|---:|---:|---:|"]
            lines += [
                f"| {key} | {before[key]:.4f} | {value:.4f} | {value - before[key]:+.4f} |"
                for key, value in after.items()
                if isinstance(value, float) and isinstance(before.get(key), float)
            ]
            lines.append(f"| wall seconds | | {fine_tuned.metrics['wall_seconds']:.0f} | |")
        else:  # a new, untrained head (multi-label): nothing to compare with before fine-tuning
            lines = ["| test | fine-tuned |", "|---|---:|"]
            lines += [f"| {key} | {value:.4f} |" for key, value in after.items() if isinstance(value, float)]
            lines.append(f"| wall seconds | {fine_tuned.metrics['wall_seconds']:.0f} |")
        comparison = {
            "policy": None,
            "zero_shot": before,
            "plain": _scores(fine_tuned),
            "table": "\n".join(lines),
            "wall_seconds": fine_tuned.metrics["wall_seconds"],
            "better": _better(fine_tuned, None),
        }
        write_json(temp / "comparison.json", comparison)
        (temp / "comparison.md").write_text(comparison["table"] + "\n", encoding="utf-8")
    comparison["output_dir"] = str(output)
    comparison["report"] = str(_report(output))
    return comparison


def _train_or_load(config: Config, resume: bool, **options: Any) -> Run:
    """``train(config)``; when resuming, the run it wrote before the interruption (complete: its checksums are the
    last file written), or the training continued from its last checkpoint."""
    if resume and (Path(config.output_dir) / "checksums.json").is_file():
        log.info("resumed: %s was finished before the interruption", config.output_dir)
        return Run.load(config.output_dir)
    return train(config, resume=resume, **options)


def run(
    config: Config | dict | str | Path,
    *,
    overrides: list[str] | None = None,
    overwrite: bool = False,
    resume: bool = False,
) -> dict[str, Any]:
    """Plain and autonomous fine-tuning side by side; returns the comparison (also written to disk).

    Both runs are staged in ``.<output_dir name>.work`` beside the output, which a crash leaves in place:
    ``resume`` keeps the runs finished there and continues the interrupted one from its last checkpoint."""
    config = as_config(config, overrides)
    check_policy(config.selection.policy)
    output = Path(config.output_dir)
    prepare_output(output, overwrite)
    if not resume:
        shutil.rmtree(work_folder(output), ignore_errors=True)
    if config.task in UNVALUED_TASKS:
        if config.selection.policy != "none":
            raise ConfigError(
                f"selection.policy: {config.selection.policy!r}: the agent does not value "
                f"{config.task} samples yet; use none"
            )
        return _before_after(config, output, resume)
    with staged_folder(output, resumable=True) as temp:
        started = time.perf_counter()
        agent = agent_config(config)
        plain_run = _train_or_load(
            _with(config, policy="none", output_dir=str(temp / "plain")), resume, callbacks=[_reference(agent)]
        )
        reference = read_reference(plain_run.path)  # the agent backs off when it falls behind these scores
        agent_run = _train_or_load(
            _with(agent, output_dir=str(temp / "autonomous"), training=_shared_settings(config, plain_run)),
            resume,
            zero_shot=False,
            callbacks=[BackOff(reference)] if reference else None,
        )
        comparison = {
            "policy": agent.selection.policy,
            "plain": _scores(plain_run),
            "zero_shot": plain_run.metrics.get("zero_shot"),
            "autonomous": _scores(agent_run),
            "wall_seconds": round(time.perf_counter() - started, 1),
            **_agent_summary(temp / "autonomous" / "decisions.jsonl"),
            "better": _better(plain_run, agent_run),
        }
        comparison["table"] = comparison_table(comparison)
        write_json(temp / "comparison.json", comparison)
        (temp / "comparison.md").write_text(comparison["table"] + "\n", encoding="utf-8")
        for name in ("decisions.jsonl", "data_values.csv", "noise.json"):
            shutil.copyfile(temp / "autonomous" / name, temp / name)
        for corrected in (temp / "autonomous").glob("corrected*"):
            shutil.copyfile(corrected, temp / corrected.name)
    comparison["output_dir"] = str(output)
    comparison["report"] = str(_report(output))
    return comparison


def _report(output: Path) -> Path:
    from autoft.reporting import write_report

    path = write_report(output)
    log.info("report: %s", path)
    return path


__all__ = ["DEFAULT_POLICY", "agent_config", "comparison_table", "run", "value"]
