"""Two-process data-parallel training on CPU reaches the test scores of one process (issue 12).

    PYTHONPATH=/tmp/wt_two/src python benchmarks/two_process.py   # both tasks, seeds 0 1 2 (about 20 minutes, 2 cores)
    python benchmarks/two_process.py --seeds 0 1                    # fewer seeds
    python benchmarks/two_process.py --tasks ner --seeds 0 --smoke  # the plumbing only: 60 rows, 1 epoch

Per task and per training seed (``training.seed``; the data slices stay the same), one config (packaged MiniLM,
``selection.policy: exp3`` — the agent on — fixed learning rate, epochs and max_length; early stopping off, so
every run trains every planned epoch and keeps its best) is trained with ``autoft train`` twice:

- one process, ``training.batch_size`` 32, pinned to one core (``taskset -c 0``);
- two processes (``torchrun --standalone --nproc_per_node 2 -m autoft.cli train``, gloo), ``training.batch_size``
  16 each, so the global batch is again 32 (the loop gives each process its share of each epoch's batches).

Every process runs with ``OMP_NUM_THREADS=1`` (one torch thread). The runs are not bit-equal — the two-process
gradient is the mean of two half-batch gradients (another reduction order), the length-grouped batches of 16 pair
differently, and each process draws its own dropout — so a single pair of runs differs by about as much as two
seeds of one mode do. The benchmark therefore compares means over seeds, on a test set large enough to keep the
test noise small, and states a tolerance: the mean over seeds of the test primary metric (macro-F1 for
classification, entity F1 for NER) of two processes may differ from that of one process by at most
``--tolerance`` (0.02, 2 points). The spread between seeds of one process (max − min) is reported beside it as
the noise floor.

The agent's view of training is the same in both modes: the loop gathers every step's outputs (row indices,
losses, labels, logits) across processes, so each process's callback records the training dynamics of all rows,
not only its own shard's, and the main process's selection — broadcast to the others — rests on every sample.
Per run the result records the agent's kept count per epoch (``decisions.jsonl``), the mean value of the samples
kept, and how many flagged rows the one- and two-process runs of a seed share (``data_values.csv``).

``--controls`` (off by default) adds two classification rows per seed: the agent with its re-scoring off
(``selection.rescore: off``), and plain fine-tuning (``selection.policy: none``).

Data (seeded slices of ../shared/data, split conventions of its README; slice seed ``--data-seed``, 0):
- classification: TweetEval emotion, 800 train / 200 validation rows and the full test split (1,421 rows);
- token classification: Broad Twitter Corpus, sections a b e f g (train, a seeded 10% as validation) and h
  (test): 400 train / 150 validation / 300 test sentences (section h has about 2,000; 300 keep the run short).

The runs import the ``autoft`` that Python finds first — set ``PYTHONPATH`` to a fixed checkout (a git worktree
of the commit to measure) so edits elsewhere cannot change the measurement; torchrun's processes inherit it. The
script prints and records where its own and the launched processes' ``autoft`` comes from, and that checkout's
commit and uncommitted changes.

Writes benchmarks/results/two_process.json, .md (the table) and .log (every command's output, progress bars
removed). Run directories go to ``--work`` (default /tmp/two_process), outside the repository.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from public_data import load_public, shared_root
from result_files import write_result

import autoft
from autoft.data.writing import write_examples

RESULTS = Path(__file__).resolve().parent / "results"
TASKS = {
    # name: (shared set, autoft task, primary metric, train / validation / test rows (None: the whole split), epochs)
    "classification": (
        "tweeteval_emotion",
        "classification",
        "macro_f1",
        {"train": 800, "validation": 200, "test": None},
        3,
    ),
    "ner": ("btc_ner", "token-classification", "f1", {"train": 400, "validation": 150, "test": 300}, 5),
}
CONTROLS = {
    # row name: (task, selection section): with the agent's re-scoring off, and without the agent
    "classification, rescore off": ("classification", {"policy": "exp3", "rescore": "off"}),
    "classification, plain (no agent)": ("classification", {"policy": "none"}),
}
MODES = {"one process": ("one", 32), "two processes": ("two", 16)}  # mode: (run folder, batch size per process)
SMOKE_ROWS = {"train": 60, "validation": 40, "test": 40}
EPOCH_LINE = re.compile(r"epoch (?P<epoch>\d+): train loss (?P<loss>[\d.]+), validation \w+ (?P<score>[\d.]+)")
PROGRESS = re.compile(r"\d+%\|| it/s\]|s/it\]|\d+/\d+ \[\d")  # tqdm bars
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def seeded_slices(name: str, limits: dict[str, int | None], seed: int, root: Path) -> dict[str, list]:
    """Each split cut to a seeded sample of its limit (file order kept); None keeps the whole split."""
    splits = load_public(name, root)
    for split, limit in limits.items():
        if limit is not None and len(splits[split]) > limit:
            keep = np.random.default_rng(seed).permutation(len(splits[split]))[:limit]
            splits[split] = [splits[split][i] for i in sorted(keep)]
    return splits


def tool(name: str) -> str:
    return shutil.which(name) or str(Path(sys.executable).parent / name)


def filtered(text: str) -> str:
    """Output without progress bars: tqdm redraws with carriage returns; keep each line's last state unless
    it is a bar."""
    lines = []
    for line in text.splitlines():
        line = line.split("\r")[-1]
        if line.strip() and not PROGRESS.search(line):
            lines.append(line)
    return "\n".join(lines)


def environment() -> dict[str, str]:
    return {**os.environ, **ENV}


def read_run(run_dir: Path, metric: str) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    test = metrics["test"]
    decisions = run_dir / "decisions.jsonl"
    lines = decisions.read_text(encoding="utf-8").splitlines() if decisions.is_file() else []
    selects = [json.loads(line) for line in lines if '"select"' in line]
    selects = [d for d in selects if d.get("event") == "select"]
    return {
        "test": {
            metric: test[metric],
            "accuracy": test.get("accuracy"),
            **{k: v for k, v in test.items() if isinstance(v, float) and k not in (metric, "accuracy")},
        },
        "best_epoch": metrics["best_epoch"],
        "validation_by_epoch": [e["validation"][metric] for e in metrics["epochs"]],
        "train_samples_by_epoch_main_process": [e["samples"] for e in metrics["epochs"]],
        "kept_by_epoch": [d["kept"] for d in selects],
        "dropped_by_epoch": [d.get("dropped") for d in selects],
        "mean_value_kept_by_epoch": [d.get("mean_value_kept") for d in selects],
        "rescored_by_epoch": [d.get("rescored") for d in selects],
        "masked_entities_by_epoch": (
            [d.get("masked_entities") for d in selects] if any("masked_entities" in d for d in selects) else None
        ),
        "run_wall_seconds": metrics.get("wall_seconds"),
        "settings": {
            k: metrics["training"].get(k)
            for k in ("learning_rate", "epochs", "batch_size", "max_length", "seed", "early_stopping_patience")
            if isinstance(metrics.get("training"), dict)
        },
    }


def shown(command: list[str]) -> str:
    names = {tool("autoft"), tool("torchrun"), sys.executable}
    return (
        " ".join(f"{k}={v}" for k, v in ENV.items() if k == "OMP_NUM_THREADS")
        + " "
        + " ".join(Path(c).name if c in names else c for c in command)
    )


def run_mode(mode: str, config_path: Path, run_dir: Path, batch_size: int, seed: int, log: list[str]) -> dict:
    common = [
        "train",
        str(config_path),
        "--no-progress",
        "--overwrite",
        "--set",
        f"training.seed={seed}",
        "--set",
        f"training.batch_size={batch_size}",
        "--set",
        f"output_dir={run_dir}",
    ]
    if mode == "one process":
        command = ["taskset", "-c", "0", tool("autoft"), *common]
    else:
        command = [
            tool("torchrun"),
            "--standalone",
            "--nproc_per_node",
            "2",
            "--tee",
            "3",
            "--log-dir",
            str(run_dir.parent / "torchrun_logs"),
            "-m",
            "autoft.cli",
            *common,
        ]
    text = shown(command)
    print(f"== {text}", flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, env=environment(), capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    log += [f"== {text}", f"(exit {done.returncode}, {wall:.1f} s)", filtered(done.stderr), filtered(done.stdout), ""]
    print(f"   exit {done.returncode}, {wall:.1f} s", flush=True)
    if done.returncode != 0:
        raise SystemExit(f"{mode} failed (exit {done.returncode}):\n{filtered(done.stderr)[-3000:]}")
    return {
        "command": text,
        "wall_seconds": round(wall, 1),
        "processes": 1 if mode == "one process" else 2,
        "batch_size_per_process": batch_size,
        "epochs_logged_by_process": epochs_logged(done.stderr),
    }


def epochs_logged(stderr: str) -> dict[str, list[dict]]:
    """Each process's epoch lines (torchrun prefixes a process's lines with ``[defaultN]:``): train loss and
    validation score. Equal validation scores across processes mean equal weights."""
    out: dict[str, list[dict]] = {}
    for line in stderr.splitlines():
        found = EPOCH_LINE.search(line)
        if found:
            rank = re.search(r"\[default(\d+)\]", line)
            out.setdefault(f"rank {rank.group(1) if rank else 0}", []).append(
                {"epoch": int(found["epoch"]), "train_loss": float(found["loss"]), "validation": float(found["score"])}
            )
    return out


def same_across_processes(logged: dict[str, list[dict]]) -> bool | None:
    """Whether every process logged the same validation score each epoch (None: fewer than two processes seen)."""
    if len(logged) < 2:
        return None
    return len({tuple(e["validation"] for e in epochs) for epochs in logged.values()}) == 1


def flagged_overlap(one: Path, two: Path) -> dict | None:
    """How many training rows the agent flagged (left out at the end) in each run, and in both."""
    flagged = []
    for run_dir in (one, two):
        path = run_dir / "data_values.csv"
        if not path.is_file():
            return None
        with path.open(encoding="utf-8") as stream:
            flagged.append({r["row_id"] for r in csv.DictReader(stream) if r["flagged"] == "True"})
    return {"one process": len(flagged[0]), "two processes": len(flagged[1]), "both": len(flagged[0] & flagged[1])}


def run_task(
    name: str,
    args: argparse.Namespace,
    root: Path,
    log: list[str],
    *,
    row_name: str | None = None,
    selection: dict | None = None,
) -> dict:
    dataset, task, metric, limits, epochs = TASKS[name]
    row_name = row_name or name
    if args.smoke:
        limits, epochs = SMOKE_ROWS, 1
    splits = seeded_slices(dataset, limits, args.data_seed, root)
    work = args.work / re.sub(r"[^a-z0-9]+", "_", row_name).strip("_")
    files = {
        split: str(write_examples(work / "data" / split, examples, task=task)) for split, examples in splits.items()
    }
    config = {
        "task": task,
        "model": "default",
        "data": files,
        "training": {
            "learning_rate": args.learning_rate,
            "epochs": epochs,
            "max_length": args.max_length,
            "seed": args.seeds[0],
            "early_stopping_patience": None,
            "progress": False,
        },
        "selection": selection or {"policy": "exp3"},
        "output_dir": str(work / "run"),
    }
    config_path = work / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    seeds = {}
    for seed in args.seeds:
        modes = {}
        for mode, (folder, batch_size) in MODES.items():
            run_dir = work / f"seed{seed}" / folder
            modes[mode] = {**run_mode(mode, config_path, run_dir, batch_size, seed, log), **read_run(run_dir, metric)}
        one, two = modes["one process"], modes["two processes"]
        seeds[str(seed)] = {
            "modes": modes,
            "difference": {
                metric: two["test"][metric] - one["test"][metric],
                "accuracy": None
                if one["test"]["accuracy"] is None
                else two["test"]["accuracy"] - one["test"]["accuracy"],
            },
            "kept_equal": one["kept_by_epoch"] == two["kept_by_epoch"],
            "two_processes_same_validation_each_epoch": same_across_processes(two["epochs_logged_by_process"]),
            "flagged_in_both": flagged_overlap(work / f"seed{seed}" / "one", work / f"seed{seed}" / "two"),
        }
        print(
            json.dumps(
                {
                    row_name: {
                        "seed": seed,
                        "one": one["test"],
                        "two": two["test"],
                        "difference": seeds[str(seed)]["difference"],
                        "kept": [one["kept_by_epoch"], two["kept_by_epoch"]],
                        "flagged": seeds[str(seed)]["flagged_in_both"],
                    }
                }
            ),
            flush=True,
        )
    summary = {}
    for mode in MODES:
        values = [seeds[str(s)]["modes"][mode]["test"][metric] for s in args.seeds]
        summary[mode] = {
            "by_seed": dict(zip(map(str, args.seeds), values)),
            "mean": float(np.mean(values)),
            "spread_max_minus_min": float(max(values) - min(values)),
        }
    difference = summary["two processes"]["mean"] - summary["one process"]["mean"]
    return {
        "data": dataset,
        "task": task,
        "metric": metric,
        "sizes": {split: len(examples) for split, examples in splits.items()},
        "config": {k: v for k, v in config.items() if k not in ("data", "output_dir")},
        "seeds": args.seeds,
        "global_batch": 32,
        "summary": summary,
        "mean_difference": difference,
        "noise_floor_one_process_spread": summary["one process"]["spread_max_minus_min"],
        "tolerance": args.tolerance,
        "within_tolerance": abs(difference) <= args.tolerance,
        "kept_equal_every_seed": all(r["kept_equal"] for r in seeds.values()),
        "by_seed": seeds,
    }


def source_of(package_file: str) -> dict:
    """The checkout ``autoft`` is imported from: its commit and its uncommitted changes under src/ (files, digest)."""
    src = Path(package_file).resolve().parent.parent
    git = ["git", "-C", str(src)]
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=False, capture_output=True, text=True).stdout.strip()
    status = subprocess.run([*git, "status", "--short", "--", "."], check=False, capture_output=True, text=True).stdout
    diff = subprocess.run([*git, "diff", "HEAD", "--", "."], check=False, capture_output=True).stdout
    digest = hashlib.sha1(diff)
    for line in status.splitlines():
        if line.startswith("??") and (src / line[3:]).is_file():
            digest.update((src / line[3:]).read_bytes())
    return {
        "src": str(src),
        "commit": commit or None,
        "changed": [line.strip() for line in status.splitlines()],
        "digest": digest.hexdigest()[:12],
    }


def imported_from(log: list[str]) -> dict:
    """Where ``autoft`` comes from in this script, in one pinned process and in each torchrun process (launched
    like the training runs, with the same environment)."""
    probe = "import os, autoft; print('rank', os.environ.get('RANK', '0'), 'imports', autoft.__file__)"
    commands = {
        "one process": ["taskset", "-c", "0", sys.executable, "-c", probe],
        "two processes": [
            tool("torchrun"),
            "--standalone",
            "--nproc_per_node",
            "2",
            "--no-python",
            sys.executable,
            "-c",
            probe,
        ],
    }
    found = {"script": autoft.__file__, "PYTHONPATH": os.environ.get("PYTHONPATH")}
    log += [f"== this script imports {autoft.__file__} (PYTHONPATH={os.environ.get('PYTHONPATH')})"]
    for mode, command in commands.items():
        done = subprocess.run(command, env=environment(), capture_output=True, text=True, check=False)
        lines = [line for line in done.stdout.splitlines() if "imports" in line]
        found[mode] = sorted({line.split("imports ")[-1] for line in lines})
        log += [f"== {shown(command)}", *lines]
    log.append("")
    print("\n".join(log), flush=True)
    return found


def fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def table(rows: dict[str, dict], tolerance: float, seeds: list[int]) -> str:
    seed_list = ", ".join(map(str, seeds))
    lines = [
        (
            f"Two processes (torchrun, gloo, batch 16 each) against one process (batch 32, one core): packaged "
            f"MiniLM, exp3 agent, the same settings, training seeds {seed_list}; every step's outputs gathered "
            f"across processes, so both processes' agents see all rows. Tolerance: |mean over seeds of two "
            f"processes − mean of one process| of the test primary metric ≤ {tolerance:.2f} ({tolerance * 100:.0f} "
            f"points). Noise floor: the spread (max − min) of one process's test scores over the seeds."
        ),
        "",
        (
            "| task | data (train / val / test) | metric | one process mean | two processes mean | mean difference "
            "| one-process spread (noise floor) | two-process spread | within tolerance | kept equal every seed |"
        ),
        "|---|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for name, row in rows.items():
        summary, sizes = row["summary"], row["sizes"]
        lines.append(
            f"| {name} | {row['data']} ({sizes['train']} / {sizes['validation']} / {sizes['test']}) | {row['metric']} | "
            f"{fmt(summary['one process']['mean'])} | {fmt(summary['two processes']['mean'])} | "
            f"{row['mean_difference']:+.3f} | {fmt(summary['one process']['spread_max_minus_min'])} | "
            f"{fmt(summary['two processes']['spread_max_minus_min'])} | {'yes' if row['within_tolerance'] else 'no'} | "
            f"{'yes' if row['kept_equal_every_seed'] else 'no'} |"
        )
    lines += [
        "",
        "Per seed (NER has no accuracy in autoft's metrics: its column gives precision / recall):",
        "",
        (
            "| task | seed | one process | two processes | difference | accuracy (NER: precision / recall) "
            "one ; two | kept per epoch one ; two | flagged rows one / two / both | wall s one / two |"
        ),
        "|---|---:|---:|---:|---:|---|---|---|---|",
    ]
    for name, row in rows.items():
        m = row["metric"]
        for seed, run in row["by_seed"].items():
            one, two = run["modes"]["one process"], run["modes"]["two processes"]
            flagged = run["flagged_in_both"]
            flagged = (
                "–" if flagged is None else f"{flagged['one process']} / {flagged['two processes']} / {flagged['both']}"
            )
            lines.append(
                f"| {name} | {seed} | {fmt(one['test'][m])} | {fmt(two['test'][m])} | {run['difference'][m]:+.3f} | "
                f"{secondary(one['test'])} ; {secondary(two['test'])} | "
                f"{one['kept_by_epoch']} ; {two['kept_by_epoch']} | {flagged} | "
                f"{one['wall_seconds']:.0f} / {two['wall_seconds']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def secondary(test: dict) -> str:
    if test.get("accuracy") is not None:
        return fmt(test["accuracy"])
    return f"{fmt(test.get('precision'))} / {fmt(test.get('recall'))}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=list(TASKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training.seed of the runs")
    parser.add_argument(
        "--controls",
        action="store_true",
        help="also classification with the agent's re-scoring off, and without the agent",
    )
    parser.add_argument("--smoke", action="store_true", help="60 training rows, 1 epoch: check the plumbing")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the data slices")
    parser.add_argument("--tolerance", type=float, default=0.02)
    parser.add_argument("--data-root", help="shared data folder (default: ../shared/data beside the checkout)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/two_process"), help="run directories")
    parser.add_argument(
        "--output",
        type=Path,
        help="result JSON (default: benchmarks/results/two_process.json; --smoke: two_process_smoke.json in --work)",
    )
    args = parser.parse_args()
    output = args.output or (args.work / "two_process_smoke.json" if args.smoke else RESULTS / "two_process.json")
    root = shared_root(args.data_root)
    log: list[str] = []
    started = time.perf_counter()
    source_at_start = source_of(autoft.__file__)
    imports = imported_from(log)
    rows = {}
    try:
        for name in args.tasks:
            rows[name] = run_task(name, args, root, log)
        for row_name, (name, selection) in CONTROLS.items() if args.controls else ():
            rows[row_name] = run_task(name, args, root, log, row_name=row_name, selection=selection)
    finally:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.with_suffix(".log").write_text("\n".join(log) + "\n", encoding="utf-8")
    prefix = f"PYTHONPATH={os.environ['PYTHONPATH']} " if os.environ.get("PYTHONPATH") else ""
    result = {
        "command": prefix + "python benchmarks/two_process.py " + " ".join(sys.argv[1:]),
        "commit": source_at_start["commit"],
        "autoft_imported_from": imports,
        "source_at_start": source_at_start,
        "source_at_end": source_of(autoft.__file__),
        "machine": f"{os.cpu_count()} CPU cores",
        "seeds": args.seeds,
        "tolerance": args.tolerance,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
    }
    write_result(output, result, table(rows, args.tolerance, args.seeds))


if __name__ == "__main__":
    main()
