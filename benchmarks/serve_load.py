"""Load test of ``autoft serve``: N concurrent clients on loopback against a raw batched forward pass, for each backend
(PyTorch, ONNX, ONNX int8).

    python benchmarks/serve_load.py                      # 32 clients x 60 s, torch, onnx and int8
    python benchmarks/serve_load.py --clients 8 --seconds 10 --backends torch

A classification run of the packaged MiniLM (every training default, max_length 64, on 1,500 BANKING77 training
queries) is served by ``autoft serve`` in its own process (uvicorn, real HTTP on 127.0.0.1, the default dynamic
batching: up to 32 inputs, a 5 ms window). ``--clients`` asyncio clients in this process each send one query per
request (``{"input": text}``), back to back, for ``--seconds``; a request counts when its answer is back. Reported:
requests/s, p50 / p99 latency, errors (any status but 200, or a transport error), and the ratio of the served
requests/s to the throughput of the same run's ``Run.predict`` in batches of 32 on the same queries, measured in a
separate process with the same threads before the server starts (the raw batched forward pass, with tokenisation
and decoding, without HTTP); the same raw pass through the ONNX model shows what ONNX gains without HTTP.

Each backend's server runs alone, one after another. Then the swap test: a PyTorch server following the run's
lineage (``--follow-latest``) under the same load, with a run promoted mid-test; and the SIGTERM test: a PyTorch
server under the same load sent SIGTERM mid-test (every request sent before the signal must be answered). For int8,
the test accuracy of the quantised model against the PyTorch one on BANKING77's test queries, how often their labels
agree, and how close to a tie PyTorch's own prediction was where they do not.

Writes ``benchmarks/results/serve_load.json`` and ``serve_load.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from result_files import write_result

RESULTS = Path(__file__).resolve().parent / "results"
RAW = """
import json, sys, time
import torch
from autoft.run import Run
run_dir, texts_path, seconds, threads, backend = sys.argv[1:6]
seconds, threads = float(seconds), int(threads)
if threads:
    torch.set_num_threads(threads)
texts = json.loads(open(texts_path).read())
run = Run.load(run_dir)
if backend == "onnx":
    from autoft.serving.backends import onnx_file
    run.onnx_forward(onnx_file(run), threads=threads)
run.predict(texts[:64], batch_size=32, backend=backend)  # warm-up
done, started = 0, time.perf_counter()
while time.perf_counter() - started < seconds:
    batch = [texts[(done + i) % len(texts)] for i in range(32)]
    run.predict(batch, batch_size=32, backend=backend)
    done += 32
print(json.dumps({"inputs_per_second": done / (time.perf_counter() - started)}))
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


TRAIN_ROWS = 1500
"""The served run: the packaged MiniLM fine-tuned with every training default (max_length 64) on the first 1,500
BANKING77 training queries (a model good enough that int8's cost on its test accuracy means something)."""


def make_run(folder: Path, texts: list[str], labels: list[str]) -> Path:
    import autoft
    from autoft.data.example import Example
    from autoft.data.writing import write_examples

    examples = [Example(t, y) for t, y in zip(texts, labels)]
    seen = {e.label for e in examples[:TRAIN_ROWS]}
    validation = [e for e in examples[TRAIN_ROWS : TRAIN_ROWS + 1000] if e.label in seen][:256]
    files = {
        "train": str(write_examples(folder / "train", examples[:TRAIN_ROWS], task="classification")),
        "validation": str(write_examples(folder / "validation", validation, task="classification")),
    }
    run = autoft.train(
        {
            "task": "classification",
            "data": files,
            "output_dir": str(folder / "run"),
            "training": {"max_length": 64, "progress": False},
        }
    )
    return run.path


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs JSON and reads the answer's status: the load's client, light
    enough that the server is what is measured (on two cores shared with the server, httpx's client spent more CPU
    per request than ``autoft serve`` with a tiny model did, and capped every backend near the same rate)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, payload: Any) -> int:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        body = json.dumps(payload).encode()
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
        await reader.readexactly(int(fields.get("content-length", 0)))
        if fields.get("connection", "").lower() == "close":
            self.close()
        return int(head[0].split(" ", 2)[1])

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def load(
    url: str, texts: list[str], clients: int, seconds: float, *, record: list | None = None, side: Any = None
) -> dict:
    """``clients`` clients (a ``Connection`` each) sending one query per request for ``seconds``. ``record``: gets
    (start, end, ok) of every request; ``side``: a coroutine function of an httpx session, run alongside (the
    promotion of the swap test)."""
    from urllib.parse import urlsplit

    import httpx

    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    where = urlsplit(url)

    async def client(k: int) -> None:
        nonlocal errors
        i, connection = k, Connection(where.hostname or "127.0.0.1", where.port or 80)
        while time.perf_counter() < stop:
            started = time.perf_counter()
            try:
                ok = await connection.post(where.path, {"input": texts[i % len(texts)]}) == 200
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError):
                connection.close()
                ok = False
            if ok:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1
            if record is not None:
                record.append((started, time.perf_counter(), ok))
            i += clients
        connection.close()

    async with httpx.AsyncClient(timeout=60) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(clients)), *([side(session)] if side else []))
        elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(elapsed, 2),
        "requests_per_second": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
        "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None,
    }


