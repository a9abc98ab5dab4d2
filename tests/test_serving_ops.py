"""autoft serve in operation: the ONNX backend (and its int8 quantisation), Prometheus metrics, graceful shutdown."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.testclient import TestClient

import autoft
from autoft.errors import ConfigError
from autoft.run import Run
from autoft.serving import ServeSettings, create_app
from autoft.serving.backends import load_backend, worker_threads
from tests.conftest import synthetic_rows, tiny_config, write_csv

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("serve-ops")
    files = {
        split: write_csv(folder / f"{split}.csv", synthetic_rows(n, seed))
        for split, n, seed in (("train", 80, 0), ("validation", 20, 1), ("test", 20, 2))
    }
    return autoft.train(tiny_config(tiny_model_dir, files, folder / "run", epochs=2)).path


@pytest.fixture
def run(trained, tmp_path):
    """A fresh copy of the trained run (the ONNX backend writes its export into the run directory)."""
    return Run.load(shutil.copytree(trained, tmp_path / "run"))


def _metric(text: str, name: str, **labels: str) -> float:
    """The value of sample ``name`` with exactly these ``labels`` in a Prometheus text exposition."""
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match and dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or "")) == labels:
            return float(match.group(2))
    raise AssertionError(f"{name}{labels} not in the exposition:\n{text}")


def test_metrics_count_requests_refusals_batches_and_name_the_served_run(run):
    texts = [text for text, _ in synthetic_rows(4, 9)]
    with TestClient(create_app(ServeSettings(run_dir=str(run.path), token=TOKEN), run)) as client:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert client.post("/predict", json={"input": texts[0]}, headers=auth).status_code == 200
        assert client.post("/predict", json={"inputs": texts[1:]}, headers=auth).status_code == 200
        assert client.post("/predict", json={"input": texts[0]}).status_code == 401
        assert client.post("/predict", json={"inputs": []}, headers=auth).status_code == 422
        assert client.get("/metrics").status_code == 401  # guarded like every route but /health and the docs
        response = client.get("/metrics", headers=auth)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert _metric(text, "autoft_requests_total", route="/predict", status="200") == 2
    assert _metric(text, "autoft_requests_total", route="/predict", status="401") == 1
    assert _metric(text, "autoft_requests_total", route="/predict", status="422") == 1
    assert _metric(text, "autoft_requests_total", route="/metrics", status="401") == 1
    assert _metric(text, "autoft_request_seconds_count", route="/predict") == 4
    assert _metric(text, "autoft_batch_inputs_sum") == 4  # 1 + 3 inputs reached the model, refusals never did
    assert _metric(text, "autoft_model_errors_total") == 0 and _metric(text, "autoft_queue_inputs") == 0
    assert _metric(text, "autoft_served_run_info", run=str(run.path), backend="torch", quantize="none") == 1


def test_while_draining_every_answer_closes_its_connection(run):
    app = create_app(ServeSettings(run_dir=str(run.path)), run)
    with TestClient(app) as client:
        text = synthetic_rows(1, 9)[0][0]
        assert "connection" not in client.post("/predict", json={"input": text}).headers
        app.state.draining.on = True  # what DrainingServer sets on SIGTERM
        answer = client.post("/predict", json={"input": text})
        refused = client.post("/predict", json={"inputs": []})
    assert answer.status_code == 200 and answer.headers["connection"] == "close"
    assert refused.status_code == 422 and refused.headers["connection"] == "close"


def test_each_request_is_one_json_log_line(run, caplog):
    with (
        TestClient(create_app(ServeSettings(run_dir=str(run.path)), run)) as client,
        caplog.at_level("INFO", logger="autoft.serving.requests"),
    ):
        client.post("/predict", json={"input": "a text"})
        client.get("/nowhere")
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "autoft.serving.requests"]
    assert [(line["route"], line["status"]) for line in lines] == [("/predict", 200), ("other", 404)]
    assert lines[1]["path"] == "/nowhere" and lines[0]["method"] == "POST" and lines[0]["ms"] > 0


def test_the_onnx_backend_exports_on_first_start_and_serves_what_torch_predicts(run):
    texts = [text for text, _ in synthetic_rows(12, 5)]
    expected = run.predict(texts)
    assert not (run.path / "onnx").exists()
    with TestClient(create_app(ServeSettings(run_dir=str(run.path), backend="onnx", threads=1), run)) as client:
        served = client.post("/predict", json={"inputs": texts}).json()["predictions"]
        backend = client.get("/metadata").json()["backend"]
    assert (run.path / "onnx" / "model.onnx").is_file()
    assert backend == {
        "backend": "onnx",
        "quantize": None,
        "threads": 1,
        "model_file": str(run.path / "onnx" / "model.onnx"),
    }
    assert [p["label"] for p in served] == [p["label"] for p in expected]
    for onnx, torch_ in zip(served, expected):
        assert np.allclose(
            [onnx["probabilities"][k] for k in sorted(onnx["probabilities"])],
            [torch_["probabilities"][k] for k in sorted(torch_["probabilities"])],
            atol=1e-5,
        )


def test_int8_quantisation_is_written_once_and_serves_close_to_torch(run):
    texts = [text for text, _ in synthetic_rows(40, 6)]
    expected = run.predict(texts)
    backend = load_backend(run, backend="onnx", quantize="int8", threads=1)
    quantized = run.path / "onnx" / "model.int8.onnx"
    assert backend.model_file == str(quantized) and quantized.is_file()
    assert quantized.stat().st_size < 0.5 * (run.path / "onnx" / "model.onnx").stat().st_size
    written = quantized.stat().st_mtime_ns
    served = backend.predict(texts)
    assert load_backend(run, backend="onnx", quantize="int8").model_file == str(quantized)
    assert quantized.stat().st_mtime_ns == written  # not quantised again
    agree = np.mean([a["label"] == b["label"] for a, b in zip(served, expected)])
    gap = max(
        abs(a["probabilities"][k] - b["probabilities"][k]) for a, b in zip(served, expected) for k in a["probabilities"]
    )
    assert agree >= 0.9 and gap < 0.1, (agree, gap)


def test_backend_options_that_cannot_work_are_one_line_errors(run):
    with pytest.raises(ConfigError, match="--quantize int8 quantises the ONNX model: add --backend onnx"):
        load_backend(run, quantize="int8")
    with pytest.raises(ConfigError, match="--backend: one of torch, onnx, not 'tensorrt'"):
        load_backend(run, backend="tensorrt")
    assert worker_threads(1) >= worker_threads(2) >= 1 and worker_threads(10_000) == 1


def test_collect_keeps_served_inputs_as_unlabelled_data_up_to_its_cap(run, tmp_path, caplog):
    from autoft.data.loading import read_texts

    folder = tmp_path / "served"
    settings = ServeSettings(run_dir=str(run.path), collect=str(folder), collect_max_mb=1500 / (1 << 20))
    with TestClient(create_app(settings, run)) as client:
        one = client.post("/predict", json={"input": "first text"}).json()["prediction"]
        assert client.post("/predict", json={"inputs": ["second", "third"]}).status_code == 200
        assert client.post("/predict", json={"inputs": ["x" * 2000]}).status_code == 200  # over the cap: answered,
        collect = client.get("/metadata").json()["collect"]  # not kept
    [daily] = folder.glob("served-*.jsonl")
    rows = [json.loads(line) for line in daily.read_text().splitlines()]
    assert [r["text"] for r in rows] == ["first text", "second", "third"]
    assert rows[0]["served"]["prediction"] == one and rows[0]["served"]["run"] == str(run.path)
    assert [e.text for e in read_texts(daily, task="classification")] == ["first text", "second", "third"]
    assert collect["inputs"] == 3 and collect["full"] is True
    assert any("collecting stops" in r.getMessage() for r in caplog.records)


def _wait_for(condition, seconds: float = 60.0) -> None:
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def test_follow_latest_swaps_in_a_promoted_run_without_failing_a_request(run, tmp_path, caplog):
    from autoft.lineage import point_latest

    root = run.path
    promoted = shutil.copytree(root, tmp_path / "update-1")
    broken = shutil.copytree(root, tmp_path / "update-2")
    (broken / "model" / "model.safetensors").write_bytes(b"not a model")
    settings = ServeSettings(run_dir=str(root), follow_latest=True, follow_interval=0.05)
    with TestClient(create_app(settings, run)) as client, caplog.at_level("INFO", logger="autoft.serving.follow"):
        assert client.get("/health").json()["run"] == str(root)
        statuses: list[int] = []
        stop = False

        def hammer() -> None:
            while not stop:
                statuses.append(client.post("/predict", json={"inputs": ["a text", "another"]}).status_code)

        with ThreadPoolExecutor(4) as pool:
            load = [pool.submit(hammer) for _ in range(4)]
            try:
                _wait_for(lambda: len(statuses) >= 8)
                point_latest(root, promoted)
                _wait_for(lambda: client.get("/health").json()["run"] == str(promoted.resolve()))
                answered = len(statuses)
                _wait_for(lambda: len(statuses) >= answered + 8)  # the new run answers too
                point_latest(root, broken)
                _wait_for(lambda: client.get("/metadata").json()["follow"]["failed_loads"] == 1)
            finally:
                stop = True
            for done in load:
                done.result()
        assert statuses and set(statuses) == {200}
        assert client.get("/health").json()["run"] == str(promoted.resolve())  # the broken run was refused
        follow = client.get("/metadata").json()["follow"]
        assert (follow["swaps"], follow["refused"]) == (1, str(broken.resolve()))
        text = client.get("/metrics").text
    assert _metric(text, "autoft_swaps_total") == 1
    assert _metric(text, "autoft_served_run_info", run=str(promoted.resolve()), backend="torch", quantize="none") == 1
    assert any("failed to load" in r.getMessage() and "still serving" in r.getMessage() for r in caplog.records)


def test_the_loop_serve_collect_update_unlabelled_promote_serves_the_new_run_without_a_restart(run, tmp_path):
    from autoft.continual import update

    root, collected = run.path, tmp_path / "served"
    settings = ServeSettings(run_dir=str(root), follow_latest=True, follow_interval=0.05, collect=str(collected))
    texts = [text for text, _ in synthetic_rows(40, 11)]
    with TestClient(create_app(settings, run)) as client:
        for start in range(0, len(texts), 8):  # users' traffic: kept as unlabelled data
            assert client.post("/predict", json={"inputs": texts[start : start + 8]}).status_code == 200
        assert client.get("/metadata").json()["collect"]["inputs"] == len(texts)
        result = update(
            root,
            unlabeled=collected,
            output=tmp_path / "update-1",
            overrides=[
                "continual.replay_budget=0.5",
                "training.epochs=2",
                "continual.gate=null",
                "training.progress=false",
            ],
        )
        assert result.promoted and result.record["unlabeled"]["texts"] == len(texts)
        _wait_for(lambda: client.get("/health").json()["run"] == str((tmp_path / "update-1").resolve()))
        served = client.post("/predict", json={"inputs": texts[:4]}).json()["predictions"]
    assert served == result.run.predict(texts[:4])  # the update answers now


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_sigterm_answers_every_request_in_flight_and_on_open_connections_then_exits(trained):
    import httpx

    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autoft.cli",
            "-q",
            "serve",
            str(trained),
            "--port",
            str(port),
            "--batch-window-ms",
            "1500",
            "--drain-seconds",
            "3",
        ],
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                httpx.get(f"{url}/health", timeout=5)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.time() < deadline, server.stderr.read().decode()[-2000:]
                time.sleep(0.5)
        kept = httpx.Client(timeout=60)  # a keep-alive connection, idle when the signal comes
        assert kept.get(f"{url}/health").headers.get("connection") != "close"
        with ThreadPoolExecutor(8) as pool:  # each waits in the 1.5 s batch window when SIGTERM arrives
            answers = [
                pool.submit(httpx.post, f"{url}/predict", json={"input": f"text {i}"}, timeout=60) for i in range(8)
            ]
            time.sleep(0.7)
            server.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            late = kept.post(f"{url}/predict", json={"input": "written on the idle connection after the signal"})
            statuses = [answer.result().status_code for answer in answers]
        assert statuses == [200] * 8
        # The drain read the request on the idle connection and answered it, saying the connection closes.
        assert late.status_code == 200 and late.headers["connection"] == "close"
        kept.close()
        assert server.wait(timeout=60) in (0, -signal.SIGTERM)  # (uvicorn re-raises the signal once drained)
        assert b"Traceback" not in server.stderr.read()
        with pytest.raises(httpx.TransportError):  # and it took no new request once it stopped
            httpx.get(f"{url}/health", timeout=2)
    finally:
        if server.poll() is None:
            server.kill()
