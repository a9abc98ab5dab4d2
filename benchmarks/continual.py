"""Continual learning: ``autoft update`` along a stream of experiences, against naive sequential fine-tuning,
random replay, EWC and joint training (issue 9).

    python benchmarks/continual.py --stream banking77                     # class-incremental, 4 experiences
    python benchmarks/continual.py --stream banking77 --experiences 3 --per-experience 400    # the README's
    python benchmarks/continual.py --stream btc --experiences 3           # domain-incremental, sections a b f
    python benchmarks/continual.py --stream banking77 --methods naive value-replay --per-experience 300
    python benchmarks/continual.py --stream banking77 --experiences 5 --per-experience 240 --mix 0.5  # old rows too
    python benchmarks/continual.py --stream generative --per-experience 80 --methods naive default

Streams (../shared/data, its README's splits):

- ``banking77`` (class-incremental): the 77 intents in ``--experiences`` groups of a seeded permutation
  (seed 0). Experience k trains on up to ``--per-experience`` training rows of its group's intents (seeded),
  validates on the clean validation rows of those intents; its test set is the test rows of those intents.
  Metric: accuracy over the test rows of the experience's intents, with the model's full label set. ``--mix M``:
  each experience after the first also brings ``M * --per-experience`` fresh training rows (no experience used them
  before) of the earlier experiences' intents.
- ``btc`` (domain-incremental): the BTC training sections ``a b f g`` in that order, one per experience
  (``e``, 200 sentences, is too small to be one); each section is split (seeded) 70 / 10 / 20 into train (at most ``--per-experience`` sentences),
  validation and test. Metric: entity F1 (seqeval) on the section's test part.
- ``generative`` (task-incremental, the generative default with LoRA): dialogue (SGD responses, the conversation so
  far → the system's next turn), then summarisation (SciTLDR-A, an instruction and the abstract → its TL;DR); each a
  seeded sample of at most ``--per-experience`` training pairs, 30 validation and 40 test pairs of the shared splits.
  Metric: ROUGE-L on the experience's test pairs. Training as ``benchmarks/generative.py`` fixes it (2 epochs,
  learning rate 1e-3, batch 8; SmolLM2 trains at about 1 pair/s on a CPU core), at most 48 new tokens; every
  ``continual`` setting is the method's. Replay has no margin to rank responses by, so ``value`` replay draws a
  seeded random sample (``autoft update`` logs it); distillation is the token-level KL from the parent.

Methods, each from the same first run (plain fine-tuning on experience 1, every training setting auto):

- ``naive``: ``autoft update`` with no replay, no distillation, no penalty and no alignment of the head (sequential
  fine-tuning; the methods below leave the head as trained too, unless they say otherwise);
- ``ewc``: no replay, the Fisher-weighted pull toward the parent's weights (``continual.penalty``);
- ``lwf``: no replay, distillation from the parent on its own labels alone (``continual.distill``);
- ``random-replay``: replay of ``--budget`` of the old training data, a seeded random sample (per class on
  classification), each replayed sample weighted by ``continual.replay_weight: auto`` (all the old samples it stands
  for until issue 29's replay-weight measurements, their square root since);
- ``value-replay``: the same budget and weights, the old samples the parent holds most firmly
  (``replay_by: value``);
- ``value-replay-align``: value replay and the head's alignment (``continual.align: auto``), no distillation;
- ``default-no-align``: the default without the head's alignment (``continual.align: off``);
- ``default``: every ``continual`` setting at its default: herding replay (value replay before issue 29's
  measurements; result files of earlier commits call that ``default``) of ``--budget`` (``auto`` when not given:
  as many old samples as the update brings new ones, at least a tenth of the old data and at most all of it; a
  tenth of the old data in result files before issue 29's budget measurements), distillation when an update brings new
  labels (``distill: auto``: on the class-incremental stream, not on the domain one), and the new labels' head rows
  aligned with the old ones' when that scores better on validation (``align: auto``);
- ``default-value``: the default with the old samples the parent holds most firmly (``replay_by: value``, the
  default before) in place of those that represent their class; ``default-herding``: the default with
  ``replay_by: herding`` said explicitly (the same as ``default`` now);
- ``default-no-distill``: the default without distillation (``distill: 0``); ``default-distill-replayed``: the
  default distilling on the replayed old samples alone (``distill_on: replayed``), the new rows' outputs free;
  ``default-distill-quarter`` and ``default-distill-one``: the default distilling at 0.25 and at 1 (``distill``;
  ``auto``, the default, distils at 1 where the new labels bring at most eight rows each, less with more rows);
  ``default-unweighted``: the default with every replayed sample weighing 1 (``replay_weight: 1``), as much as a
  new one; ``default-full-weight``:
  each weighing all the old samples it stands for (``replay_weight: full``; until this option, result files
  fixed it at ``1 / --budget``), the default until issue 29's replay-weight measurements (``default`` in result
  files of earlier commits);
- ``default-auto-budget``: the default with ``continual.replay_budget: auto`` said explicitly, whatever
  ``--budget``; ``default-tenth``: the default replaying a tenth of the old data (``replay_budget: 0.1``, the
  default before issue 29's budget measurements);
- ``lora-per-task``: from a first run with ``training.peft: lora`` on experience 1, a new adapter per update on
  the frozen, folded earlier ones (no replay, no distillation);
- ``joint``: one run on all experiences' training data at once (the upper bound), scored at the end.

Every update runs with ``continual.gate: null`` (the gate is not what is measured) and its new experience's
validation file. Per method: the accuracy matrix ``R[i][j]`` (after experience i, on experience j's test set),
the final average ``mean_j R[T][j]`` and the backward transfer ``mean_{j<T} (R[T][j] - R[j][j])`` (negative:
forgetting), and the wall-clock. Writes ``benchmarks/results/continual_<stream>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from public_data import load_public, shared_root
from result_files import write_result

import autoft
from autoft import continual
from autoft.data.loading import Example, load_examples
from autoft.data.writing import write_examples

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = (
    "naive",
    "ewc",
    "lwf",
    "random-replay",
    "value-replay",
    "value-replay-align",
    "default-no-align",
    "default",
    "default-value",
    "default-herding",
    "default-no-distill",
    "default-distill-replayed",
    "default-distill-quarter",
    "default-distill-one",
    "default-unweighted",
    "default-full-weight",
    "default-auto-budget",
    "default-tenth",
    "lora-per-task",
    "joint",
)
SETTINGS = {  # continual.* per method; the rest at its default
    "naive": ["continual.replay_budget=0", "continual.distill=0", "continual.align=off"],
    "ewc": ["continual.replay_budget=0", "continual.distill=0", "continual.method=ewc", "continual.align=off"],
    "lwf": ["continual.replay_budget=0", "continual.distill=1", "continual.align=off"],
    "random-replay": ["continual.replay_by=random", "continual.distill=0", "continual.align=off"],
    "value-replay": ["continual.replay_by=value", "continual.distill=0", "continual.align=off"],
    "value-replay-align": ["continual.replay_by=value", "continual.distill=0"],
    "default-no-align": ["continual.align=off"],
    "default": [],
    "default-value": ["continual.replay_by=value"],
    "default-herding": ["continual.replay_by=herding"],
    "default-no-distill": ["continual.distill=0"],
    "default-distill-replayed": ["continual.distill_on=replayed"],
    "default-distill-quarter": ["continual.distill=0.25"],
    "default-distill-one": ["continual.distill=1"],
    "default-unweighted": ["continual.replay_weight=1"],
    "default-full-weight": ["continual.replay_weight=full"],
    "default-auto-budget": ["continual.replay_budget=auto"],
    "default-tenth": ["continual.replay_budget=0.1"],
    "lora-per-task": ["continual.replay_budget=0", "continual.distill=0", "continual.method=lora-per-task"],
}


def overrides_of(method: str, budget: float | str) -> list[str]:
    """The ``continual.*`` settings of a sequential method (the gate off: it is not what is measured)."""
    budget_setting = (
        []
        if any(o.startswith("continual.replay_budget") for o in SETTINGS[method])
        else [f"continual.replay_budget={budget}"]
    )
    return [*budget_setting, *SETTINGS[method], "continual.gate=null", "training.progress=false"]


log = logging.getLogger("continual")
GENERATIVE = ("sgd_responses", "scitldr")
"""The generative stream's experiences, in order: dialogue, then summarisation."""
GENERATIVE_HELD_OUT = {"validation": 30, "test": 40}
GENERATIVE_TRAINING = {"epochs": 2, "learning_rate": 1e-3, "batch_size": 8}
"""As ``benchmarks/generative.py``: fixed, so the methods differ only in their ``continual`` settings."""
GENERATIVE_TOKENS = 48


