"""The benchmark tables and figures of docs/, read from the result files under benchmarks/results/.

Every function here reads result files a benchmark script wrote and returns Markdown: ``TABLES`` are whole tables
(a template asks for one with ``<!-- table: NAME -->``), ``FIGURES`` are the single values a page's prose quotes
(``{{ topic.key }}``). A table that a script already wrote as ``.md`` is included as it stands
(``<!-- table: FILE.md -->``) and needs nothing here. No figure is typed by hand: a result file re-written by its
benchmark changes the page at the next ``python docs/build.py``, and ``--check`` fails until then.
"""

from __future__ import annotations

import json
import re
import statistics
import textwrap
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"

DATA_NAMES = {
    "tweeteval_emotion": "TweetEval emotion",
    "banking77": "BANKING77",
    "btc_ner": "BTC NER",
    "semeval": "SemEval relations",
    "sgd_acts": "SGD dialogue acts",
}
UNITS = {"btc_ner": "sentences", "semeval": "sentences", "sgd_acts": "turns"}


# --- reading and formatting ------------------------------------------------------------------------
@cache
def result(name: str) -> Any:
    """A JSON result file of benchmarks/results/ (``.jsonl``: the list of its lines)."""
    path = RESULTS / name
    if not path.is_file():
        raise FileNotFoundError(f"benchmarks/results/{name}: no such result file")
    text = path.read_text(encoding="utf-8")
    if name.endswith(".jsonl"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def result_text(name: str) -> str:
    """A Markdown file a benchmark wrote, as it stands."""
    path = RESULTS / name
    if not path.is_file():
        raise FileNotFoundError(f"benchmarks/results/{name}: no such result file")
    return path.read_text(encoding="utf-8").strip("\n")


def f3(value: float | None) -> str:
    """A score to three decimals; '–' when absent."""
    return "–" if value is None else f"{value:.3f}"


def f2(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def pts(value: float, signed: bool = True) -> str:
    """A difference of two scores in points (hundredths), one decimal: ``+4.0``, ``−1.0``."""
    text = f"{abs(value) * 100:.1f}"
    return text if not signed else ("−" if value < -0.0005 else "+") + text


def pct(value: float, digits: int = 1) -> str:
    return f"{value * 100:.{digits}f}%"


def rate(value: float | None) -> str:
    """A learning rate: ``2.6e-4``."""
    if value is None:
        return "–"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def table(header: Iterable[str], rows: Iterable[Iterable[Any]], align: str | None = None) -> str:
    """A Markdown table; ``align`` is one letter per column: l (left) or r (right)."""
    header = list(header)
    align = align or "l" * len(header)
    rule = "|".join("---:" if a == "r" else "---" for a in align)
    lines = ["| " + " | ".join(header) + " |", f"|{rule}|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def noisy(file: str, method: str, seed: int | None = None) -> dict[str, Any] | None:
    """One method's run in a ``noisy_labels.py`` / ``noisy_ner.py`` result file (``seed``: the file's seeds'
    first unless given); None when the file does not hold it."""
    data = result(file)
    runs = data["per_seed"].get(method)
    if not runs:
        return None
    seeds = data["args"]["seeds"]
    return runs[seeds.index(seed) if seed is not None else 0]


def summary(file: str, method: str) -> dict[str, Any]:
    return result(file)["summary"][method]


# --- the README's headline: benchmarks/never_worse.py ----------------------------------------------
def setting_label(setting: dict[str, Any]) -> str:
    """A never_worse.py setting (``{"data": "tweeteval_emotion", "size": "300", "noise": 0.1, ...}``) in words:
    'TweetEval emotion, 300 rows, 10% symmetric noise'."""
    data = setting["data"]
    unit = UNITS.get(data, "rows")
    size = f"all {unit}" if setting["size"] == "full" else f"{int(setting['size']):,} {unit}"
    if setting.get("first"):
        size = f"first {setting['first']:,} {unit}"
    label = f"{DATA_NAMES.get(data, data)}, {size}"
    if setting["noise"]:
        kind = {"flips": "entity-type flips"}.get(setting["noise_kind"], f"{setting['noise_kind']} noise")
        label += f", {setting['noise'] * 100:.0f}% {kind}"
    else:
        label += ", clean"
    return label


def classes_lost(summary_: dict[str, Any]) -> str:
    lost = summary_["classes_lost"]
    if not lost:
        return "none (idle: nothing to act on)" if summary_["events"].get("idle") == len(summary_["seeds"]) else "none"
    classes = sum(len(names) for names in lost.values())
    seeds = len(lost)
    return f"{classes} {'class' if classes == 1 else 'classes'}, on {seeds} of {len(summary_['seeds'])} seeds"


def headline() -> str:
    """The README's one results table: never_worse.json's settings, the mean over seeds."""
    data = result("never_worse.json")
    commits = data.get("commits") or {name: data["commit"] for name in data["settings"]}
    several = len(set(commits.values())) > 1
    rows = []
    for name, entry in data["settings"].items():
        s = entry["summary"]
        if not s["autonomous"]:
            continue
        met = all(t["met"] for t in s["targets_served"])
        rows.append(
            [
                setting_label(entry["setting"]),
                len(s["seeds"]),
                f3(statistics.fmean(s["plain"])),
                f3(statistics.fmean(s["autonomous"])),
                f3(statistics.fmean(s["served"])),
                f"{s['worst_gap']['gap']:+.3f}".replace("-", "−"),
                classes_lost(s),
                "yes" if met else "**no**",
                *([commits[name]] if several else []),
            ]
        )
    intro = (
        f"`autoft run` with every default (never told a noise rate; the agent's policy: "
        f"`{data['policy']}`): plain fine-tuning against the agent's run on "
        f"the same splits, and the run `autoft run` serves (the better one on the same validation rows). Test "
        f"macro-F1 (entity F1 for BTC, the official macro-F1 for SemEval), mean over seeds; the worst seed gap is "
        f"the agent's run less plain. Measured at {'the commit of each row' if several else 'commit ' + data['commit']} "
        f"by `python benchmarks/never_worse.py` "
        f"([`never_worse.md`](benchmarks/results/never_worse.md)). Targets: on clean data and the 300-row slices, "
        f"the served mean at most 0.005 below plain's, no seed more than 0.02 below, no class lost; at 40% symmetric "
        f"noise, no seed below plain, no class lost and the mean at least cleanlab's; where the agent gained before "
        f"(30% asymmetric noise, 40% BANKING77, BTC type flips), a mean gain above 0."
    )
    intro = textwrap.fill(intro, width=118, break_long_words=False, break_on_hyphens=False)
    return (
        intro
        + "\n\n"
        + table(
            [
                "setting",
                "seeds",
                "plain",
                "agent's run",
                "served",
                "worst seed gap",
                "classes the agent's run lost",
                "targets met (served)",
                *(["commit"] if several else []),
            ],
            rows,
            "llrrrrll" + ("l" if several else ""),
        )
    )


def _cells(commit: str, settings: tuple[str, ...]) -> list[dict[str, Any]]:
    """The cells of ``settings`` measured at ``commit``, from never_worse.py's cell cache (it keeps every commit's)."""
    return [
        cell for cell in result("never_worse_cells.jsonl") if cell["commit"] == commit and cell["setting"] in settings
    ]


def _cell_rows(cells: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            setting_label(_setting_of(cell["setting"])),
            cell["seed"],
            f3(cell["plain"]["test"]),
            f3(cell["autonomous"]["test"]),
            pts(cell["gap"]),
            pct(cell["autonomous"]["drop_fraction"]),
            ", ".join(f"`{name}`" for name in cell["classes_lost"]) or "none",
        ]
        for cell in cells
    ]


CELL_COLUMNS = ["setting", "seed", "plain", "agent's run", "gap (points)", "left out", "classes the agent's run lost"]


def never_worse_before_rows_rule() -> str:
    """The 300-row BANKING77 cells measured before the rows-per-class rule (commit 3bbb90a)."""
    return table(
        CELL_COLUMNS, _cell_rows(_cells("3bbb90a", ("banking77_300_clean", "banking77_300_noise10"))), "lrrrrrl"
    )


def never_worse_before_class_cap() -> str:
    """BANKING77's 1,500 clean rows before the 1% floor and the per-class cap (commit 3345e94)."""
    return table(CELL_COLUMNS, _cell_rows(_cells("3345e94", ("banking77_1500_clean",))), "lrrrrrl")


def _setting_of(name: str) -> dict[str, Any]:
    """'banking77_300_noise10' → the fields setting_label reads."""
    data, size, noise = name.rsplit("_", 2)
    return {"data": data, "size": size, "noise": 0.1 if noise == "noise10" else 0.0, "noise_kind": "symmetric"}


def never_worse_figures() -> dict[str, str]:
    figures = {"commit": result("never_worse.json")["commit"]}
    for setting in ("banking77_300_clean", "banking77_300_noise10"):
        losses = [-cell["gap"] for cell in _cells("3bbb90a", (setting,))]
        figures[f"{setting}_before_loss_low"] = pts(min(losses), signed=False)
        figures[f"{setting}_before_loss_high"] = pts(max(losses), signed=False)
    cap = _cells("3345e94", ("banking77_1500_clean",))
    drops = [cell["autonomous"]["drop_fraction"] for cell in cap]
    figures["banking77_1500_drop_low"], figures["banking77_1500_drop_high"] = pct(min(drops)), pct(max(drops))
    figures["banking77_1500_seeds_losing_a_class"] = str(sum(bool(cell["classes_lost"]) for cell in cap))
    return figures


# --- training defaults: benchmarks/defaults.py, finetune_public.py --------------------------------
def finetune_public() -> str:
    rows = []
    for name, metric in (
        ("finetune_tweeteval_emotion.json", "macro-F1 **{f1}**, accuracy {acc}"),
        ("finetune_btc_ner.json", "entity F1 **{f1}** (P {p}, R {r})"),
    ):
        run = result(name)
        test, sizes = run["test"], run["sizes"]
        score = metric.format(
            f1=f3(test.get("macro_f1", test.get("f1"))),
            acc=f3(test.get("accuracy")),
            p=f3(test.get("precision")),
            r=f3(test.get("recall")),
        )
        rows.append(
            [
                DATA_NAMES[run["dataset"]],
                f"{sizes['train']:,} / {sizes['validation']:,} / {sizes['test']:,}",
                score,
                run["best_epoch"],
                f"{run['wall_seconds']:,.0f} s",
            ]
        )
    return table(["data set", "train / val / test", "test metric", "best epoch", "wall"], rows, "lllrr")


def _default(file: str, name: str) -> dict[str, Any]:
    return result(file)["sets"][name]["default"]


def defaults_ceiling() -> str:
    """The ceiling against its control (defaults_no_ceiling.json): validation and test, rates."""
    rows = []
    for name in result("defaults_no_ceiling.json")["sets"]:
        control, ceiling = _default("defaults_no_ceiling.json", name), _default("defaults.json", name)
        head = ceiling["auto"]["head_learning_rate"]["value"]
        rows.append(
            [
                name,
                rate(control["settings"]["learning_rate"]),
                f3(control["validation"]),
                f3(control["test"]),
                f"{rate(ceiling['settings']['learning_rate'])} ({rate(head)})",
                f3(ceiling["validation"]),
                f3(ceiling["test"]),
            ]
        )
    return table(
        [
            "set / train rows",
            "range test",
            "control: validation",
            "test",
            "with the ceiling: encoder (head)",
            "validation",
            "test",
        ],
        rows,
        "lrrrrrr",
    )


def defaults_choices() -> str:
    """The two choices made on BANKING77's 1,500 rows: the label-count epoch factor and the ceiling's stretch."""
    name = "banking77/1500"
    rows = []
    for file, what in (
        ("defaults_banking77_1500_label_scale_1.43.json", "epoch factor ×1.43 (the commit before ×1.71)"),
        ("defaults_ceiling_linear.json", "×1.71, the ceiling stretched by s (commit a071a6f)"),
        ("defaults.json", "×1.71, the ceiling stretched by s² (the default)"),
    ):
        run = result(file)["sets"][name]["default"]
        rows.append(
            [
                what,
                f"`{file}`",
                rate(run["settings"]["learning_rate"]),
                run["settings"]["epochs"],
                f3(run["validation"]),
                f3(run["test"]),
            ]
        )
    return table(
        ["BANKING77, 1,500 rows", "result file", "encoder rate", "epochs planned", "validation", "test"], rows, "llrrrr"
    )


def defaults_rollback() -> str:
    """``on_plateau: rollback`` (defaults_rollback.json, commit 5c4fadd) beside the default of defaults.json."""
    rows = []
    for name, run in result("defaults_rollback.json")["sets"].items():
        default = _default("defaults.json", name)
        rows.append(
            [
                name,
                f3(default["validation"]),
                f3(run["default"]["validation"]),
                f3(default["test"]),
                f3(run["default"]["test"]),
                ", ".join(map(str, run["default"].get("rollbacks") or [])) or "–",
                f"{run['wall_ratio']:.2f}",
            ]
        )
    return table(
        [
            "set / train rows",
            "default: validation",
            "rollback: validation",
            "default: test",
            "rollback: test",
            "rolled back after epochs",
            "rollback fit / best cell fit",
        ],
        rows,
        "lrrrrlr",
    )


def defaults_two_shuffles() -> str:
    """The steadier range test (defaults_lr_two_shuffles.json, commit 46bc193)."""
    rows = []
    for name, entry in result("defaults_lr_two_shuffles.json")["sets"].items():
        run = entry["default"]
        seconds = re.search(r"\((\d+) s\)", run["auto"]["learning_rate"]["how"])
        rows.append(
            [
                name,
                rate(run["settings"]["learning_rate"]),
                seconds.group(1) if seconds else "–",
                f3(run["validation"]),
                f3(run["test"]),
            ]
        )
    return table(["set / train rows", "rate chosen", "search s", "validation", "test"], rows, "lrrrr")


def defaults_figures() -> dict[str, str]:
    sets = result("defaults.json")["sets"]
    met = [name for name, entry in sets.items() if entry["met"]]
    full = sets["tweeteval_emotion/full"]["default"]
    planned = re.search(r"/ sqrt\((\d+) planned steps\)", full["auto"]["learning_rate"]["how"])
    control = _default("defaults_no_ceiling.json", "tweeteval_emotion/full")
    rollback = result("defaults_rollback.json")["sets"]
    worse = sum(
        run["default"]["validation"] < _default("defaults.json", name)["validation"] for name, run in rollback.items()
    )
    return {
        "met": str(len(met)),
        "rows": str(len(sets)),
        "tweeteval_full_range_test": rate(full["auto"]["head_learning_rate"]["value"]),
        "tweeteval_full_planned_steps": planned.group(1) if planned else "–",
        "tweeteval_full_encoder": rate(full["settings"]["learning_rate"]),
        "tweeteval_full_control_validation": f3(control["validation"]),
        "tweeteval_full_validation": f3(full["validation"]),
        "rollback_worse": str(worse),
        "rollback_rows": str(len(rollback)),
    }


# --- noisy labels: benchmarks/noisy_labels.py, noise_rate.py, self_training.py, the demo -----------
def clean_labels() -> str:
    rows = []
    for file, method, label in (
        ("noisy_tweeteval_emotion_symmetric_0_global.json", "none", "plain fine-tuning"),
        ("noisy_tweeteval_emotion_symmetric_0_global.json", "exp3", "autonomous (exp3)"),
        (
            "noisy_tweeteval_emotion_symmetric_0_forward_seed0.json",
            "exp3",
            "autonomous at HEAD (suspicion ranking, forward correction)",
        ),
    ):
        run, wall = noisy(file, method), summary(file, method).get("wall_vs_none")
        rows.append(
            [
                label,
                rate(run["learning_rate"]),
                f3(run["validation_macro_f1"]),
                f3(run["accuracy"]),
                f3(run["macro_f1"]),
                f"{wall:.2f}" if wall else "–",
                f"`{file}`",
            ]
        )
    return table(
        [
            "method",
            "learning rate (range test)",
            "validation macro-F1",
            "test accuracy",
            "test macro-F1",
            "wall vs plain",
            "file",
        ],
        rows,
        "lrrrrrl",
    )


TE = "noisy_tweeteval_emotion_"
HEAD_ROWS: list[tuple[str, dict[tuple[str, int], tuple[str, str]]]] = [
    (
        "plain fine-tuning",
        {
            ("sym", 0): ("symmetric_40_head", "none"),
            ("sym", 1): ("symmetric_40_head_seed1", "none"),
            ("sym", 2): ("symmetric_40_head_seed2", "none"),
            ("asym", 0): ("asymmetric_30_head", "none"),
            ("asym", 1): ("asymmetric_30_head_seed1_none", "none"),
            ("asym", 2): ("asymmetric_30_head_seed2", "none"),
        },
    ),
    (
        "cleanlab",
        {
            ("sym", 0): ("symmetric_40_cleanlab_head", "cleanlab"),
            ("sym", 1): ("symmetric_40_static_cleanlab_head_seed1", "cleanlab"),
            ("sym", 2): ("symmetric_40_head_seed2", "cleanlab"),
            **{("asym", s): (f"asymmetric_30_cleanlab_seed{s}", "cleanlab") for s in (0, 1, 2)},
        },
    ),
    (
        "GLC (`policy: none`, `correction: forward`)",
        {("sym", 0): ("symmetric_40_forward_seed0", "glc"), ("asym", 0): ("asymmetric_30_forward_seed0", "glc")},
    ),
    (
        "static (the suspicion ranking, no learning) + correction",
        {
            ("sym", 0): ("symmetric_40_forward_static_seed0", "static"),
            ("sym", 1): ("symmetric_40_forward_seed1", "static"),
            ("sym", 2): ("symmetric_40_head_seed2", "static"),
            ("asym", 0): ("asymmetric_30_head_static_seed0", "static"),
            ("asym", 1): ("asymmetric_30_forward_seed1", "static"),
            ("asym", 2): ("asymmetric_30_head_seed2", "static"),
        },
    ),
    (
        "**exp3 + correction (the default)**",
        {
            ("sym", 0): ("symmetric_40_forward_seed0", "exp3"),
            ("sym", 1): ("symmetric_40_forward_seed1", "exp3"),
            ("sym", 2): ("symmetric_40_head_seed2", "exp3"),
            ("asym", 0): ("asymmetric_30_forward_seed0", "exp3"),
            ("asym", 1): ("asymmetric_30_forward_seed1", "exp3"),
            ("asym", 2): ("asymmetric_30_head_seed2", "exp3"),
        },
    ),
    (
        "exp3, suspicion ranking, no correction",
        {("sym", 0): ("symmetric_40_suspicion_seed0", "exp3"), ("asym", 0): ("asymmetric_30_suspicion_seed0", "exp3")},
    ),
    (
        "static, suspicion ranking, no correction",
        {
            ("sym", 0): ("symmetric_40_suspicion_seed0", "static"),
            ("asym", 0): ("asymmetric_30_suspicion_seed0", "static"),
        },
    ),
    (
        "exp3 before the suspicion ranking and the correction (probes + neighbours)",
        {
            ("sym", 0): ("symmetric_40_head", "exp3"),
            ("sym", 1): ("symmetric_40_head_seed1", "exp3"),
            ("asym", 0): ("asymmetric_30_head", "exp3"),
            ("asym", 1): ("asymmetric_30_head_seed1_exp3", "exp3"),
        },
    ),
]
"""The TweetEval table at HEAD: per method, (noise, seed) → (result file after noisy_tweeteval_emotion_, method)."""


def _head_run(cells: dict[tuple[str, int], tuple[str, str]], noise: str, seed: int) -> dict[str, Any] | None:
    if (noise, seed) not in cells:
        return None
    stem, method = cells[(noise, seed)]
    return noisy(f"{TE}{stem}.json", method, seed)


def _head_mean(cells: dict[tuple[str, int], tuple[str, str]], noise: str, key: str = "macro_f1") -> float | None:
    runs = [_head_run(cells, noise, seed) for seed in (0, 1, 2)]
    return statistics.fmean(r[key] for r in runs) if all(runs) else None


def noisy_head_tweeteval() -> str:
    rows = []
    for label, cells in HEAD_ROWS:
        row = [label]
        for noise in ("sym", "asym"):
            for seed in (0, 1, 2):
                run = _head_run(cells, noise, seed)
                row.append("–" if run is None else f"{f3(run['macro_f1'])} ({f3(run.get('validation_macro_f1'))})")
            row.append(f3(_head_mean(cells, noise)))
        rows.append(row)
    return table(
        ["method", "40% sym. seed 0", "seed 1", "seed 2", "mean", "30% asym. seed 0", "seed 1", "seed 2", "mean"],
        rows,
        "lrrrrrrrr",
    )


def noisy_head_files() -> str:
    """Which file each cell of the TweetEval table at HEAD comes from."""
    rows = [
        [
            label,
            *(
                f"`{cells[(noise, seed)][0]}`" if (noise, seed) in cells else "–"
                for noise in ("sym", "asym")
                for seed in (0, 1, 2)
            ),
        ]
        for label, cells in HEAD_ROWS
    ]
    return table(["method", "40% sym. seed 0", "seed 1", "seed 2", "30% asym. seed 0", "seed 1", "seed 2"], rows)


def noisy_head_banking77() -> str:
    main, off = "noisy_banking77_symmetric_40_head.json", "noisy_banking77_symmetric_40_head_exp3_rescore_off.json"
    rows = []
    for file, method, label in (
        (main, "oracle", "clean labels (oracle)"),
        (main, "none", "plain fine-tuning"),
        (main, "static", "static + correction"),
        (main, "exp3", "exp3 + correction (default)"),
        (off, "exp3", "exp3 + correction, `rescore: off`"),
    ):
        run = noisy(file, method)
        wall = run["wall_seconds"] / noisy(main, "none")["wall_seconds"]
        flagged = f"{f2(run['precision'])} / {f2(run['recall'])}" if run.get("precision") is not None else "–"
        rows.append(
            [
                label,
                rate(run["learning_rate"]),
                f3(run["validation_macro_f1"]),
                f3(run["accuracy"]),
                f3(run["macro_f1"]),
                f3(run.get("auroc")),
                flagged,
                f"{wall:.2f}",
            ]
        )
    return table(
        [
            "method",
            "learning rate",
            "validation macro-F1",
            "test accuracy",
            "test macro-F1",
            "AUROC",
            "flagged P / R",
            "wall vs plain",
        ],
        rows,
        "lrrrrrrr",
    )


def _summary_row(label: str, s: dict[str, Any]) -> list[str]:
    def cell(key: str) -> str:
        m = s.get(key)
        return "–" if m is None else (f"{m['mean']:.3f} ± {m['std']:.3f}" if m["n"] > 1 else f3(m["mean"]))

    flagged = f"{s['precision']['mean']:.2f} / {s['recall']['mean']:.2f}" if "precision" in s else "–"
    lowest = (
        " / ".join(f"{s[f'noise_in_lowest_{n}']['mean']:.2f}" for n in (10, 20, 40))
        if "noise_in_lowest_10" in s
        else "–"
    )
    return [label, cell("accuracy"), cell("macro_f1"), cell("auroc"), flagged, lowest]


def _pooled(files: list[str], method: str) -> dict[str, Any]:
    """A summary over the seeds of several files (mean ± population std, as the script computes it)."""
    runs = [run for file in files for run in result(file)["per_seed"][method]]
    pooled: dict[str, Any] = {}
    for key in (
        "accuracy",
        "macro_f1",
        "auroc",
        "precision",
        "recall",
        "noise_in_lowest_10",
        "noise_in_lowest_20",
        "noise_in_lowest_40",
    ):
        values = [run[key] for run in runs if run.get(key) is not None]
        if values:
            pooled[key] = {"mean": statistics.fmean(values), "std": statistics.pstdev(values), "n": len(values)}
    return pooled


def noisy_before_auto() -> str:
    """TweetEval, 40% symmetric noise, agents told the rate, 3 epochs at 1e-4 (before drop_fraction: auto)."""
    dyn = f"{TE}symmetric_40_dynamics.json"
    rows = [
        _summary_row("oracle (true labels; seed 0)", summary(f"{TE}symmetric_40_baselines.json", "oracle")),
        _summary_row("none (noisy labels)", summary(dyn, "none")),
        _summary_row("cleanlab, probe C=1", summary(f"{TE}symmetric_40_cleanlab_c1.json", "cleanlab")),
        _summary_row("cleanlab, probe C=0.1", summary(dyn, "cleanlab")),
    ]
    rows += [
        _summary_row(label, summary(dyn, method))
        for method, label in (
            ("small-loss", "small-loss"),
            ("reinforce", "reinforce"),
            ("q-learning", "q-learning"),
            ("exp3", "**exp3**"),
        )
    ]
    rows.append(
        _summary_row(
            "exp3, `rescore: model` (global ranks)",
            _pooled([f"{TE}symmetric_40_exp3_model_seeds01.json", f"{TE}symmetric_40_exp3_model_seed2.json"], "exp3"),
        )
    )
    rows.append(
        _summary_row(
            "exp3, `rescore: model` (ranks within each class, as shipped)",
            summary(f"{TE}symmetric_40_exp3_model_perclass.json", "exp3"),
        )
    )
    return table(
        ["method", "test accuracy", "test macro-F1", "noise AUROC", "flagged P / R", "noise in lowest 10/20/40%"], rows
    )


def noisy_other_settings() -> str:
    te20, b77 = f"{TE}symmetric_20.json", "noisy_banking77_symmetric_40.json"
    rows = []
    for label, file, cleanlab_file in (
        ("TweetEval, 20% symmetric", te20, f"{TE}symmetric_20_cleanlab_c1.json"),
        ("BANKING77 (first 4,000 training rows), 40% symmetric", b77, b77),
    ):
        rows.append(
            [
                label,
                f3(noisy(file, "none")["macro_f1"]),
                f3(noisy(cleanlab_file, "cleanlab")["macro_f1"]),
                f3(noisy(file, "small-loss")["macro_f1"]),
                f3(noisy(file, "exp3")["macro_f1"]),
                f3(noisy(file, "exp3")["auroc"]),
            ]
        )
    return table(
        ["data, noise (test macro-F1)", "none", "cleanlab (C=1)", "small-loss", "exp3", "exp3 noise AUROC"],
        rows,
        "lrrrrr",
    )


def noisy_figures() -> dict[str, str]:
    head = dict(HEAD_ROWS)
    plain, cleanlab = head["plain fine-tuning"], head["cleanlab"]
    exp3, static = (
        head["**exp3 + correction (the default)**"],
        head["static (the suspicion ranking, no learning) + correction"],
    )
    figures: dict[str, str] = {}
    for noise in ("sym", "asym"):
        e, p, c, s = (_head_mean(cells, noise) for cells in (exp3, plain, cleanlab, static))
        figures |= {
            f"{noise}_exp3": f3(e),
            f"{noise}_plain": f3(p),
            f"{noise}_cleanlab": f3(c),
            f"{noise}_static": f3(s),
            f"{noise}_exp3_vs_plain": pts(e - p),
            f"{noise}_exp3_vs_cleanlab": pts(e - c),
        }
    b77 = "noisy_banking77_symmetric_40_head.json"
    b_exp3, b_static = noisy(b77, "exp3")["macro_f1"], noisy(b77, "static")["macro_f1"]
    figures["banking77_exp3_vs_plain"] = pts(b_exp3 - noisy(b77, "none")["macro_f1"])
    figures["learned_vs_static_mean"] = pts(_learned_vs_static()[1])
    figures["sym_exp3_auroc"] = " / ".join(f3(_head_run(exp3, "sym", s)["auroc"]) for s in (0, 1, 2))
    figures["asym_exp3_auroc"] = " / ".join(f3(_head_run(exp3, "asym", s)["auroc"]) for s in (0, 1, 2))
    figures["sym_estimated"] = " / ".join(pct(_head_run(exp3, "sym", s)["estimated_noise"]) for s in (0, 1, 2))
    figures["sym_true"] = " / ".join(pct(_head_run(exp3, "sym", s)["true_noise"]) for s in (0, 1, 2))
    figures["asym_estimated"] = " / ".join(pct(_head_run(exp3, "asym", s)["estimated_noise"]) for s in (0, 1, 2))
    figures["asym_true"] = " / ".join(pct(_head_run(exp3, "asym", s)["true_noise"]) for s in (0, 1, 2))
    seed2 = f"{TE}symmetric_40_head_seed2.json", f"{TE}asymmetric_30_head_seed2.json"
    figures["sym_wall_seed2"] = f"{summary(seed2[0], 'exp3')['wall_vs_none']:.2f}"
    figures["asym_wall_seed2"] = f"{summary(seed2[1], 'exp3')['wall_vs_none']:.2f}"
    reinforce = noisy(f"{TE}symmetric_40_head_reinforce_draw_seed0.json", "reinforce")
    figures["reinforce_test"], figures["reinforce_validation"] = (
        f3(reinforce["macro_f1"]),
        f3(reinforce["validation_macro_f1"]),
    )
    clean_plain = noisy(f"{TE}symmetric_0_global.json", "none")
    clean_agent = noisy(f"{TE}symmetric_0_forward_seed0.json", "exp3")
    figures["clean_estimated"] = pct(clean_agent["estimated_noise"])
    figures["clean_gap"] = pts(clean_agent["macro_f1"] - clean_plain["macro_f1"])
    oracle = noisy(f"{TE}symmetric_40_baselines.json", "oracle")["macro_f1"]  # plain fine-tuning on the true labels
    figures["oracle"] = f3(oracle)
    figures["asym_target"], figures["sym_target"] = f3(0.95 * oracle), f3(0.97 * oracle)
    figures["asym_target_miss"] = pts(0.95 * oracle - _head_mean(exp3, "asym"), signed=False)
    figures["sym_target_miss"] = pts(0.97 * oracle - _head_mean(exp3, "sym"), signed=False)
    figures["sym_cleanlab_target_miss"] = pts(
        _head_mean(cleanlab, "sym") + 0.05 - _head_mean(exp3, "sym"), signed=False
    )
    figures["glc_sym_rate"] = rate(
        _head_run(head["GLC (`policy: none`, `correction: forward`)"], "sym", 0)["learning_rate"]
    )
    seed2 = _head_run(exp3, "sym", 2), _head_run(cleanlab, "sym", 2)
    figures["sym_seed2_exp3_accuracy"], figures["sym_seed2_cleanlab_accuracy"] = (f3(run["accuracy"]) for run in seed2)
    figures["sym_seed2_exp3"] = f3(seed2[0]["macro_f1"])
    seed0 = _head_run(exp3, "sym", 0)
    figures["sym_seed0_exp3"], figures["sym_seed0_exp3_validation"] = (
        f3(seed0["macro_f1"]),
        f3(seed0["validation_macro_f1"]),
    )
    figures["sym_seed0_exp3_auroc"] = f3(seed0["auroc"])
    figures["reinforce_auroc"] = f3(reinforce["auroc"])
    b_oracle = noisy(b77, "oracle")["macro_f1"]
    figures["banking77_target"] = f3(0.97 * b_oracle)
    figures["banking77_target_miss"] = pts(0.97 * b_oracle - b_exp3, signed=False)
    figures["banking77_static_target_miss"] = pts(0.97 * b_oracle - b_static, signed=False)
    b_off = noisy("noisy_banking77_symmetric_40_head_exp3_rescore_off.json", "exp3")["macro_f1"]
    figures["banking77_off_vs_static"] = pts(b_off - b_static)
    # before drop_fraction: auto (agents told the rate, 3 epochs at 1e-4): noisy_..._symmetric_40_dynamics.json
    dyn = f"{TE}symmetric_40_dynamics.json"
    old_oracle = summary(f"{TE}symmetric_40_baselines.json", "oracle")["macro_f1"]["mean"]
    old_exp3 = summary(dyn, "exp3")
    figures["old_target"] = f3(0.97 * old_oracle)
    figures["old_target_miss"] = pts(0.97 * old_oracle - old_exp3["macro_f1"]["mean"], signed=False)
    figures["old_vs_cleanlab_c1"] = pts(
        old_exp3["macro_f1"]["mean"] - summary(f"{TE}symmetric_40_cleanlab_c1.json", "cleanlab")["macro_f1"]["mean"]
    )
    figures["old_vs_cleanlab_c01"] = pts(old_exp3["macro_f1"]["mean"] - summary(dyn, "cleanlab")["macro_f1"]["mean"])
    figures["old_exp3_auroc"] = f3(old_exp3["auroc"]["mean"])
    figures["old_model_auroc"] = f3(summary(f"{TE}symmetric_40_exp3_model_perclass.json", "exp3")["auroc"]["mean"])
    figures["old_dropped_clean"] = pct(1 - old_exp3["precision"]["mean"], 0)
    walls = result(dyn)["per_seed"]
    seeds = result(dyn)["args"]["seeds"]
    later = [seeds.index(1), seeds.index(2)]  # seed 0's plain run shared the cores
    none_wall = [walls["none"][i]["wall_seconds"] for i in later]
    figures["old_exp3_wall"] = f"{sum(walls['exp3'][i]['wall_seconds'] for i in later) / sum(none_wall):.2f}"
    ratios = [
        walls[m][i]["wall_seconds"] / walls["none"][i]["wall_seconds"]
        for m in ("small-loss", "reinforce", "q-learning", "exp3")
        for i in later
    ]
    figures["old_max_agent_wall"] = f"{max(ratios):.2f}"
    global_ranks = noisy(f"{TE}symmetric_40_exp3_model_seed2.json", "exp3", 2)
    figures["old_model_global_seed2"] = f3(global_ranks["macro_f1"])
    figures["old_model_global_seeds01"] = " / ".join(
        f3(noisy(f"{TE}symmetric_40_exp3_model_seeds01.json", "exp3", s)["macro_f1"]) for s in (0, 1)
    )
    model_wall = summary(f"{TE}symmetric_40_exp3_model_perclass.json", "exp3")["wall_seconds"]["mean"]
    figures["old_model_wall"] = f"{model_wall:.0f}"
    figures["old_dynamics_wall"] = f"{old_exp3['wall_seconds']['mean']:.0f}"
    te20, b40 = f"{TE}symmetric_20.json", "noisy_banking77_symmetric_40.json"
    figures["te20_exp3_vs_none"] = pts(noisy(te20, "exp3")["macro_f1"] - noisy(te20, "none")["macro_f1"])
    figures["b40_exp3_vs_none"] = pts(noisy(b40, "exp3")["macro_f1"] - noisy(b40, "none")["macro_f1"])
    return figures


def _learned_vs_static() -> tuple[list[list[str]], float]:
    """The learned policy (exp3) against its own starting ranking without learning (static), same rate and
    correction: a row per setting and seed (test and validation gaps), and the mean test gap over the four settings
    (TweetEval's two: the mean over their seeds)."""
    head = dict(HEAD_ROWS)
    exp3, static = (
        head["**exp3 + correction (the default)**"],
        head["static (the suspicion ranking, no learning) + correction"],
    )
    rows, per_setting = [], []
    for noise, label in (("sym", "TweetEval, 40% symmetric"), ("asym", "TweetEval, 30% asymmetric")):
        tests = []
        for seed in (0, 1, 2):
            e, s = _head_run(exp3, noise, seed), _head_run(static, noise, seed)
            tests.append(e["macro_f1"] - s["macro_f1"])
            rows.append(
                [f"{label}, seed {seed}", pts(tests[-1]), pts(e["validation_macro_f1"] - s["validation_macro_f1"])]
            )
        per_setting.append(statistics.fmean(tests))
    b77 = "noisy_banking77_symmetric_40_head.json"
    e, s = noisy(b77, "exp3"), noisy(b77, "static")
    per_setting.append(e["macro_f1"] - s["macro_f1"])
    rows.append(
        [
            "BANKING77, 40% symmetric, seed 0",
            pts(per_setting[-1]),
            pts(e["validation_macro_f1"] - s["validation_macro_f1"]),
        ]
    )
    mask, static_mask = f"{NER}flips_30_head_exp3_mask", f"{NER}flips_30_head_static_mask"
    e_f1, s_f1 = noisy(f"{mask}.json", "exp3")["f1"], noisy(f"{static_mask}.json", "static")["f1"]
    e_val, s_val = best_validation(f"{mask}.log", "exp3"), best_validation(f"{static_mask}.log", "static")
    per_setting.append(e_f1 - s_f1)
    rows.append(
        [
            "BTC NER, 30% type flips, masks (the NER default), seed 0",
            pts(per_setting[-1]),
            "–" if e_val is None or s_val is None else pts(e_val - s_val),
        ]
    )
    return rows, statistics.fmean(per_setting)


def learned_vs_static() -> str:
    rows, mean = _learned_vs_static()
    rows.append(["**mean over the four settings** (TweetEval: the mean over its seeds)", f"**{pts(mean)}**", ""])
    return table(["setting", "test: exp3 − static (points)", "validation: exp3 − static"], rows, "lrr")


def rescore_off() -> str:
    """``rescore: off`` against the default ``rescore: dynamics`` (exp3 + correction), where both were run."""
    rows = []
    for label, off, default in (
        (
            "BANKING77, 40% symmetric, seed 0",
            ("noisy_banking77_symmetric_40_head_exp3_rescore_off.json", None),
            ("noisy_banking77_symmetric_40_head.json", None),
        ),
        (
            "TweetEval, 40% symmetric, seed 0",
            (f"{TE}symmetric_40_head_exp3_rescore_off_seed0.json", 0),
            (f"{TE}symmetric_40_forward_seed0.json", 0),
        ),
        (
            "TweetEval, 30% asymmetric, seed 1",
            (f"{TE}asymmetric_30_head_exp3_rescore_off_seed1.json", 1),
            (f"{TE}asymmetric_30_forward_seed1.json", 1),
        ),
    ):
        o, d = noisy(off[0], "exp3", off[1]), noisy(default[0], "exp3", default[1])
        rows.append(
            [
                label,
                f3(o["validation_macro_f1"]),
                f3(d["validation_macro_f1"]),
                f3(o["macro_f1"]),
                f3(d["macro_f1"]),
                f"`{off[0]}`",
            ]
        )
    return table(
        ["setting", "validation: `off`", "`dynamics`", "test: `off`", "`dynamics`", "file (`off`)"], rows, "lrrrrl"
    )


def demo() -> str:
    """The demo's before/after table as `autoft demo` printed it, from its demo.json."""
    return result("demo.json")["comparison"]["table"]


def demo_figures() -> dict[str, str]:
    data = result("demo.json")
    detection, settings = data["detection"], data["settings"]
    plain, agent = data["comparison"]["plain"], data["comparison"]["autonomous"]
    return {
        "train_size": str(settings["train_size"]),
        "epochs": str(settings["epochs"]),
        "noise": pct(data["noise"], 0),
        "policy": settings["policy"],
        "estimated": pct(detection["estimated_noise"]),
        "flipped_share": pct(detection["flipped"] / settings["train_size"]),
        "flagged": str(detection["flagged"]),
        "flagged_flipped": str(detection["flagged_that_were_flipped"]),
        "wall": f"{data['comparison']['wall_seconds']:.0f}",
        "wall_ratio": f"{agent['wall_seconds'] / plain['wall_seconds']:.2f}",
        "served": "the agent's run" if data["comparison"]["better"]["run"] == "autonomous" else "plain fine-tuning",
        "served_on": data["comparison"]["better"]["compared_on"],
    }


# --- NER: benchmarks/noisy_ner.py ------------------------------------------------------------------
NER = "noisy_btc_ner_"


def best_validation(log: str, method: str) -> float | None:
    """The validation F1 of the best epoch of ``method``'s run in a noisy_ner.py log, which its result file does not
    record (each run of a log ends with 'seed N METHOD: {...}'); None when the log does not hold it."""
    path = RESULTS / log
    if not path.is_file():
        return None
    run: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        end = re.search(r"seed \d+ (\S+): \{", line)
        if end is None:
            run.append(line)
            continue
        if end.group(1) == method:
            scores = {
                int(m.group(1)): float(m.group(2))
                for m in (re.search(r"epoch (\d+): .*validation f1 ([0-9.]+)", x) for x in run)
                if m
            }
            best = next((m for m in (re.search(r"best: epoch (\d+)", x) for x in reversed(run)) if m), None)
            if best is not None:  # early stopping names it; a run that trained every epoch kept its best
                return scores.get(int(best.group(1)))
            return max(scores.values()) if scores else None
        run = []
    return None


def ner_head() -> str:
    head = f"{NER}flips_30_head"
    rows = []
    for label, stem, method, validated in (
        ("oracle (true tags)", head, "oracle", False),
        ("none (noisy tags)", head, "none", False),
        ("exp3, `mode: sample` (drop sentences)", head, "exp3", True),
        ("static (suspicion, no learning), sample", head, "static", False),
        ("static, mask", f"{head}_static_mask", "static", True),
        ("random, sample", f"{head}_random", "random", False),
        ("exp3, sample, patience 4", f"{head}_exp3_sample_patience4", "exp3", True),
        ("**exp3, `mode: mask`** (the default)", f"{head}_exp3_mask", "exp3", True),
        ("exp3, sample, `relabel_confidence: 0.5`", f"{head}_exp3_sample_relabel50", "exp3", True),
        ("exp3, sample, no injected noise", f"{NER}flips_0_head_exp3", "exp3", False),
        ("exp3, mask (default), no injected noise", f"{NER}flips_0_head_exp3_mask", "exp3", False),
    ):
        run = noisy(f"{stem}.json", method)
        validation = best_validation(f"{stem}.log", method) if validated else None
        rows.append(
            [
                label,
                f3(run["f1"]),
                f"{f2(run['precision'])} / {f2(run['recall'])}",
                f3(validation),
                f3(run.get("auroc")) if method not in ("oracle", "none", "random") and "noise" not in label else "–",
                f"`{stem}.json`",
            ]
        )
    return table(
        ["method", "test entity F1", "P / R", "validation (best epoch)", "noisy-sentence AUROC", "file"], rows, "lrlrrl"
    )


def ner_before_auto() -> str:
    main, mask = f"{NER}flips_30.json", f"{NER}flips_30_mask.json"
    rows = []
    for file, method, label in (
        (main, "oracle", "oracle (true tags)"),
        (main, "none", "none (noisy tags)"),
        (main, "small-loss", "small-loss, drop sentences"),
        (main, "exp3", "exp3, drop sentences"),
        (mask, "small-loss", "small-loss, `mode: mask`"),
        (mask, "exp3", "**exp3, `mode: mask`**"),
    ):
        run = noisy(file, method)
        flagged = (
            f"{f2(run['flagged_precision'])} / {f2(run['flagged_recall'])}"
            if run.get("flagged_precision") is not None
            else "–"
        )
        rows.append(
            [
                label,
                f3(run["f1"]),
                f"{f2(run['precision'])} / {f2(run['recall'])}",
                f3(run.get("auroc")),
                flagged,
                f"`{file}`",
            ]
        )
    return table(["method", "test entity F1", "P / R", "noisy-sentence AUROC", "flagged P / R", "file"], rows, "lrlrll")


def ner_figures() -> dict[str, str]:
    head = f"{NER}flips_30_head"
    oracle, plain = noisy(f"{head}.json", "oracle")["f1"], noisy(f"{head}.json", "none")["f1"]
    mask = noisy(f"{head}_exp3_mask.json", "exp3")["f1"]
    clean_mask = noisy(f"{NER}flips_0_head_exp3_mask.json", "exp3")["f1"]
    clean_sample = noisy(f"{NER}flips_0_head_exp3.json", "exp3")["f1"]
    old = f"{NER}flips_30.json"
    old_plain, old_oracle = noisy(old, "none")["f1"], noisy(old, "oracle")["f1"]
    old_mask = noisy(f"{NER}flips_30_mask.json", "exp3")["f1"]
    mixed = {method: noisy("mixed_btc_ner_f.json", method) for method in ("target-alone", "all-sources", "agent")}
    relabel = noisy(f"{head}_exp3_sample_relabel50.json", "exp3")["f1"]
    return {
        "mixed_all_vs_target": pts(mixed["all-sources"]["f1"] - mixed["target-alone"]["f1"]),
        "mixed_agent_vs_all": pts(mixed["agent"]["f1"] - mixed["all-sources"]["f1"]),
        "mixed_agent_wall": f"{mixed['agent']['wall_seconds'] / mixed['all-sources']['wall_seconds']:.2f}",
        "relabel_vs_oracle": pts(relabel - oracle),
        "noise_cost": pts(oracle - plain, signed=False),
        "mask_recovers": pts(mask - plain, signed=False),
        "mask_vs_target": pts(oracle - 0.02 - mask, signed=False),
        "clean_mask_miss": pts(oracle - 0.01 - clean_mask, signed=False),
        "clean_sample_gap": pts(oracle - clean_sample, signed=False),
        "old_noise_cost": pts(old_oracle - old_plain, signed=False),
        "old_mask_recovers": pts(old_mask - old_plain, signed=False),
    }


# --- continual learning: benchmarks/continual.py ---------------------------------------------------
def continual_btc() -> str:
    rows = []
    for file in ("continual_btc_a.json", "continual_btc_b.json", "continual_btc_default.json"):
        for method, run in result(file)["results"].items():
            bwt = run.get("backward_transfer")
            rows.append(
                [
                    method,
                    f3(run["final_average"]),
                    "–" if bwt is None else pts(bwt),
                    f3(run["final_average_validation"]),
                    f"`{file}`",
                ]
            )
    return table(
        [
            "method",
            "final average entity F1 (test)",
            "backward transfer (points)",
            "final average (validation)",
            "file",
        ],
        rows,
        "lrrrl",
    )


def continual_figures() -> dict[str, str]:
    b77 = result("continual_banking77.json")["results"]
    btc = {**result("continual_btc_a.json")["results"], **result("continual_btc_b.json")["results"]}
    default = b77["default"]
    return {
        "banking77_forgetting": pts(default["backward_transfer"]),
        "banking77_below_joint": pts(b77["joint"]["final_average"] - default["final_average"], signed=False),
        "banking77_vs_random": pts(default["final_average"] - b77["random-replay"]["final_average"]),
        "banking77_forgetting_miss": pts(-default["backward_transfer"] - 0.01, signed=False),
        "banking77_joint_miss": pts(b77["joint"]["final_average"] - default["final_average"] - 0.02, signed=False),
        "banking77_distill_validation": pts(
            default["final_average_validation"] - b77["value-replay"]["final_average_validation"]
        ),
        "btc_distill_validation": pts(
            btc["default"]["final_average_validation"] - btc["value-replay"]["final_average_validation"]
        ),
        "btc_value_replay_below_joint": pts(
            btc["joint"]["final_average"] - btc["value-replay"]["final_average"], signed=False
        ),
        "btc_value_replay_vs_random": pts(btc["value-replay"]["final_average"] - btc["random-replay"]["final_average"]),
    }


# --- the rest: figures quoted in prose -------------------------------------------------------------
def scale_figures() -> dict[str, str]:
    runs = {run["size"]: run for run in result("scale.json")["results"]}
    small = result("scale_10k.json")["results"][0]
    all_runs = [small, *runs.values()]
    return {
        "rss_1m": f"{runs['1m']['cold']['peak_rss_gb']:.2f}",
        "store_1m": f"{runs['1m']['store_gb']:.2f}",
        "featurisation_low": f"{min(r['featurisation_vs_raw'] for r in all_runs):.2f}",
        "featurisation_high": f"{max(r['featurisation_vs_raw'] for r in all_runs):.2f}",
        "end_to_end_low": f"{min(r['end_to_end_vs_raw'] for r in all_runs):.2f}",
        "end_to_end_high": f"{max(r['end_to_end_vs_raw'] for r in all_runs):.2f}",
        "warm_low": f"{min(r['featurisation_speedup_warm'] for r in all_runs):.0f}",
        "warm_high": f"{max(r['featurisation_speedup_warm'] for r in all_runs):.0f}",
        "spearman_100k": f"{runs['100k']['quality']['value_model']['held_out_spearman']:.2f}",
        "estimated_100k": pct(runs["100k"]["quality"]["estimated_rate"]),
        "estimated_1m": pct(runs["1m"]["quality"]["estimated_rate"]),
    }


def learned_static_figures() -> dict[str, str]:
    """Learned policies against the static control (learned_vs_static.json): per policy the average over settings, its
    worst setting and seed, and how often plain reproduced."""
    data = result("learned_vs_static.json")
    figures: dict[str, str] = {}
    for policy, variant in data["policies"].items():
        settings = variant["settings"]
        if not settings:
            continue
        worst_setting = min(settings, key=lambda name: settings[name]["mean"])
        cells = [(p["learned_minus_static"], name, p["seed"]) for name, s in settings.items() for p in s["pairs"]]
        gap, name, seed = min(cells)
        figures |= {
            f"{policy}_average": f"{variant['average_learned_minus_static']:+.1f}".replace("-", "−"),
            f"{policy}_settings": str(len(settings)),
            f"{policy}_cells": str(len(cells)),
            f"{policy}_worst_setting": worst_setting,
            f"{policy}_worst_setting_mean": f"{settings[worst_setting]['mean']:+.1f}".replace("-", "−"),
            f"{policy}_worst_cell": f"{gap:+.1f}".replace("-", "−"),
            f"{policy}_worst_cell_where": f"{name}, seed {seed}",
            f"{policy}_wins": str(sum(g > 0 for g, _, _ in cells)),
        }
    default = [p for s in data["policies"].get("exp3", {}).get("settings", {}).values() for p in s["pairs"]]
    figures["plain_reproduced"] = str(sum(abs(p["plain"] - p["plain_again"]) < 1e-9 for p in default))
    figures["pairs"] = str(len(default))  # (the alignment cells resumed the static cells' plain runs: equal by design)
    return figures


def issue27_checks_figures() -> dict[str, str]:
    """Issue 27's last checks: ``random`` against the default on the same cells (random_vs_static.json), the default
    at that commit against the cells of 6c4e6d4 (never_worse_wall_cells.jsonl, never_worse_static_cells.jsonl), the
    flipped-tag BTC cells against their sentences' true tags (never_worse.json, never_worse_btc_clean.json), and the
    cold seed-0 cell's wall-clock."""
    random = result("random_vs_static.json")["policies"]["random"]
    pairs = random["settings"]["tweeteval_sym40_noise_seeds_345"]["pairs"]
    gaps = [p["learned_minus_static"] / 100 for p in pairs]
    head = {c["seed"]: c for c in result("never_worse_wall_cells.jsonl")}
    before = {
        c["seed"]: c
        for c in result("never_worse_static_cells.jsonl")
        if c["commit"] == "6c4e6d4" and c["setting"] == "tweeteval_sym40_noise_seeds_345"
    }
    clean = result("never_worse_btc_clean.json")["settings"]["btc_flips30_clean"]["summary"]
    flips = result("never_worse.json")["settings"]["btc_flips30"]["summary"]
    clean_mean, flips_mean = statistics.fmean(clean["served"]), statistics.fmean(flips["served"])
    plain_s, agent_s = head[0]["plain"]["wall_seconds"], head[0]["autonomous"]["wall_seconds"]
    return {
        "random": f3(statistics.fmean([p["learned"] for p in pairs])),
        "static": f3(statistics.fmean([p["static"] for p in pairs])),
        "plain": f3(statistics.fmean([p["plain"] for p in pairs])),
        "random_gap": pts(statistics.fmean(gaps)),
        "random_gaps": ", ".join(pts(g) for g in gaps),
        "head_commit": head[0]["commit"],
        "head_mean": f3(statistics.fmean([c["autonomous"]["test"] for c in head.values()])),
        "head_served": f3(statistics.fmean([c["served"] for c in head.values()])),
        "before_mean": f3(statistics.fmean([before[s]["autonomous"]["test"] for s in head])),
        "head_seeds": ", ".join(f3(head[s]["autonomous"]["test"]) for s in sorted(head)),
        "before_seeds": ", ".join(f3(before[s]["autonomous"]["test"]) for s in sorted(head)),
        "head_noise0": f"{head[0]['autonomous']['estimated_noise']:.5f}",
        "before_noise0": f"{before[0]['autonomous']['estimated_noise']:.5f}",
        "btc_clean_plain": f3(statistics.fmean(clean["plain"])),
        "btc_clean": f3(clean_mean),
        "btc_clean_seeds": str(len(clean["seeds"])),
        "btc_flips": f3(flips_mean),
        "btc_flips_agent": f3(statistics.fmean(flips["autonomous"])),
        "btc_clean_agent": f3(statistics.fmean(clean["autonomous"])),
        "btc_gap": pts(flips_mean - clean_mean),
        "btc_miss": pts(clean_mean - 0.02 - flips_mean, signed=False),
        "wall_plain": f"{plain_s:.0f}",
        "wall_agent": f"{agent_s:.0f}",
        "wall_ratio": f"{agent_s / plain_s:.2f}",
        "wall_total_ratio": f"{(plain_s + agent_s) / plain_s:.2f}",
    }


def noise_rate_figures() -> dict[str, str]:
    """The largest single-seed miss of the noise estimate (noise_rate.json's rows)."""
    rows = [row for row in result("noise_rate.json")["rows"] if row["rate"] > 0]
    worst = max(rows, key=lambda row: abs(row["error"]))
    return {
        "worst_set": DATA_NAMES.get(worst["dataset"], worst["dataset"]),
        "worst_noise": f"{worst['rate'] * 100:.0f}% {worst['kind']}",
        "worst_seed": str(worst["seed"]),
        "worst_estimated": f3(worst["estimated_rate"]),
        "worst_true": f3(worst["true_rate"]),
        "worst_error": f"{worst['error']:+.3f}".replace("-", "−"),
    }


def self_training_figures() -> dict[str, str]:
    """The run before the schedule fix (self_training_banking77_before_schedule_fix.json)."""
    rows = {row["method"]: row for row in result("self_training_banking77_before_schedule_fix.json")["rows"]}
    labelled = rows["labelled"]["test_macro_f1"]
    return {
        "before_fix_threshold": pts(rows["threshold"]["test_macro_f1"] - labelled),
        "before_fix_agent": pts(rows["agent"]["test_macro_f1"] - labelled),
    }


def generative_figures() -> dict[str, str]:
    sets = result("generative.json")["sets"]
    return {f"{name}_estimated": pct(entry["methods"]["agent"]["estimated_rate"]) for name, entry in sets.items()}


def serving_figures() -> dict[str, str]:
    load, onnx = result("serve_load.json"), result("onnx_speed.json")
    backends, cost, swap = load["backends"], load["int8_cost"], load["swap"]
    return {
        **{f"{name}_ratio": f"{row['ratio']:.2f}" for name, row in backends.items()},
        "serve_errors": str(sum(row["errors"] for row in backends.values())),
        "int8_agreement": pct(cost["agreement"]),
        "int8_accuracy_change": pts(cost["int8_accuracy"] - cost["torch_accuracy"]),
        "swap_errors": str(swap["errors"]),
        "swap_ratio": f"{swap['ratio']:.2f}",
        "onnx_speedup": f"{onnx['speedup']:.2f}",
        "raw_onnx_ratio": f"{load['raw_onnx_inputs_per_second'] / load['raw_inputs_per_second']:.2f}",
        "onnx_over_torch": f"{backends['onnx']['requests_per_second'] / backends['torch']['requests_per_second']:.2f}",
        "int8_confident_agreement": pct(cost["confident_agreement"]),
        "int8_disagreements": str(cost["disagreements"]),
        "int8_disagreement_margin": f"{cost['disagreement_median_margin']:.3f}",
        "int8_median_margin": f"{cost['median_margin']:.3f}",
        "sigterm_accepted": str(load["sigterm"]["accepted"]),
        "sigterm_unanswered": str(load["sigterm"]["unanswered"]),
    }


def peft_sweep() -> str:
    rows = [
        [run["method"], rate(run["lr"]), run["epochs"], f3(run["validation"]), f3(run["test"])]
        for run in sorted(result("peft_rate_sweep_tweeteval_1500.jsonl"), key=lambda r: (r["method"], r["lr"]))
    ]
    return table(["method", "rate", "epochs", "validation", "test"], rows, "lrrrr")


def peft_against_full() -> str:
    """Each adapter run against full fine-tuning on the same set with the agent in the same state."""
    runs = {(r["dataset"], r["method"], r["agent"]): r for r in result("peft_vs_full.json")["runs"]}
    rows = []
    for (dataset, method, agent), run in sorted(runs.items()):
        full = runs.get((dataset, "full", agent))
        if method == "full" or full is None:
            continue
        rows.append(
            [
                f"{dataset}/{run['train_rows']}",
                method,
                agent,
                pts(run["validation"] - full["validation"]),
                pts(run["test"] - full["test"]),
                f"{run['samples_per_second'] / full['samples_per_second']:.2f}",
                f"{run['peak_rss_mb'] / full['peak_rss_mb']:.2f}",
            ]
        )
    return table(
        [
            "data set",
            "method",
            "agent",
            "validation − full (points)",
            "test − full (points)",
            "samples/s ÷ full",
            "peak RSS ÷ full",
        ],
        rows,
        "lllrrrr",
    )


def tasks_generative() -> str:
    """The generative families' test loss before and after fine-tuning (tasks.json)."""
    rows = [
        [
            name,
            row["data"],
            f3(row["zero_shot_loss"]),
            f3(row["test_loss"]),
            row["epochs_run"],
            row["best_epoch"],
            rate(row["learning_rate"]),
        ]
        for name, row in result("tasks.json")["rows"].items()
        if row.get("zero_shot_loss") is not None
    ]
    return table(
        ["task", "data", "test loss before", "after", "epochs run", "best epoch", "rate (range test)"], rows, "llrrrrr"
    )


def tasks_figures() -> dict[str, str]:
    relation = result("relation_semeval.json")["rows"]
    marked, plain = relation["relation-extraction"], relation["classification on the marked text"]
    multi = _multilabel_rows()
    full_relation = result("tasks.json")["rows"]["relation-extraction"]
    return {
        "relation_gain": pts(marked["macro_f1"] - plain["macro_f1"], signed=False),
        "relation_full": f3(full_relation["fine_tuned"]),
        "multilabel_vs_frozen": pts(multi["autoft"]["micro_f1"] - multi["frozen"]["micro_f1"], signed=False),
        "multilabel_threshold_macro": pts(multi["autoft"]["macro_f1"] - multi["0.5"]["macro_f1"]),
        "multilabel_threshold_subset": pts(multi["autoft"]["subset_accuracy"] - multi["0.5"]["subset_accuracy"]),
    }


def _multilabel_rows() -> dict[str, dict[str, Any]]:
    """multilabel_sgd_acts.json's rows by a short name: autoft, 0.5 (every threshold 0.5), frozen."""
    rows = result("multilabel_sgd_acts.json")["rows"]
    return {"frozen" if "frozen" in name else "0.5" if "0.5" in name else "autoft": row for name, row in rows.items()}


TABLES: dict[str, Callable[[], str]] = {
    "headline": headline,
    "never_worse_before_rows_rule": never_worse_before_rows_rule,
    "never_worse_before_class_cap": never_worse_before_class_cap,
    "finetune_public": finetune_public,
    "defaults_ceiling": defaults_ceiling,
    "defaults_choices": defaults_choices,
    "defaults_rollback": defaults_rollback,
    "defaults_two_shuffles": defaults_two_shuffles,
    "clean_labels": clean_labels,
    "noisy_head_tweeteval": noisy_head_tweeteval,
    "noisy_head_files": noisy_head_files,
    "noisy_head_banking77": noisy_head_banking77,
    "noisy_before_auto": noisy_before_auto,
    "noisy_other_settings": noisy_other_settings,
    "learned_vs_static": learned_vs_static,
    "rescore_off": rescore_off,
    "demo": demo,
    "ner_head": ner_head,
    "ner_before_auto": ner_before_auto,
    "continual_btc": continual_btc,
    "peft_sweep": peft_sweep,
    "peft_against_full": peft_against_full,
    "tasks_generative": tasks_generative,
}
"""Tables a template asks for by name: ``<!-- table: NAME -->``."""

FIGURES: dict[str, Callable[[], dict[str, str]]] = {
    "never_worse": never_worse_figures,
    "defaults": defaults_figures,
    "noisy": noisy_figures,
    "demo": demo_figures,
    "ner": ner_figures,
    "continual": continual_figures,
    "scale": scale_figures,
    "generative": generative_figures,
    "serving": serving_figures,
    "tasks": tasks_figures,
    "noise_rate": noise_rate_figures,
    "learned": learned_static_figures,
    "checks27": issue27_checks_figures,
    "self_training": self_training_figures,
}
"""Values a template's prose quotes: ``{{ topic.key }}``."""
