"""Learned against the fair static control (issue 27), from the never-worse cells: no run of its own.

The learned side is every default (``autoft run``, policy exp3): the cells the published never-worse matrix uses
(``never_worse.json``, its ``commits``). The static side is the same cell — same data, noise draw, training seed,
plain run, resolved settings, scores, re-scoring, correction, class floor and back-off — with ``selection.policy:
suspicion``: the agent minus learning (the offline ranking it starts from; no policy learns from a reward), measured
by ``never_worse.py --policy suspicion --output benchmarks/results/never_worse_static``. Each static cell re-runs
plain fine-tuning; its score beside the learned cell's plain checks that plain reproduces.

    python benchmarks/learned_vs_static.py            # writes benchmarks/results/learned_vs_static.{json,md}

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
        "back_offs": {"learned": len(a.get("back_off", [])), "static": len(s.get("back_off", []))},
        "wall_vs_plain": {
            "learned": round(a["wall_seconds"] / learned["plain"]["wall_seconds"], 2),
            "static": round(s["wall_seconds"] / static["plain"]["wall_seconds"], 2),
        },
    }


def compare(matrix: dict[str, Any], static_cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Per setting of ``SETTINGS`` with static cells: the pairs and their mean learned − static."""
    static = {}
    for cell in static_cells:  # the latest measured cell of each setting and seed
        static[cell["setting"], cell["seed"]] = cell
    settings = {}
    for name in SETTINGS:
        learned = (matrix["settings"].get(name) or {}).get("cells", [])
        pairs = [pair(c, static[name, c["seed"]]) for c in learned if (name, c["seed"]) in static and c["autonomous"]]
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


def markdown(result: dict[str, Any]) -> str:
    lines = [
        (
            "| setting | seeds | plain | learned (exp3) | static (suspicion) | learned − static, points "
            "| served: learned; static | rewards a run | wall vs plain: learned; static |"
        ),
        "|---|---|---:|---:|---:|---:|---|---|---|",
    ]
    for name, s in result["settings"].items():
        p = s["pairs"]
        col = lambda key, p=p: [x[key] for x in p]
        walls = "; ".join(f"{np.mean([x['wall_vs_plain'][k] for x in p]):.2f}" for k in ("learned", "static"))
        served = "; ".join(f"{np.mean([x['served'][k] for x in p]):.3f}" for k in ("learned", "static"))
        lines.append(
            f"| {name} | {' '.join(str(x['seed']) for x in p)} | {_spread(col('plain'))} | {_spread(col('learned'))} | "
            f"{_spread(col('static'))} | {s['mean']:+.2f} ± {s['std']:.2f} | {served} | "
            f"{', '.join(str(x['rewards']) for x in p)} | {walls} |"
        )
    lines += [
        "",
        (
            "| setting | seed (noise seed) | plain (again) | learned | static | learned − static "
            "| back-offs: learned; static | commits: learned; static |"
        ),
        "|---|---|---|---:|---:|---:|---|---|",
    ]
    for name, s in result["settings"].items():
        for x in s["pairs"]:
            lines.append(
                f"| {name} | {x['seed']} ({x['noise_seed']}) | {x['plain']:.3f} ({x['plain_again']:.3f}) | "
                f"{x['learned']:.3f} | {x['static']:.3f} | {x['learned_minus_static']:+.2f} | "
                f"{x['back_offs']['learned']}; {x['back_offs']['static']} | {x['commits']['learned']}; "
                f"{x['commits']['static']} |"
            )
    average = result["average_learned_minus_static"]
    met = ", ".join(
        f"{k}: {'met' if v else 'missed' if v is False else 'not checked'}" for k, v in result["targets"].items()
    )
    lines += ["", f"Average over the settings: {'–' if average is None else f'{average:+.2f}'} points ({met})."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learned", type=Path, default=RESULTS / "never_worse.json", help="the never-worse matrix")
    parser.add_argument("--static", type=Path, default=RESULTS / "never_worse_static_cells.jsonl", help="static cells")
    parser.add_argument("--output", type=Path, default=RESULTS / "learned_vs_static.json")
    args = parser.parse_args()
    matrix = json.loads(args.learned.read_text(encoding="utf-8"))
    result = compare(matrix, read_jsonl(args.static))
    result["sources"] = {"learned": args.learned.name, "static": args.static.name}
    write_result(args.output, result, markdown(result))


if __name__ == "__main__":
    main()
