"""Unlabelled updates (issue 29): ``autoft update RUN --unlabeled TEXTS`` on a domain shift whose new labels are
hidden, against no update, the same update without the pseudo-labels, and a labelled update of the same texts.

    python benchmarks/unlabeled_update.py --seeds 0            # one seed's cell (about 25 minutes on one core)
    python benchmarks/unlabeled_update.py --shift banking77-typed --seeds 0     # the other shift
    python benchmarks/unlabeled_update.py --no-run             # the table from every cell of this commit
    python benchmarks/unlabeled_update.py --no-run --commit 5dffeb9     # ... of another commit of src/

Shifts (``--shift``): ``banking77-typed``, BANKING77 (its README's split) as written against the same queries typed
in a hurry — lower case, no punctuation, a quarter of the words with one slip (two letters swapped, one dropped,
doubled or hit on a neighbouring key), drawn once (seed 0, in file order) — a constructed shift with room to adapt to; and
``sgd-services`` (Schema-Guided Dialogue, ../shared/data, its README's file split): single-label dialogue acts — each USER
turn whose frames carry one act type (INFORM, REQUEST, AFFIRM, ...), labelled with it — where the *old domain* is
the turns of the Hotels, Restaurants and Buses services and the *new domain* those of Flights, RentalCars and
RideSharing (services present in every split). The act set is shared; the words, slots and habits of each
service are not. Per seed (training seed = sampling seed):

- the first run: plain fine-tuning (every training setting auto) on a seeded ``--old-train`` old-domain training
  turns, validated on a seeded ``--validation`` old-domain validation turns;
- ``no update``: that run;
- ``replay only``: ``autoft update --unlabeled POOL`` with ``selection.self_training: off`` — the same replay of
  old samples and the same training, without the pseudo-labels (the control: it lacks only what is claimed to
  help);
- ``unlabelled (default)``: ``autoft update --unlabeled POOL`` with every setting at its default (the parent's
  pseudo-labels admitted per class by the agent, validated on the lineage's validation data);
- ``unlabelled, threshold``: the same with ``selection.self_training: threshold`` (every pseudo-label above 0.9);
- ``labelled update``: ``autoft update --data`` with the pool's true labels and a seeded ``--validation`` of the new
  domain's validation turns (what labelling the pool would buy; an upper reference, not a baseline).

The pool is a seeded ``--pool`` new-domain training turns (their labels hidden from every method but the last);
acts the first run never saw are left out of every other set. Every update runs with ``continual.gate: null`` (the
gate is not what is measured); the table's *promoted by the gate* says on how many seeds the default gate (tolerance
0.01 on the gate's validation data, recorded with each update) would have promoted the update, and the row
``unlabelled (default), gated`` what a user of the default is left with: the update where the gate promotes it, the
first run where not (``--rerun`` runs a commit's seeds again, for cells written before the record was kept).
Scores: macro-F1 and accuracy on the new domain's and the old domain's test turns.
Cells go to ``benchmarks/results/unlabeled_update_cells.jsonl`` (one line per seed and commit of src/); the table to
``benchmarks/results/unlabeled_update_<shift>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from public_data import _sgd_dialogues, load_public, shared_root
from result_files import src_commit, write_result

import autoft
from autoft import continual
from autoft.config.sections import ContinualConfig
from autoft.data.loading import Example
from autoft.data.writing import write_examples

log = logging.getLogger("unlabeled_update")
RESULTS = Path(__file__).resolve().parent / "results"
CELLS = RESULTS / "unlabeled_update_cells.jsonl"
OLD, NEW = ("Hotels", "Restaurants", "Buses"), ("Flights", "RentalCars", "RideSharing")
GATE = float(ContinualConfig.model_fields["gate"].default)
"""The promotion gate's default tolerance (the benchmark's updates run with the gate off; the table says what it would
have done)."""
METHODS = {
    "no update": None,
    "replay only": ["selection.self_training=off"],
    "unlabelled (default)": [],
    "unlabelled, threshold": ["selection.self_training=threshold"],
    "labelled update": [],
}


def single_act_turns(root: Path) -> dict[str, dict[str, list[Example]]]:
    """``{domain: {split: turns}}`` (domain ``old`` or ``new``): USER turns of one act type, labelled with it."""
    turns: dict[str, dict[str, list[Example]]] = {
        d: {"train": [], "validation": [], "test": []} for d in ("old", "new")
    }
    for split, path, dialogue in _sgd_dialogues(root):
        for t, turn in enumerate(dialogue["turns"]):
            if turn["speaker"] != "USER":
                continue
            service = turn["frames"][0]["service"].split("_")[0]
            domain = "old" if service in OLD else "new" if service in NEW else None
            acts = {a["act"] for frame in turn["frames"] for a in frame["actions"]}
            if domain and len(acts) == 1:
                turns[domain][split].append(
                    Example(turn["utterance"], acts.pop(), f"{path.name}:{dialogue['dialogue_id']}:{t}")
                )
    return turns


KEYBOARD = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]


def typed(text: str, rng: random.Random, rate: float = 0.25) -> str:
    """``text`` as typed in a hurry on a phone: lower case, no punctuation, and a ``rate`` of its words with one slip
    (two letters swapped, one dropped, doubled, or hit on a neighbouring key)."""
    near = {c: row[max(i - 1, 0)] + row[i + 1 : i + 2] for row in KEYBOARD for i, c in enumerate(row)}
    words = []
    for word in "".join(c for c in text.lower() if c.isalnum() or c.isspace()).split():
        if len(word) > 2 and rng.random() < rate:
            i = rng.randrange(len(word) - 1)
            slip = rng.randrange(4)
            if slip == 0:
                word = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
            elif slip == 1:
                word = word[:i] + word[i + 1 :]
            elif slip == 2:
                word = word[:i] + word[i] + word[i:]
            elif word[i] in near:
                word = word[:i] + rng.choice(near[word[i]]) + word[i + 1 :]
        words.append(word)
    return " ".join(words) or text


def banking77_typed(root: Path) -> dict[str, dict[str, list[Example]]]:
    """``{domain: {split: rows}}``: BANKING77 as written (``old``) and the same rows typed in a hurry (``new``,
    :func:`typed`, drawn once in file order, the same for every seed)."""
    splits = load_public("banking77", root)
    rng = random.Random(0)
    return {
        "old": splits,
        "new": {
            split: [Example(typed(e.text, rng), e.label, e.origin) for e in rows] for split, rows in splits.items()
        },
    }


SHIFTS = {"sgd-services": lambda root: single_act_turns(root), "banking77-typed": banking77_typed}


def draw(rows: list[Example], n: int, seed: int) -> list[Example]:
    return random.Random(seed).sample(rows, min(n, len(rows)))


def scores(run: autoft.Run, old_test: list[Example], new_test: list[Example]) -> dict[str, Any]:
    result = {}
    for name, rows in (("new", new_test), ("old", old_test)):
        metrics = run.evaluate(rows)
        result[name] = {"macro_f1": float(metrics["macro_f1"]), "accuracy": float(metrics["accuracy"])}
    return result


def cell(seed: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Every method on one seed's draw."""
    turns = SHIFTS[args.shift](shared_root(args.data_root))
    old_train = draw(turns["old"]["train"], args.old_train, seed)
    acts, taken = {e.label for e in old_train}, {e.origin for e in old_train}
    old = {split: [e for e in rows if e.label in acts] for split, rows in turns["old"].items()}
    new = {split: [e for e in rows if e.label in acts] for split, rows in turns["new"].items()}
    pool = draw([e for e in new["train"] if e.origin not in taken], args.pool, seed)  # (rows the first run never saw)
    files = {
        "train": write_examples(work / "old-train", old_train),
        "validation": write_examples(work / "old-validation", draw(old["validation"], args.validation, seed)),
        "new-train": write_examples(work / "new-train", pool),
        "new-validation": write_examples(work / "new-validation", draw(new["validation"], args.validation, seed)),
    }
    texts = work / "pool.txt"
    texts.write_text("".join(e.text.replace("\n", " ") + "\n" for e in pool), encoding="utf-8")
    old_test, new_test = old["test"], new["test"]
    started = time.perf_counter()
    first = autoft.train(
        {
            "task": "classification",
            "output_dir": str(work / "first"),
            "data": {"train": str(files["train"]), "validation": str(files["validation"])},
            "training": {"seed": seed, "progress": False},
        }
    )
    results: dict[str, Any] = {
        "no update": {**scores(first, old_test, new_test), "wall_seconds": round(time.perf_counter() - started, 1)}
    }
    for method, overrides in METHODS.items():
        if overrides is None:
            continue
        parent = work / f"{method}-first".replace(" ", "-").replace(",", "").replace("(", "").replace(")", "")
        shutil.copytree(work / "first", parent)  # a lineage of its own
        started = time.perf_counter()
        given = (
            {"data": str(files["new-train"]), "validation": str(files["new-validation"])}
            if method == "labelled update"
            else {"unlabeled": str(texts)}
        )
        result = continual.update(
            parent,
            **given,
            output=parent.with_name(parent.name + "-update"),
            overrides=["continual.gate=null", "training.progress=false", *overrides],
        )
        results[method] = {
            **scores(result.run, old_test, new_test),
            "unlabeled": result.record.get("unlabeled"),
            "validation": result.record.get("scores"),  # parent and update on the gate's validation sets
            "wall_seconds": round(time.perf_counter() - started, 1),
        }
        log.info("seed %d %s: %s", seed, method, results[method])
    return {
        "seed": seed,
        "commit": commit(),
        "shift": args.shift,
        "sizes": {
            "old_train": len(old_train),
            "pool": len(pool),
            "old_test": len(old_test),
            "new_test": len(new_test),
            "acts": sorted(acts),
        },
        "results": results,
    }