BACKENDS = {"torch": ("torch", None), "onnx": ("onnx", None), "int8": ("onnx", "int8")}
"""What ``--backends`` names: ``autoft serve``'s ``--backend`` and ``--quantize``."""


def serve_under_load(
    run_dir: Path, queries: list[str], args: argparse.Namespace, backend: str, quantize: str | None
) -> tuple[dict, dict]:
    """Start ``autoft serve`` with this backend, warm it up, load it; returns the load and the batches served."""
    options = ["--backend", backend, *(["--quantize", quantize] if quantize else [])]
    with server_at(run_dir, queries, args, options) as (port, _):
        import httpx

        before = httpx.get(f"http://127.0.0.1:{port}/metadata", timeout=5).json()["served"]
        served = asyncio.run(load(f"http://127.0.0.1:{port}/predict", queries, args.clients, args.seconds))
        after = httpx.get(f"http://127.0.0.1:{port}/metadata", timeout=5).json()["served"]
    return served, {k: after[k] - before[k] for k in after}


def swap_under_load(run_dir: Path, queries: list[str], args: argparse.Namespace, folder: Path) -> dict:
    """A promotion during load: the server follows ``run_dir``'s lineage (``--follow-latest``, looking every 0.5 s);
    ``--swap-at`` seconds into ``--swap-seconds`` of load, a copy of the run is promoted (``latest`` points to it).
    Returns errors, p99 before the promotion (steady) and of the requests in flight from the promotion until a second
    after ``/health`` names the new run (swap), and how long the swap took."""
    import shutil

    from autoft.lineage import point_latest

    promoted = shutil.copytree(run_dir, folder / "promoted")
    events: dict[str, float] = {}
    with server_at(run_dir, queries, args, ["--follow-latest", "--follow-interval", "0.5"]) as (port, _):

        async def promote(session: Any) -> None:
            await asyncio.sleep(args.swap_at)
            events["promoted"] = time.perf_counter()
            point_latest(run_dir, promoted)
            while time.perf_counter() < events["promoted"] + args.swap_seconds:
                if (await session.get(f"http://127.0.0.1:{port}/health")).json()["run"] == str(promoted.resolve()):
                    events["served"] = time.perf_counter()
                    return
                await asyncio.sleep(0.05)

        record: list = []
        served = asyncio.run(
            load(
                f"http://127.0.0.1:{port}/predict",
                queries,
                args.clients,
                args.swap_seconds,
                record=record,
                side=promote,
            )
        )
    if "served" not in events:
        raise SystemExit("the promoted run was not served before the swap test ended")
    steady = [end - start for start, end, ok in record if ok and end < events["promoted"]]
    swap = [
        end - start for start, end, ok in record if ok and end > events["promoted"] and start < events["served"] + 1.0
    ]
    p99 = {
        name: float(np.percentile(np.array(values) * 1000, 99)) for name, values in (("steady", steady), ("swap", swap))
    }
    return {
        "requests": served["requests"],
        "errors": served["errors"],
        "steady_p99_ms": p99["steady"],
        "swap_p99_ms": p99["swap"],
        "ratio": p99["swap"] / p99["steady"],
        "swap_seconds": events["served"] - events["promoted"],
        "swap_requests": len(swap),
    }


