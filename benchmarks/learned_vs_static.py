"""Learned against the fair static control (issue 27), from the never-worse cells: no run of its own.

The learned side is exp3, the default until these results made ``suspicion`` the default: the cells the never-worse
matrix used while it was (``never_worse_exp3.json``, its ``commits``; written from ``never_worse_cells.jsonl`` by
``never_worse.py --no-run --policy exp3 --output benchmarks/results/never_worse_exp3 --cells
benchmarks/results/never_worse --commit …``). The static side is the same cell — same data, noise draw, training seed,
plain run, resolved settings, scores, re-scoring, correction, class floor and back-off — with ``selection.policy:
suspicion``: the agent minus learning (the offline ranking it starts from; no policy learns from a reward), measured
by ``never_worse.py --policy suspicion --output benchmarks/results/never_worse_static``. Each static cell re-runs
plain fine-tuning; its score beside the learned cell's plain checks that plain reproduces.

    python benchmarks/learned_vs_static.py            # writes benchmarks/results/learned_vs_static.{json,md}

A learned policy other than the default (``--learned POLICY=FILE``; by default also ``alignment``, the per-sample
validation-gradient rewards) is measured on the same cells by ``never_worse.py --policy POLICY --output
benchmarks/results/never_worse_POLICY``, with ``--plain-runs`` reusing the static cells' plain runs.

Per setting and seed: test primary metric of plain, learned, static and the served model of each; learned − static
in points; the rewards the learned run's policy received (one an epoch after the first, ``selection.update_every:
epoch``, the default for classification and NER); each agent run's wall-clock over its plain run's. Targets (issue
27): learned − static ≥ +1.5 points averaged over the settings measured, no setting below −0.5.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from result_files import write_result

from autoft.io import read_jsonl

RESULTS = Path(__file__).resolve().parent / "results"
SETTINGS = ("tweeteval_sym40_noise_seeds_345", "tweeteval_asym30", "banking77_sym40", "btc_flips30")
"""The settings of issue 27's first target that the never-worse matrix holds (the mixed-source pool is not one)."""
STATIC_COMMITS = ("abd726d", "d35a5e4")
"""The static cells compared: those measured under the guards the learned cells ran under. Commit 6c4e6d4 changed
the starved-class check; its static cells are the matrix's, and stand against a learned policy only once that
policy is measured under the same check (``--static-commits``)."""


def _served(cell: dict[str, Any]) -> float:
    better = cell.get("better") or {}
    return (cell["autonomous"] if better.get("run") == "autonomous" else cell["plain"])["test"]


def pair(learned: dict[str, Any], static: dict[str, Any]) -> dict[str, Any]:
    """One setting and seed: the learned and the static cell side by side."""
    a, s = learned["autonomous"], static["autonomous"]
    return {
        "seed": learned["seed"],
        "noise_seed": learned["data"]["noise_seed"],
        "commits": {"learned": learned["commit"], "static": static["commit"]},
        "plain": learned["plain"]["test"],
        "plain_again": static["plain"]["test"],
        "learned": a["test"],
        "static": s["test"],
        "learned_minus_static": round(100 * (a["test"] - s["test"]), 2),
        "served": {"learned": _served(learned), "static": _served(static)},
        "rewards": a.get("rewards", max(0, a["epochs_run"] - 1)),  # (cells before it was recorded: epochs − 1)
        "sample_rewards": a.get("sample_rewards"),
        "back_offs": {  # (the decisions log's back-off events: every cell records them)
            "learned": sum(e["event"] == "back-off" for e in a["events"]),
            "static": sum(e["event"] == "back-off" for e in s["events"]),
        },
        "kept": {  # rows each epoch trained on (cells before selections were recorded: none)
            "learned": [x["kept"] for x in a.get("selections", [])],
            "static": [x["kept"] for x in s.get("selections", [])],
        },
        "wall_vs_plain": {
            "learned": round(a["wall_seconds"] / learned["plain"]["wall_seconds"], 2),
            "static": round(s["wall_seconds"] / static["plain"]["wall_seconds"], 2),
        },
    }


def learned_cells(path: Path) -> list[dict[str, Any]]:
    """A learned policy's cells: those a never-worse matrix (``.json``) uses, or every cell of a cell cache."""
    if path.suffix == ".jsonl":
        return read_jsonl(path)
    matrix = json.loads(path.read_text(encoding="utf-8"))
    return [cell for entry in matrix["settings"].values() for cell in entry["cells"]]


