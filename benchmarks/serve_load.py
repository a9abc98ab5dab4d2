"""Load test of ``autoft serve``: N concurrent clients on loopback against a raw batched forward pass, for each backend
(PyTorch, ONNX, ONNX int8).

    python benchmarks/serve_load.py                      # 32 clients x 60 s, torch, onnx and int8
    python benchmarks/serve_load.py --clients 8 --seconds 10 --backends torch

A classification run of the packaged MiniLM (3 epochs on 1,500 BANKING77 training queries, max_length 64) is served
by ``autoft serve`` in its own process (uvicorn, real HTTP on 127.0.0.1, the default dynamic batching: up to 32
inputs, a 5 ms window). ``--clients`` asyncio clients in this process each send one query per request
(``{"input": text}``), back to back, for ``--seconds``; a request counts when its answer is back. Reported:
requests/s, p50 / p99 latency, errors (any status but 200, or a transport error), and the ratio of the served
requests/s to the throughput of the same run's ``Run.predict`` in batches of 32 on the same queries, measured in a
separate process with the same threads before the server starts (the raw batched forward pass, with tokenisation
and decoding, without HTTP).

Each backend's server runs alone, one after another. For int8, the test accuracy of the quantised model against the
PyTorch one on BANKING77's test queries, and how often their labels agree.

Writes ``benchmarks/results/serve_load.json`` and ``serve_load.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from result_files import write_result

RESULTS = Path(__file__).resolve().parent / "results"
RAW = """
import json, sys, time
import torch
from autoft.run import Run
run_dir, texts_path, seconds, threads = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
if threads:
    torch.set_num_threads(threads)
texts = json.loads(open(texts_path).read())
run = Run.load(run_dir)
run.predict(texts[:64], batch_size=32)  # warm-up
done, started = 0, time.perf_counter()
while time.perf_counter() - started < seconds:
    batch = [texts[(done + i) % len(texts)] for i in range(32)]
    run.predict(batch, batch_size=32)
    done += 32
print(json.dumps({"inputs_per_second": done / (time.perf_counter() - started)}))
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


TRAIN_ROWS = 1500
"""The served run: 3 epochs on the first 1,500 BANKING77 training queries (a model good enough that int8's cost on its
test accuracy means something)."""


def make_run(folder: Path, texts: list[str], labels: list[str]) -> Path:
    import autoft
    from autoft.data.example import Example
    from autoft.data.writing import write_examples

    examples = [Example(t, y) for t, y in zip(texts, labels)]
    seen = {e.label for e in examples[:TRAIN_ROWS]}
    validation = [e for e in examples[TRAIN_ROWS:TRAIN_ROWS + 1000] if e.label in seen][:256]
    files = {"train": str(write_examples(folder / "train", examples[:TRAIN_ROWS], task="classification")),
             "validation": str(write_examples(folder / "validation", validation, task="classification"))}
    run = autoft.train({"task": "classification", "data": files, "output_dir": str(folder / "run"),
                        "training": {"epochs": 3, "learning_rate": 1e-4, "max_length": 64, "progress": False}})
    return run.path