def banking77_stream(
    root: str | None, experiences: int, limit: int, mix: float = 0.0
) -> tuple[str, list[dict[str, list[Example]]]]:
    """``mix``: each experience after the first also brings ``mix * limit`` training rows of the earlier
    experiences' intents that no experience has used yet (new classes mixed with more rows of old ones)."""
    splits = load_public("banking77", root)
    intents = sorted({e.label for e in splits["train"]})
    groups = np.array_split(np.random.default_rng(0).permutation(len(intents)), experiences)
    stream, used, seen = [], set(), set()
    for k, group in enumerate(groups):
        names = {intents[i] for i in group}
        train = [e for e in splits["train"] if e.label in names]
        train = [train[i] for i in sorted(np.random.default_rng(k).permutation(len(train))[:limit])]
        names = {e.label for e in train}  # a small sample may miss an intent: it is then not in this experience
        if mix and seen:
            fresh = [e for e in splits["train"] if e.label in seen and e.origin not in used]
            order = sorted(np.random.default_rng(100 + k).permutation(len(fresh))[: round(mix * limit)])
            train = train + [fresh[i] for i in order]
        used.update(e.origin for e in train)
        seen |= names
        stream.append(
            {
                "train": train,
                "validation": [e for e in splits["validation"] if e.label in names],
                "test": [e for e in splits["test"] if e.label in names],
            }
        )
    return "task", stream


