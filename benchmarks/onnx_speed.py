"""ONNX parity and speed: ``autoft predict --backend onnx`` against PyTorch on the packaged MiniLM (issue 11).

    python benchmarks/onnx_speed.py [--threads 1]

A classification run of the packaged MiniLM (one epoch on 256 BANKING77 training queries, max_length 64) is
exported with ``autoft export --format onnx``; 1,000 other BANKING77 queries go through ``Run.predict`` (batches of
32) with each backend. Reported: the largest difference of any class probability and of any logit between the two,
whether every predicted label agrees, and the throughput (queries/s) of each backend after a warm-up, best of three.

Writes ``benchmarks/results/onnx_speed.json`` and ``onnx_speed.md``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from result_files import write_result

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=0, help="torch and onnxruntime threads (0: their default)")
    parser.add_argument("--data-root", help="shared data folder (default: ../shared/data beside the checkout)")
    parser.add_argument("--output", type=Path, default=RESULTS / "onnx_speed.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from public_data import load_public
    from serve_load import make_run

    import autoft
    from autoft.data.example import Example
    from autoft.modeling.onnx import OnnxForward

    train = load_public("banking77", args.data_root)["train"]
    texts, labels = [e.text for e in train], [e.label for e in train]
    queries = texts[1400:2400]
    with tempfile.TemporaryDirectory() as work:
        run = autoft.load(make_run(Path(work), texts, labels))
        started = time.perf_counter()
        run.export(format="onnx")
        export_seconds = time.perf_counter() - started
        run._onnx = (
            run.path / "onnx" / "model.onnx",
            OnnxForward(run.path / "onnx" / "model.onnx", threads=args.threads),
        )
        results, speed = {}, {}
        for backend in ("torch", "onnx"):
            results[backend] = run.predict(queries[:64], batch_size=32, backend=backend)  # warm-up
            times = []
            for _ in range(3):
                started = time.perf_counter()
                results[backend] = run.predict(queries, batch_size=32, backend=backend)
                times.append(time.perf_counter() - started)
            speed[backend] = len(queries) / min(times)
        features = run.adapter.encode([Example(q, None) for q in queries], with_labels=False)
        worst_logit = 0.0
        for start in range(0, len(features), 32):
            batch = run.adapter.collate_indexed([dict(f, index=i) for i, f in enumerate(features[start : start + 32])])
            batch = {k: v for k, v in batch.items() if k not in ("index", "labels")}
            with torch.no_grad():
                expected = run.adapter.forward(run.model.eval(), batch).numpy()
            worst_logit = max(worst_logit, float(np.abs(run.onnx_forward()(batch).numpy() - expected).max()))
    worst_probability = max(
        abs(a["probabilities"][k] - b["probabilities"][k])
        for a, b in zip(results["torch"], results["onnx"])
        for k in a["probabilities"]
    )
    agree = all(a["label"] == b["label"] for a, b in zip(results["torch"], results["onnx"]))
    result = {
        "command": "python benchmarks/onnx_speed.py" + (f" --threads {args.threads}" if args.threads else ""),
        "queries": len(queries),
        "max_abs_logit_difference": worst_logit,
        "max_abs_probability_difference": worst_probability,
        "labels_agree": agree,
        "queries_per_second": speed,
        "speedup": speed["onnx"] / speed["torch"],
        "export_seconds": round(export_seconds, 2),
        "threads": args.threads or None,
    }
    lines = [
        (
            "| queries | max logit difference | max probability difference | labels agree | PyTorch queries/s | "
            "ONNX queries/s | speed-up |"
        ),
        "|---:|---:|---:|---|---:|---:|---:|",
        (
            f"| {len(queries)} | {worst_logit:.2e} | {worst_probability:.2e} | {'all' if agree else 'NO'} | "
            f"{speed['torch']:.1f} | {speed['onnx']:.1f} | ×{result['speedup']:.2f} |"
        ),
    ]
    write_result(args.output, result, "\n".join(lines))


if __name__ == "__main__":
    main()