def commit() -> str:
    """``result_files.src_commit``: the last commit that changed src/, ``-dirty`` with changes not committed."""
    head, dirty = src_commit()
    return head + ("-dirty" if dirty else "")


def _mean(rows: list[dict[str, Any]], domain: str, key: str = "macro_f1") -> str:
    values = [r[domain][key] for r in rows]
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def _change(rows: list[dict[str, Any]], base: list[dict[str, Any]], domain: str) -> str:
    """Points of macro-F1 against no update: the mean over seeds, the worst seed's in brackets."""
    gaps = [100 * (r[domain]["macro_f1"] - b[domain]["macro_f1"]) for r, b in zip(rows, base)]
    return f"{np.mean(gaps):+.1f} ({min(gaps):+.1f})"


def promoted(row: dict[str, Any]) -> bool | None:
    """Whether the default promotion gate would have promoted the update (None: the cell predates the record of its
    validation scores): no validation set of the gate's worse by more than its tolerance."""
    record = row.get("validation")
    if not record:
        return None
    return all(s["change"] >= -GATE for s in record.values() if s.get("change") is not None)


def gated(row: dict[str, Any], parent: dict[str, Any]) -> dict[str, Any]:
    """What a user of the default gate is left with: the update's scores where the gate promotes it, else the
    parent's (the row's pseudo-label and gate columns stay empty: they would mix updates served and refused)."""
    return {
        **(row if promoted(row) else parent),
        "unlabeled": None,
        "validation": None,
        "wall_seconds": row["wall_seconds"],
    }