def btc_stream(root: str | None, experiences: int, limit: int) -> tuple[str, list[dict[str, list[Example]]]]:
    folder = shared_root(root) / "btc_ner"
    stream = []
    for k, section in enumerate("abfg"[:experiences]):
        sentences = load_examples(folder / f"{section}.conll", task="token-classification")
        order = np.random.default_rng(k).permutation(len(sentences))
        n_train, n_val = round(0.7 * len(sentences)), round(0.1 * len(sentences))
        part = {
            "train": order[:n_train][:limit],
            "validation": order[n_train : n_train + n_val],
            "test": order[n_train + n_val :],
        }
        stream.append({name: [sentences[i] for i in sorted(rows)] for name, rows in part.items()})
    return "f1", stream


def metric(run: autoft.Run, examples: list[Example], name: str) -> float:
    if name == "task":  # class-incremental: accuracy on the experience's intents, over every label the model has
        return float(run.evaluate(examples)["accuracy"])
    return float(run.evaluate(examples)[name])


def write(folder: Path, experience: dict[str, list[Example]], task: str | None = None) -> dict[str, str]:
    return {name: str(write_examples(folder / name, rows, task=task)) for name, rows in experience.items()}


def first_config(files: dict[str, str], output: Path, task: str, seed: int, peft: str | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "task": task,
        "data": {"train": files["train"], "validation": files["validation"]},
        "output_dir": str(output),
        "training": {"seed": seed, "progress": False, "peft": peft},
    }
    if task == "generation":  # the generative default trains LoRA adapters: one first run serves every method
        config["training"].update(GENERATIVE_TRAINING, peft="lora")
        config["generation"] = {"max_new_tokens": GENERATIVE_TOKENS}
    return config