async def load(url: str, texts: list[str], clients: int, seconds: float) -> dict:
    import httpx

    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def client(k: int, session: httpx.AsyncClient) -> None:
        nonlocal errors
        i = k
        while time.perf_counter() < stop:
            started = time.perf_counter()
            try:
                response = await session.post(url, json={"input": texts[i % len(texts)]})
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1
            i += clients

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=60) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(k, session) for k in range(clients)))
        elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {"requests": len(latencies), "errors": errors, "seconds": round(elapsed, 2),
            "requests_per_second": len(latencies) / elapsed,
            "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
            "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None}


BACKENDS = {"torch": ("torch", None), "onnx": ("onnx", None), "int8": ("onnx", "int8")}
"""What ``--backends`` names: ``autoft serve``'s ``--backend`` and ``--quantize``."""


def serve_under_load(run_dir: Path, queries: list[str], args: argparse.Namespace, backend: str,
                     quantize: str | None) -> tuple[dict, dict]:
    """Start ``autoft serve`` with this backend, warm it up, load it; returns the load and the batches served."""
    import os

    import httpx

    port = _free_port()
    env_threads = {} if not args.threads else {"OMP_NUM_THREADS": str(args.threads)}
    options = ["--backend", backend, *(["--quantize", quantize] if quantize else []),
               *(["--threads", str(args.threads)] if args.threads else [])]
    server = subprocess.Popen([sys.executable, "-m", "autoft.cli", "--quiet", "serve", str(run_dir), "--port",
                               str(port), *options], env={**os.environ, **env_threads}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.time() > deadline:
                raise SystemExit(f"the server ({' '.join(options)}) did not start")
            time.sleep(0.5)
        asyncio.run(load(f"http://127.0.0.1:{port}/predict", queries, min(args.clients, 4), 5))  # warm-up
        before = httpx.get(f"http://127.0.0.1:{port}/metadata", timeout=5).json()["served"]
        served = asyncio.run(load(f"http://127.0.0.1:{port}/predict", queries, args.clients, args.seconds))
        after = httpx.get(f"http://127.0.0.1:{port}/metadata", timeout=5).json()["served"]
    finally:
        server.terminate()
        server.wait(timeout=60)
    return served, {k: after[k] - before[k] for k in after}


def quantisation_cost(run_dir: Path, test: list, threads: int) -> dict:
    """Test accuracy of the PyTorch model and of its int8 ONNX quantisation, and how often their labels agree."""
    from autoft.run import Run
    from autoft.serving.backends import load_backend

    run = Run.load(run_dir)
    texts = [e.text for e in test]
    exact = [p["label"] for p in run.predict(texts, batch_size=32)]
    int8 = [p["label"] for p in load_backend(run, backend="onnx", quantize="int8", threads=threads).predict(texts)]
    gold = [e.label for e in test]
    return {"test_rows": len(test), "torch_accuracy": float(np.mean([p == g for p, g in zip(exact, gold)])),
            "int8_accuracy": float(np.mean([p == g for p, g in zip(int8, gold)])),
            "agreement": float(np.mean([a == b for a, b in zip(exact, int8)]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--raw-seconds", type=float, default=30.0)
    parser.add_argument("--backends", nargs="+", choices=list(BACKENDS), default=list(BACKENDS),
                        help="servers to load, one after another (int8: --backend onnx --quantize int8)")
    parser.add_argument("--threads", type=int, default=0, help="threads of server and raw pass (0: the default)")
    parser.add_argument("--data-root", help="shared data folder (default: ../shared/data beside the checkout)")
    parser.add_argument("--output", type=Path, default=RESULTS / "serve_load.json")
    args = parser.parse_args()
    from public_data import load_public

    data = load_public("banking77", args.data_root)
    texts, labels = [e.text for e in data["train"]], [e.label for e in data["train"]]
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        run_dir = make_run(folder, texts, labels)
        queries = texts[TRAIN_ROWS + 1000:TRAIN_ROWS + 2000]
        (folder / "texts.json").write_text(json.dumps(queries))
        raw = json.loads(subprocess.run([sys.executable, "-c", RAW, str(run_dir), str(folder / "texts.json"),
                                         str(args.raw_seconds), str(args.threads)], check=True, capture_output=True,
                                        text=True).stdout.strip().splitlines()[-1])
        rows = {}
        for name in args.backends:
            served, meta = serve_under_load(run_dir, queries, args, *BACKENDS[name])
            rows[name] = {**served, "ratio": served["requests_per_second"] / raw["inputs_per_second"],
                          "mean_batch": meta["inputs"] / max(meta["batches"], 1)}
        cost = quantisation_cost(run_dir, data["test"], args.threads) if "int8" in args.backends else None
    command = "python benchmarks/serve_load.py" + "".join(
        f" --{k} {v:g}" if isinstance(v, float) else f" --{k} {v}" for k, v, d in (
            ("clients", args.clients, 32), ("seconds", args.seconds, 60.0), ("threads", args.threads, 0)) if v != d)
    if args.backends != list(BACKENDS):
        command += " --backends " + " ".join(args.backends)
    result = {"command": command, "clients": args.clients, "seconds": args.seconds, "backends": rows,
              "raw_inputs_per_second": raw["inputs_per_second"], "threads": args.threads or None,
              "int8_cost": cost}
    lines = [("| backend | clients × seconds | requests | requests/s | p50 ms | p99 ms | errors | ratio to raw batched "
              "PyTorch | mean batch |"), "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, row in rows.items():
        lines.append(f"| {name} | {args.clients} × {args.seconds:g} | {row['requests']} | "
                     f"{row['requests_per_second']:.1f} | {row['p50_ms']:.0f} | {row['p99_ms']:.0f} | {row['errors']} | "
                     f"{row['ratio']:.2f} | {row['mean_batch']:.1f} |")
    lines.append(f"\nRaw batched PyTorch (`Run.predict`, batches of 32, no HTTP): {raw['inputs_per_second']:.1f} inputs/s.")
    if cost:
        lines.append(f"int8 on the {cost['test_rows']} BANKING77 test queries: accuracy {cost['int8_accuracy']:.4f} "
                     f"(PyTorch {cost['torch_accuracy']:.4f}), labels agreeing with PyTorch on "
                     f"{100 * cost['agreement']:.1f}%.")
    write_result(args.output, result, "\n".join(lines))


if __name__ == "__main__":
    main()