def table(cells: list[dict[str, Any]]) -> str:
    cells = sorted(cells, key=lambda c: c["seed"])
    seeds = [c["seed"] for c in cells]
    base = [c["results"]["no update"] for c in cells]
    lines = [
        (
            "| method | new domain macro-F1 | change vs no update (worst seed) | old domain macro-F1 | change vs no "
            "update (worst seed) | new domain accuracy | pseudo-labels admitted (last epoch) | promoted by the gate | "
            "wall s |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    methods = [(method, [c["results"][method] for c in cells]) for method in METHODS]
    default = dict(methods)["unlabelled (default)"]
    if all(promoted(r) is not None for r in default):
        methods.insert(3, (f"unlabelled (default), gated ({GATE:g})", [gated(r, b) for r, b in zip(default, base)]))
    for method, rows in methods:
        changes = ["–", "–"] if method == "no update" else [_change(rows, base, d) for d in ("new", "old")]
        admitted = [r["unlabeled"]["admitted_last_epoch"] for r in rows if r.get("unlabeled")]
        verdicts = [promoted(r) for r in rows]
        gate = "–" if method == "no update" or None in verdicts else f"{sum(map(bool, verdicts))} of {len(rows)}"
        lines.append(
            f"| {method} | {_mean(rows, 'new')} | {changes[0]} | {_mean(rows, 'old')} | {changes[1]} | "
            f"{_mean(rows, 'new', 'accuracy')} | {round(np.mean(admitted)) if admitted else '–'} | {gate} | "
            f"{np.mean([r['wall_seconds'] for r in rows]):.0f} |"
        )
    sizes = cells[0]["sizes"]
    shift = (
        f"Schema-Guided Dialogue single-act user turns: old domain {', '.join(OLD)}; new domain {', '.join(NEW)}"
        if cells[0].get("shift", "sgd-services") == "sgd-services"
        else "BANKING77 as written (old domain) and the same queries typed in a hurry (new domain: lower case, no "
        "punctuation, a quarter of the words with a slip)"
    )
    return (
        f"Unlabelled update on a domain shift ({shift}; the new domain's labels hidden): first run on "
        f"{sizes['old_train']} old-domain rows, pool of {sizes['pool']} new-domain texts; test {sizes['new_test']} "
        f"new-domain and {sizes['old_test']} old-domain rows; packaged MiniLM, every setting auto; seeds "
        f"{' '.join(map(str, seeds))}, commit {cells[0]['commit']}. Changes in points of macro-F1, mean over "
        f"seeds (the worst seed in brackets).\n\n" + "\n".join(lines) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shift", choices=list(SHIFTS), default="sgd-services")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--old-train", type=int, default=1000)
    parser.add_argument("--pool", type=int, default=1500)
    parser.add_argument("--validation", type=int, default=400)
    parser.add_argument("--data-root", help="shared data folder (default: ../shared/data beside the checkout)")
    parser.add_argument("--no-run", action="store_true", help="only the table, from the cells of this commit")
    parser.add_argument(
        "--rerun",
        action="store_true",
        help="run the seeds again where this commit has cells (the new ones replace them)",
    )
    parser.add_argument("--commit", help="with --no-run: the table from the cells of this commit of src/ instead")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    here = args.commit if args.no_run and args.commit else commit()
    cached = (
        {
            (c["seed"], c["commit"], c.get("shift", "sgd-services")): c
            for c in map(json.loads, CELLS.read_text().splitlines())
        }
        if CELLS.exists()
        else {}
    )
    if not args.no_run:
        for seed in args.seeds:
            if (seed, here, args.shift) in cached and not args.rerun:
                continue
            with tempfile.TemporaryDirectory() as work:
                result = cell(seed, args, Path(work))
            cached[(seed, here, args.shift)] = result
            CELLS.parent.mkdir(parents=True, exist_ok=True)
            with CELLS.open("a", encoding="utf-8") as stream:
                stream.write(json.dumps(result) + "\n")
    cells = [c for (seed, at, shift), c in cached.items() if at == here and seed in args.seeds and shift == args.shift]
    if cells:
        write_result(RESULTS / f"unlabeled_update_{args.shift}.json", {"cells": cells}, table(cells))


if __name__ == "__main__":
    main()
