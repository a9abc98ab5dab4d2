"""A million texts: `autoft value` streams a pool into the feature store and values it (issue 12).

    python benchmarks/scale.py                          # 10k and 100k rows (packaged MiniLM), 1M (tiny encoder)
    python benchmarks/scale.py --sizes 10k --raw-rows 2000   # a quick look

The pool: BANKING77's training texts (../shared/data), cycled, every text after the first pass made unique by a
reference number (``... (ref 123456)``: the feature store keeps one row per distinct text, so repeated texts would
be free), each labelled with its intent; 20% of the labels are replaced by another intent, seeded. autoft is told
none of this. Validation: 1,000 rows of BANKING77's test split, clean. 10k and 100k rows are encoded by the
packaged all-MiniLM-L6-v2; 1M rows by a 1-layer encoder of the same width (384) and tokenizer, randomly initialised
(the throughput is what is measured; its values mean little).

Per size:
- raw: a batched forward pass of the same encoder (tokenizer, padding to the batch's longest, batch 64, the same
  max_length) over the first ``--raw-rows`` texts held in memory — once in file order, once sorted by length as
  autoft sorts each chunk; rows/s;
- cold: ``autoft value`` in a fresh process with an empty ``AUTOFT_CACHE``: wall-clock, peak RSS (GNU time), and the
  featurisation phase's rows/s (texts hashed, encoded, appended to the store — for a pool above
  ``selection.fit_rows`` also read from the file as a stream; below it, 10k rows, the training and validation texts
  together: the first ``features of N texts in S s`` line autoft logs);
- warm: the same command again (every text is in the store): wall-clock, peak RSS, featurisation rows/s.
Plus what the valuation found: share flagged, precision and recall of the flags against the replaced labels,
over all rows and over the rows valued by the value model (not the offline phase's sample), and the value
model's cross-validated quality (``noise.json``).

Targets (issue 12): peak RSS <= 3 GB at 1M rows; autoft's rows/s >= 0.9x the raw pass; the second valuation >= 10x
faster than the first. Writes benchmarks/results/scale.json, .md and .log.
"""

from __future__ import annotations

import argparse
import csv
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
from result_files import write_result

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000}
NOISE = 0.2
MAX_LENGTH = 64
STREAMED = re.compile(r"features of (\d+) texts in ([\d.]+) s")


def _rows(n: int, seed: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]], np.ndarray]:
    from public_data import load_public

    data = load_public("banking77")
    train, test = data["train"], data["test"]
    intents = sorted({e.label for e in train})
    rng = np.random.default_rng(seed)
    replaced = rng.random(n) < NOISE
    other = rng.integers(1, len(intents), n)
    rows = []
    for i in range(n):
        example = train[i % len(train)]
        text = example.text if i < len(train) else f"{example.text} (ref {i})"
        label = intents[(intents.index(example.label) + other[i]) % len(intents)] if replaced[i] else example.label
        rows.append((text, label))
    keep = rng.permutation(len(test))[:1000]
    return rows, [(test[i].text, test[i].label) for i in sorted(keep)], replaced


def _write(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["text", "label"])
        writer.writerows(rows)


def _tiny_encoder(folder: Path) -> str:
    """A 1-layer BERT of MiniLM's width and tokenizer, randomly initialised (seed 0)."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, BertModel

    from autoft.modeling.load import resolve_model_name

    if (folder / "config.json").exists():
        return str(folder)
    base = resolve_model_name("default")
    config = AutoConfig.from_pretrained(base)
    config.num_hidden_layers = 1
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    return str(folder)


def _raw(model: str, texts: list[str], *, sort: bool) -> float:
    """Rows/s of a plain batched forward pass over ``texts``."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from autoft.modeling.load import resolve_model_name

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_name(model))
    encoder = AutoModel.from_pretrained(resolve_model_name(model)).eval()
    order = np.argsort([len(t) for t in texts], kind="stable") if sort else np.arange(len(texts))
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(order), 64):
            batch = tokenizer(
                [texts[i] for i in order[start : start + 64]],
                truncation=True,
                max_length=MAX_LENGTH,
                padding=True,
                return_tensors="pt",
            )
            encoder(**batch)
    return len(texts) / (time.perf_counter() - started)