def run_method(
    method: str,
    stream: list[dict[str, list[Example]]],
    files: list[dict[str, str]],
    task: str,
    name: str,
    work: Path,
    first: Path,
    budget: float | str,
    seed: int,
) -> dict[str, Any]:
    """One method along the stream; ``first`` is the run on experience 1 it starts from. ``matrix[i][j]``: after
    experience i, on experience j's test set; ``validation_matrix`` the same on the validation sets (to choose
    defaults on)."""
    started = time.perf_counter()
    tests, validations = [e["test"] for e in stream], [e["validation"] for e in stream]
    if method == "joint":
        pooled = {split: [x for e in stream for x in e[split]] for split in ("train", "validation")}
        run = autoft.train(first_config(write(work / "joint-data", pooled), work / "joint", task, seed), overwrite=True)
        final, final_val = [metric(run, t, name) for t in tests], [metric(run, v, name) for v in validations]
        return {
            "matrix": [final],
            "validation_matrix": [final_val],
            "final_average": float(np.mean(final)),
            "final_average_validation": float(np.mean(final_val)),
            "backward_transfer": None,
            "wall_seconds": round(time.perf_counter() - started, 1),
        }
    parent = work / f"{method}-0"
    shutil.copytree(first, parent)  # a lineage of its own
    matrix = [[metric(autoft.load(parent), tests[0], name)]]
    validation_matrix = [[metric(autoft.load(parent), validations[0], name)]]
    for k in range(1, len(stream)):
        result = continual.update(
            parent,
            files[k]["train"],
            validation=files[k]["validation"],
            output=work / f"{method}-{k}",
            overrides=overrides_of(method, budget),
            overwrite=True,
        )
        parent = work / f"{method}-{k}"
        matrix.append([metric(result.run, tests[j], name) for j in range(k + 1)])
        validation_matrix.append([metric(result.run, validations[j], name) for j in range(k + 1)])
        log.info("%s after experience %d: %s", method, k + 1, [round(x, 4) for x in matrix[-1]])
    final = matrix[-1]
    backward = float(np.mean([final[j] - matrix[j][j] for j in range(len(final) - 1)]))
    return {
        "matrix": matrix,
        "validation_matrix": validation_matrix,
        "final_average": float(np.mean(final)),
        "final_average_validation": float(np.mean(validation_matrix[-1])),
        "backward_transfer": backward,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "note": "wall-clock excludes the first run it starts from",
    }


def generative_stream(root: str | None, experiences: int, limit: int) -> tuple[str, list[dict[str, list[Example]]]]:
    stream = []
    for k, public in enumerate(GENERATIVE[:experiences]):
        splits = load_public(public, root)
        sizes = {"train": limit, **GENERATIVE_HELD_OUT}
        stream.append(
            {
                split: [splits[split][i] for i in sorted(np.random.default_rng(k).permutation(len(splits[split]))[:n])]
                for split, n in sizes.items()
            }
        )
    return "rougeL", stream


def table(results: dict[str, Any], metric_name: str) -> str:
    lines = [
        (
            f"| method | final average {metric_name} (test) | backward transfer (forgetting < 0) | "
            "final average (validation) | wall s |"
        ),
        "|---|---:|---:|---:|---:|",
    ]
    for method, r in results.items():
        bwt = "–" if r["backward_transfer"] is None else f"{100 * r['backward_transfer']:+.1f}"
        lines.append(
            f"| {method} | {r['final_average']:.3f} | {bwt} | {r['final_average_validation']:.3f} | "
            f"{r['wall_seconds']:.0f} |"
        )
    return "\n".join(lines)