@contextlib.contextmanager
def server_at(run_dir: Path, queries: list[str], args: argparse.Namespace, options: list[str]):
    """``autoft serve run_dir`` with ``options`` in its own process, warmed up; yields its port and process."""
    import os

    import httpx

    port = _free_port()
    env_threads = {} if not args.threads else {"OMP_NUM_THREADS": str(args.threads)}
    options = [*options, *(["--threads", str(args.threads)] if args.threads else [])]
    server = subprocess.Popen(
        [sys.executable, "-m", "autoft.cli", "--quiet", "serve", str(run_dir), "--port", str(port), *options],
        env={**os.environ, **env_threads},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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
        yield port, server
    finally:
        if server.poll() is None:
            server.terminate()
        server.wait(timeout=60)


def raw_throughput(run_dir: Path, texts: Path, args: argparse.Namespace, backend: str) -> dict:
    """``Run.predict`` in batches of 32 on the queries, in its own process (``backend``: torch, or onnx on the run's
    ONNX export, written first where missing)."""
    command = [sys.executable, "-c", RAW, str(run_dir), str(texts), str(args.raw_seconds), str(args.threads), backend]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def quantisation_cost(run_dir: Path, test: list, threads: int) -> dict:
    """Test accuracy of the PyTorch model and of its int8 ONNX quantisation, how often their labels agree, and where
    they disagree: PyTorch's margin between its two most probable classes on those rows, and the agreement on the
    rows PyTorch predicts with a probability of at least 0.5."""
    from autoft.run import Run
    from autoft.serving.backends import load_backend

    run = Run.load(run_dir)
    texts = [e.text for e in test]
    exact = run.predict(texts, batch_size=32)
    int8 = [p["label"] for p in load_backend(run, backend="onnx", quantize="int8", threads=threads).predict(texts)]
    labels = [p["label"] for p in exact]
    gold = [e.label for e in test]
    top2 = np.array([sorted(p["probabilities"].values())[-2:] for p in exact])
    margin, top = top2[:, 1] - top2[:, 0], top2[:, 1]
    agree = np.array([a == b for a, b in zip(labels, int8)])
    return {
        "test_rows": len(test),
        "torch_accuracy": float(np.mean([p == g for p, g in zip(labels, gold)])),
        "int8_accuracy": float(np.mean([p == g for p, g in zip(int8, gold)])),
        "agreement": float(agree.mean()),
        "disagreements": int((~agree).sum()),
        "disagreement_median_margin": float(np.median(margin[~agree])) if (~agree).any() else None,
        "median_margin": float(np.median(margin)),
        "confident_rows": int((top >= 0.5).sum()),
        "confident_agreement": float(agree[top >= 0.5].mean()) if (top >= 0.5).any() else None,
    }


def sigterm_under_load(run_dir: Path, queries: list[str], args: argparse.Namespace) -> dict:
    """SIGTERM to a PyTorch server under load, ``--sigterm-at`` seconds in. A request counts as accepted when its
    client sent it before the signal; each must be answered (200). After the signal a client stops at its first
    refused or closed connection (the server no longer accepts). Returns how many were accepted and answered, how
    many were sent after the signal and answered or refused, the server's exit status and how long it took to exit."""
    import signal

    with server_at(run_dir, queries, args, []) as (port, server):
        events: dict[str, float] = {}
        outcomes: list[tuple[float, bool]] = []

        async def client(k: int) -> None:
            i, connection = k, Connection("127.0.0.1", port)
            while True:
                started = time.perf_counter()
                try:
                    ok = await connection.post("/predict", {"input": queries[i % len(queries)]}) == 200
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError):
                    connection.close()
                    ok = False
                outcomes.append((started, ok))
                if "signal" in events and not ok:
                    return
                i += args.clients

        async def signal_and_wait() -> None:
            await asyncio.sleep(args.sigterm_at)
            events["signal"] = time.perf_counter()
            server.send_signal(signal.SIGTERM)
            while server.poll() is None:
                await asyncio.sleep(0.01)
            events["exited"] = time.perf_counter()

        async def run() -> None:
            await asyncio.gather(*(client(k) for k in range(args.clients)), signal_and_wait())

        asyncio.run(run())
    before = [ok for started, ok in outcomes if started < events["signal"]]
    after = [ok for started, ok in outcomes if started >= events["signal"]]
    return {
        "accepted": len(before),
        "answered": sum(before),
        "unanswered": len(before) - sum(before),
        "after_signal_answered": sum(after),
        "after_signal_refused": len(after) - sum(after),
        "exit_status": server.returncode,
        "exit_seconds": events["exited"] - events["signal"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--raw-seconds", type=float, default=30.0)
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=list(BACKENDS),
        default=list(BACKENDS),
        help="servers to load, one after another (int8: --backend onnx --quantize int8)",
    )
    parser.add_argument("--threads", type=int, default=0, help="threads of server and raw pass (0: the default)")
    parser.add_argument("--swap-seconds", type=float, default=30.0, help="the swap test's load (0: no swap test)")
    parser.add_argument("--swap-at", type=float, default=10.0, help="when the swap test promotes a run")
    parser.add_argument("--sigterm-at", type=float, default=10.0, help="SIGTERM under load after this (0: no test)")
    parser.add_argument("--data-root", help="shared data folder (default: ../shared/data beside the checkout)")
    parser.add_argument("--output", type=Path, default=RESULTS / "serve_load.json")
    args = parser.parse_args()
    from public_data import load_public

    data = load_public("banking77", args.data_root)
    texts, labels = [e.text for e in data["train"]], [e.label for e in data["train"]]
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        run_dir = make_run(folder, texts, labels)
        queries = texts[TRAIN_ROWS + 1000 : TRAIN_ROWS + 2000]
        (folder / "texts.json").write_text(json.dumps(queries))
        raw, raw_onnx = (raw_throughput(run_dir, folder / "texts.json", args, backend) for backend in ("torch", "onnx"))
        rows = {}
        for name in args.backends:
            served, meta = serve_under_load(run_dir, queries, args, *BACKENDS[name])
            rows[name] = {
                **served,
                "ratio": served["requests_per_second"] / raw["inputs_per_second"],
                "mean_batch": meta["inputs"] / max(meta["batches"], 1),
            }
        cost = quantisation_cost(run_dir, data["test"], args.threads) if "int8" in args.backends else None
        swap = swap_under_load(run_dir, queries, args, folder) if args.swap_seconds else None
        sigterm = sigterm_under_load(run_dir, queries, args) if args.sigterm_at else None
    command = "python benchmarks/serve_load.py" + "".join(
        f" --{k} {v:g}" if isinstance(v, float) else f" --{k} {v}"
        for k, v, d in (
            ("clients", args.clients, 32),
            ("seconds", args.seconds, 60.0),
            ("threads", args.threads, 0),
            ("swap-seconds", args.swap_seconds, 30.0),
            ("swap-at", args.swap_at, 10.0),
            ("sigterm-at", args.sigterm_at, 10.0),
        )
        if v != d
    )
    if args.backends != list(BACKENDS):
        command += " --backends " + " ".join(args.backends)
    result = {
        "command": command,
        "clients": args.clients,
        "seconds": args.seconds,
        "backends": rows,
        "raw_inputs_per_second": raw["inputs_per_second"],
        "raw_onnx_inputs_per_second": raw_onnx["inputs_per_second"],
        "threads": args.threads or None,
        "int8_cost": cost,
        "swap": swap,
        "sigterm": sigterm,
    }
    lines = [
        (
            "| backend | clients × seconds | requests | requests/s | p50 ms | p99 ms | errors | ratio to raw batched "
            "PyTorch | mean batch |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {args.clients} × {args.seconds:g} | {row['requests']} | "
            f"{row['requests_per_second']:.1f} | {row['p50_ms']:.0f} | {row['p99_ms']:.0f} | {row['errors']} | "
            f"{row['ratio']:.2f} | {row['mean_batch']:.1f} |"
        )
    lines.append(
        f"\nRaw batched PyTorch (`Run.predict`, batches of 32, no HTTP): {raw['inputs_per_second']:.1f} inputs/s; "
        f"the same through the ONNX model: {raw_onnx['inputs_per_second']:.1f} inputs/s "
        f"({raw_onnx['inputs_per_second'] / raw['inputs_per_second']:.2f} ×)."
    )
    if cost:
        lines.append(
            f"int8 on the {cost['test_rows']} BANKING77 test queries: accuracy {cost['int8_accuracy']:.4f} "
            f"(PyTorch {cost['torch_accuracy']:.4f}), labels agreeing with PyTorch on "
            f"{100 * cost['agreement']:.1f}% ({cost['disagreements']} rows, where PyTorch's margin between its two "
            f"most probable classes has a median of {cost['disagreement_median_margin']:.3f} against "
            f"{cost['median_margin']:.3f} on all rows; on the {cost['confident_rows']} rows PyTorch predicts with a "
            f"probability of at least 0.5: {100 * cost['confident_agreement']:.1f}%)."
        )
    if swap:
        lines.append(
            f"A promotion during load (torch, `--follow-latest`, {args.clients} clients × "
            f"{args.swap_seconds:g} s, promoted at {args.swap_at:g} s): {swap['errors']} failed requests of "
            f"{swap['requests'] + swap['errors']}; the new run served {swap['swap_seconds']:.1f} s after the "
            f"promotion; p99 of the {swap['swap_requests']} requests in flight from the promotion until a "
            f"second after the swap {swap['swap_p99_ms']:.0f} ms against {swap['steady_p99_ms']:.0f} ms "
            f"before it ({swap['ratio']:.2f} ×)."
        )
    if sigterm:
        lines.append(
            f"SIGTERM under load (torch, {args.clients} clients, sent at {args.sigterm_at:g} s): "
            f"{sigterm['answered']} of the {sigterm['accepted']} requests sent before it answered "
            f"({sigterm['unanswered']} unanswered); after it {sigterm['after_signal_answered']} more answered while "
            f"draining and {sigterm['after_signal_refused']} refused; the server exited with status "
            f"{sigterm['exit_status']} {sigterm['exit_seconds']:.1f} s after the signal."
        )
    write_result(args.output, result, "\n".join(lines))


if __name__ == "__main__":
    main()