def _value(config: Path, cache: Path, log: list[str]) -> dict:
    """``autoft value`` in a fresh process: wall-clock, peak RSS, the featurisation phase."""
    env = {**os.environ, "AUTOFT_CACHE": str(cache)}
    started = time.perf_counter()
    done = subprocess.run(
        [
            "/usr/bin/time",
            "-f",
            "peak_rss_kb=%M",
            sys.executable,
            "-m",
            "autoft.cli",
            "value",
            str(config),
            "--no-progress",
            "--show",
            "3",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    wall = time.perf_counter() - started
    log.extend([f"$ AUTOFT_CACHE={cache} autoft value {config} --no-progress --show 3", done.stdout, done.stderr])
    if done.returncode != 0:
        raise SystemExit(f"autoft value failed:\n{done.stderr[-3000:]}")
    streamed = STREAMED.search(done.stderr)
    rss = int(re.search(r"peak_rss_kb=(\d+)", done.stderr).group(1))
    rows, seconds = int(streamed.group(1)), max(float(streamed.group(2)), 0.05)  # the log has 0.1 s steps
    return {
        "wall_seconds": round(wall, 1),
        "peak_rss_gb": round(rss / 1024**2, 3),
        "rows": rows,
        "featurisation_seconds": seconds,
        "featurisation_rows_per_second": round(rows / seconds, 1),
        "end_to_end_rows_per_second": round(rows / wall, 1),
    }


def _quality(output: Path, replaced: np.ndarray) -> dict:
    flagged, carried = np.zeros(len(replaced), bool), np.zeros(len(replaced), bool)
    with (output / "data_values.csv").open(encoding="utf-8", newline="") as stream:
        for row in csv.DictReader(stream):
            i = int(row["row_id"])
            flagged[i], carried[i] = row["flagged"] == "True", row.get("valued_by") == "value model"

    def scores(rows: np.ndarray) -> dict:
        hit = flagged & replaced & rows
        return {
            "rows": int(rows.sum()),
            "flagged": int((flagged & rows).sum()),
            "precision": round(float(hit.sum() / max((flagged & rows).sum(), 1)), 4),
            "recall": round(float(hit.sum() / max((replaced & rows).sum(), 1)), 4),
        }

    noise = json.loads((output / "noise.json").read_text())
    return {
        "all": scores(np.ones(len(replaced), bool)),
        "value_model_rows": scores(carried),
        "estimated_rate": noise["rate"],
        "value_model": noise.get("value_model"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--raw-rows", type=int, default=20_000, help="texts in the raw forward pass")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/scale"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS / "scale.json")
    args = parser.parse_args()
    import torch

    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    log: list[str] = []
    results = []
    for size in args.sizes:
        n = SIZES[size]
        model = "default" if n <= 100_000 else _tiny_encoder(args.work / "tiny-encoder")
        rows, validation, replaced = _rows(n, args.seed)
        pool, val = args.work / f"pool_{size}.csv", args.work / "validation.csv"
        _write(pool, rows)
        _write(val, validation)
        output = args.work / f"values_{size}"
        config = args.work / f"scale_{size}.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "task": "classification",
                    "model": model,
                    "output_dir": str(output),
                    "data": {"train": str(pool), "validation": str(val)},
                    "training": {"max_length": MAX_LENGTH, "progress": False},
                    "selection": {"policy": "exp3"},
                }
            )
        )
        raw_texts = [text for text, _ in rows[: args.raw_rows]]
        del rows
        raw = {
            "rows": len(raw_texts),
            "file_order": round(_raw(model, raw_texts, sort=False), 1),
            "length_sorted": round(_raw(model, raw_texts, sort=True), 1),
        }
        del raw_texts
        cache = args.work / f"cache_{size}"
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(output, ignore_errors=True)
        cold = _value(config, cache, log)
        quality = _quality(output, replaced)
        warm = _value(config, cache, log)
        best_raw = max(raw["file_order"], raw["length_sorted"])
        results.append(
            {
                "size": size,
                "rows": n,
                "encoder": "all-MiniLM-L6-v2 (packaged)"
                if model == "default"
                else "1-layer BERT, 384 wide, MiniLM tokenizer, random weights",
                "raw_rows_per_second": raw,
                "cold": cold,
                "warm": warm,
                "featurisation_vs_raw": round(cold["featurisation_rows_per_second"] / best_raw, 3),
                "end_to_end_vs_raw": round(cold["end_to_end_rows_per_second"] / best_raw, 3),
                "featurisation_speedup_warm": round(cold["featurisation_seconds"] / warm["featurisation_seconds"], 1),
                "end_to_end_speedup_warm": round(cold["wall_seconds"] / warm["wall_seconds"], 1),
                "store_gb": round(sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()) / 1024**3, 3),
                "quality": quality,
            }
        )
        print(json.dumps(results[-1], indent=1), flush=True)
        shutil.rmtree(cache, ignore_errors=True)
        pool.unlink()

    lines = [
        (
            "| rows | encoder | raw rows/s (file order / sorted) | featurisation rows/s (× raw) | value end to end "
            "rows/s (× raw) | cold wall s | warm wall s (speed-up; featurisation speed-up) | peak RSS GB cold / warm | "
            "flag precision / recall (value-model rows) |"
        ),
        "|---|---|---|---|---|---:|---|---|---|",
    ]
    for r in results:
        q = r["quality"]
        lines.append(
            f"| {r['rows']:,} | {r['encoder'].split(' (')[0].split(',')[0]} | {r['raw_rows_per_second']['file_order']:.0f} / "
            f"{r['raw_rows_per_second']['length_sorted']:.0f} | {r['cold']['featurisation_rows_per_second']:.0f} "
            f"(×{r['featurisation_vs_raw']:.2f}) | {r['cold']['end_to_end_rows_per_second']:.0f} "
            f"(×{r['end_to_end_vs_raw']:.2f}) | {r['cold']['wall_seconds']:.0f} | {r['warm']['wall_seconds']:.0f} "
            f"(×{r['end_to_end_speedup_warm']:.1f}; ×{r['featurisation_speedup_warm']:.1f}) | "
            f"{r['cold']['peak_rss_gb']:.2f} / {r['warm']['peak_rss_gb']:.2f} | "
            f"{q['all']['precision']:.2f} / {q['all']['recall']:.2f} ({q['value_model_rows']['precision']:.2f} / "
            f"{q['value_model_rows']['recall']:.2f}) |"
        )
    command = "python benchmarks/scale.py " + " ".join(sys.argv[1:])
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent, check=False
    ).stdout.strip()
    write_result(
        args.output,
        {
            "command": command,
            "commit": commit,
            "threads": args.threads,
            "noise": NOISE,
            "max_length": MAX_LENGTH,
            "results": results,
        },
        "\n".join(lines),
    )
    progress = re.compile(r"\d+%\||it/s\]|s/it\]")
    args.output.with_suffix(".log").write_text(
        "\n".join(line for block in log for line in block.splitlines() if not progress.search(line)) + "\n"
    )


if __name__ == "__main__":
    main()