def matrix_table(results: dict[str, Any], experiences: int) -> str:
    """Each sequential method's test matrix: after experience i (rows), on experience j's test set (columns)."""
    lines = [
        "| method | after | " + " | ".join(f"on {j + 1}" for j in range(experiences)) + " |",
        "|---|---:|" + "---:|" * experiences,
    ]
    for method, r in results.items():
        if r["backward_transfer"] is None:  # joint: one run, no sequence
            continue
        for i, row in enumerate(r["matrix"]):
            cells = [f"{x:.3f}" for x in row] + ["–"] * (experiences - len(row))
            lines.append(f"| {method} | {i + 1} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stream", choices=("banking77", "btc", "generative"), default="banking77")
    parser.add_argument(
        "--mix",
        type=float,
        default=0.0,
        help="banking77: each later experience also brings this "
        "share of --per-experience fresh rows of the earlier experiences' intents",
    )
    parser.add_argument("--experiences", type=int, default=None, help="default: 4 (banking77), 3 (btc), 2 (generative)")
    parser.add_argument("--per-experience", type=int, default=600, help="training rows per experience, at most")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument(
        "--budget",
        type=lambda v: "auto" if v == "auto" else float(v),
        default="auto",
        help="replay budget of the replay methods: a share of the old training data, or auto (the default's: as "
        "many old samples as new ones, at least a tenth of the old); 0.1 until issue 29's budget measurements",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", help="shared data folder (default: ../shared/data beside the checkout)")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    experiences = args.experiences or {"banking77": 4, "btc": 3, "generative": 2}[args.stream]
    if args.stream == "banking77":
        name, stream = banking77_stream(args.data_root, experiences, args.per_experience, args.mix)
    elif args.stream == "btc":
        name, stream = btc_stream(args.data_root, experiences, args.per_experience)
    else:
        name, stream = generative_stream(args.data_root, experiences, args.per_experience)
    task = {"banking77": "classification", "btc": "token-classification", "generative": "generation"}[args.stream]
    output = args.output or RESULTS / f"continual_{args.stream}.json"
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as work:
        files = [write(Path(work) / f"data-{k}", e, task) for k, e in enumerate(stream)]
        firsts = {}
        for method in args.methods:
            kind = "lora" if method == "lora-per-task" or task == "generation" else "full"
            if method != "joint" and kind not in firsts:
                firsts[kind] = Path(work) / f"first-{kind}"
                autoft.train(first_config(files[0], firsts[kind], task, args.seed, "lora" if kind == "lora" else None))
            results[method] = run_method(
                method, stream, files, task, name, Path(work), firsts.get(kind), args.budget, args.seed
            )
            log.info("%s: final average %.4f", method, results[method]["final_average"])
    shown = {"task": "accuracy", "f1": "entity F1", "rougeL": "ROUGE-L"}[name]
    model = (
        "packaged SmolLM2 with LoRA, training as benchmarks/generative.py fixes it"
        if task == "generation"
        else "packaged MiniLM, every training setting auto"
    )
    text = (
        f"Continual stream {args.stream}: {experiences} experiences of at most {args.per_experience} training "
        f"rows ({', '.join(str(len(e['train'])) for e in stream)}), {model}, "
        f"seed {args.seed}; replay budget "
        + (
            f"{args.budget:g} of the old training data"
            if isinstance(args.budget, float)
            else "auto (as many old samples as new ones, at least a tenth of the old)"
        )
        + (f"; each later experience adds {args.mix:g} x its size of fresh rows of older intents" if args.mix else "")
        + ".\n\n"
        + table(results, shown)
        + f"\n\nTest {shown} after each experience (rows) on each experience's test set (columns):\n\n"
        + matrix_table(results, experiences)
        + "\n"
    )
    write_result(
        output,
        {
            "args": {k: str(v) for k, v in vars(args).items()},
            "experiences": [{split: len(rows) for split, rows in e.items()} for e in stream],
            "results": results,
        },
        text,
    )


if __name__ == "__main__":
    main()