def latest(cells: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """The last cell of each setting and seed (a cache keeps every commit's, in the order measured)."""
    return {(c["setting"], c["seed"]): c for c in cells if c.get("autonomous")}


def compare(learned: list[dict[str, Any]], static_cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Per setting of ``SETTINGS`` with both cells of a seed: the pairs and their mean learned − static."""
    static, mine = latest(static_cells), latest(learned)
    settings = {}
    for name in SETTINGS:
        pairs = [pair(mine[key], static[key]) for key in sorted(mine) if key[0] == name and key in static]
        if pairs:
            gaps = [p["learned_minus_static"] for p in pairs]
            settings[name] = {
                "pairs": pairs,
                "mean": round(float(np.mean(gaps)), 2),
                "std": round(float(np.std(gaps)), 2),
            }
    means = [s["mean"] for s in settings.values()]
    average = round(float(np.mean(means)), 2) if means else None
    return {
        "settings": settings,
        "average_learned_minus_static": average,
        "targets": {
            "average ≥ +1.5 points": None if average is None else average >= 1.5,
            "no setting below −0.5 points": None if not means else min(means) >= -0.5,
        },
    }


def _spread(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def _rewards(pairs: list[dict[str, Any]]) -> str:
    return ", ".join(
        f"{x['rewards']}" + ("" if x["sample_rewards"] is None else f" ({x['sample_rewards']:,} per row)")
        for x in pairs
    )


def _kept(rows: list[int]) -> str:
    return " ".join(f"{n:,}" for n in rows) or "–"


def markdown(result: dict[str, Any]) -> str:
    lines = [
        (
            "| learned policy | setting | seeds | plain | learned | static (suspicion) | learned − static, points "
            "| served: learned; static | rewards a run | wall vs plain: learned; static |"
        ),
        "|---|---|---|---:|---:|---:|---:|---|---|---|",
    ]
    for policy, variant in result["policies"].items():
        for name, s in variant["settings"].items():
            p = s["pairs"]
            col = lambda key, p=p: [x[key] for x in p]
            walls = "; ".join(f"{np.mean([x['wall_vs_plain'][k] for x in p]):.2f}" for k in ("learned", "static"))
            served = "; ".join(f"{np.mean([x['served'][k] for x in p]):.3f}" for k in ("learned", "static"))
            lines.append(
                f"| {policy} | {name} | {' '.join(str(x['seed']) for x in p)} | {_spread(col('plain'))} | "
                f"{_spread(col('learned'))} | {_spread(col('static'))} | {s['mean']:+.2f} ± {s['std']:.2f} | "
                f"{served} | {_rewards(p)} | {walls} |"
            )
    lines += [
        "",
        (
            "| learned policy | setting | seed (noise seed) | plain (again) | learned | static | learned − static "
            "| back-offs: learned; static | rows kept each epoch: learned; static | commits: learned; static |"
        ),
        "|---|---|---|---|---:|---:|---:|---|---|---|",
    ]
    for policy, variant in result["policies"].items():
        for name, s in variant["settings"].items():
            for x in s["pairs"]:
                lines.append(
                    f"| {policy} | {name} | {x['seed']} ({x['noise_seed']}) | {x['plain']:.3f} "
                    f"({x['plain_again']:.3f}) | {x['learned']:.3f} | {x['static']:.3f} | "
                    f"{x['learned_minus_static']:+.2f} | {x['back_offs']['learned']}; {x['back_offs']['static']} | "
                    f"{_kept(x['kept']['learned'])}; {_kept(x['kept']['static'])} | "
                    f"{x['commits']['learned']}; {x['commits']['static']} |"
                )
    lines += [
        "",
        (
            "Rewards a run: the policy updates from the epoch's validation gain (per-row rewards in brackets); for "
            "cells measured before the count was recorded, the epochs run less one (one an epoch after the first). "
            "Rows kept each epoch: what the agent trained on at each epoch's start (– for cells measured before "
            "it was recorded); a back-off raises it."
        ),
        "",
    ]
    for policy, variant in result["policies"].items():
        average = variant["average_learned_minus_static"]
        met = ", ".join(
            f"{k}: {'met' if v else 'missed' if v is False else 'not checked'}" for k, v in variant["targets"].items()
        )
        settings = ", ".join(variant["settings"]) or "none"
        lines.append(
            f"- {policy}: average over the settings measured ({settings}) "
            f"{'–' if average is None else f'{average:+.2f}'} points ({met})."
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--learned",
        nargs="+",
        default=["exp3=never_worse_exp3.json", "alignment=never_worse_alignment_cells.jsonl"],
        metavar="POLICY=FILE",
        help="each learned policy and its cells: a never-worse matrix (.json) or a cell cache (.jsonl), under "
        "benchmarks/results/ (default: exp3 and alignment; a file not there is left out)",
    )
    parser.add_argument("--static", type=Path, default=RESULTS / "never_worse_static_cells.jsonl", help="static cells")
    parser.add_argument(
        "--static-commits", nargs="+", default=list(STATIC_COMMITS), help="the static cells' commits to compare"
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "learned_vs_static.json")
    args = parser.parse_args()
    static = [cell for cell in read_jsonl(args.static) if cell["commit"] in args.static_commits]
    policies, sources = {}, {"static": args.static.name}
    for item in args.learned:
        policy, _, name = item.partition("=")
        path = RESULTS / name
        if path.exists():
            policies[policy], sources[policy] = compare(learned_cells(path), static), name
    write_result(args.output, {"policies": policies, "sources": sources}, markdown({"policies": policies}))


if __name__ == "__main__":
    main()
