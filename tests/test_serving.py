"""autoft serve: predictions as `autoft predict` gives them, dynamic batching, the token, limits and bad input."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

import autoft
from autoft.cli import main
from autoft.data.loading import input_example
from autoft.errors import DataError
from autoft.serving import ServeSettings, create_app
from tests.conftest import synthetic_rows, tiny_config, write_csv

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def classification_run(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("serve")
    files = {split: write_csv(folder / f"{split}.csv", synthetic_rows(n, seed))
             for split, n, seed in (("train", 60, 0), ("validation", 20, 1), ("test", 20, 2))}
    return autoft.train(tiny_config(tiny_model_dir, files, folder / "run", epochs=1))


def _client(run, **settings):
    return TestClient(create_app(ServeSettings(run_dir=str(run.path), **settings), run))


def test_predictions_are_those_of_autoft_predict_one_or_many(classification_run):
    texts = [text for text, _ in synthetic_rows(5, 7)]
    expected = classification_run.predict(texts)
    with _client(classification_run) as client:
        assert client.get("/health").json() == {"status": "ok"}
        one = client.post("/predict", json={"input": texts[0]})
        assert one.status_code == 200 and one.json() == {"prediction": json.loads(json.dumps(expected[0]))}
        many = client.post("/predict", json={"inputs": texts})
        assert many.json()["predictions"] == json.loads(json.dumps(expected))
        assert client.post("/predict", json={"input": {"text": texts[1]}}).json()["prediction"]["label"] == \
            expected[1]["label"]
        meta = client.get("/metadata").json()
        assert meta["task"] == "classification" and meta["labels"] == classification_run.labels
        assert meta["metrics"]["test"] == classification_run.metrics["test"] and meta["lineage"][0]["run"]
        assert client.get("/openapi.json").json()["paths"]["/predict"]
        assert client.get("/docs").status_code == 200


def test_concurrent_requests_are_batched(classification_run):
    texts = [text for text, _ in synthetic_rows(24, 3)]
    expected = classification_run.predict(texts)
    with _client(classification_run, batch_window_ms=100, max_batch=32) as client:
        with ThreadPoolExecutor(24) as pool:
            answers = list(pool.map(lambda t: client.post("/predict", json={"input": t}), texts))
        assert all(a.status_code == 200 for a in answers)
        for answer, want in zip(answers, expected):
            assert answer.json()["prediction"]["label"] == want["label"]
            assert answer.json()["prediction"]["probabilities"] == pytest.approx(want["probabilities"], abs=1e-5)
        served = client.get("/metadata").json()["served"]
        assert served["inputs"] == 24 and served["batches"] < 24 / 2, served  # grouped, not one call each


def test_the_token_is_required_on_every_request(classification_run):
    with _client(classification_run, token=TOKEN) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": "Basic x"}):
            for response in (client.get("/health", headers=headers),
                             client.post("/predict", json={"input": "a"}, headers=headers)):
                assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert client.post("/predict", json={"input": "a"}, headers=good).status_code == 200


def test_bad_input_gets_the_right_4xx_and_the_server_keeps_serving(classification_run):
    with _client(classification_run, max_items=8, max_body_bytes=1 << 20) as client:
        cases = [
            ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422),
            ({"json": {"inputs": 5}}, 422),
            ({"json": {"inputs": [1, 2]}}, 422),
            ({"json": {"inputs": []}}, 422),
            ({"json": {}}, 422),
            ({"json": {"input": "a", "inputs": ["b"]}}, 422),
            ({"json": {"input": "a", "extra": 1}}, 422),
            ({"json": {"input": {"wrong_column": "a"}}}, 422),
            ({"json": {"input": ""}}, 422),
            ({"json": {"inputs": ["a"] * 9}}, 413),
            ({"json": {"input": "x" * (2 << 20)}}, 413),
        ]
        for request, status in cases:
            response = client.post("/predict", **request)
            assert response.status_code == status, (str(request)[:120], response.text[:200])
            assert "detail" in response.json()
        # A body with no length given, streamed in chunks, is cut at the limit too.
        chunks = (b'{"input": "' + b"y" * 65536 for _ in range(40))
        streamed = client.post("/predict", content=chunks, headers={"content-type": "application/json"})
        assert streamed.status_code == 413
        assert client.post("/predict", json={"input": "still serving"}).status_code == 200
        assert client.get("/health").status_code == 200


def test_inputs_take_every_task_s_json_shapes():
    example = input_example({"question": "Who?", "context": "Ann went home."}, task="question-answering", index=1)
    assert (example.text, example.query, example.origin) == ("Ann went home.", "Who?", "<request>:1")
    with pytest.raises(DataError, match="<request>:2: question answering takes an object"):
        input_example("Who?", task="question-answering", index=2)
    chat = input_example({"messages": [{"role": "user", "content": "hi"}]}, task="generation", index=1)
    assert chat.text == [{"role": "user", "content": "hi"}]
    assert input_example("a prompt", task="generation", index=1).text == "a prompt"
    assert input_example("a source", task="seq2seq", index=1).text == "a source"
    assert input_example(["Alice", "runs"], task="token-classification", index=1).text == ["Alice", "runs"]
    assert input_example("Alice runs", task="token-classification", index=1).text == ["Alice", "runs"]
    with pytest.raises(DataError, match="<request>:3: expected a text or an object"):
        input_example(3, task="classification", index=3)
    with pytest.raises(DataError, match="<request>:1: expected one <e1>"):
        input_example("no markers here", task="relation-extraction", index=1)


def test_generation_streams_server_sent_events_that_add_up_to_the_prediction(tmp_path, tiny_gpt2):
    rows = [{"prompt": f"say {w}", "response": w} for w in ("apple", "river", "stone", "cloud")] * 6
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = autoft.train({"task": "generation", "model": str(tiny_gpt2), "output_dir": str(tmp_path / "run"),
                        "data": {"train": str(path), "validation": str(path)},
                        "training": {"epochs": 3, "batch_size": 8, "learning_rate": 1e-2, "progress": False},
                        "generation": {"max_new_tokens": 4}})
    with _client(run) as client:
        plain = client.post("/predict", json={"input": "say river"}).json()["prediction"]
        with client.stream("POST", "/predict/stream", json={"input": "say river"}) as response:
            assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
            body = "".join(response.iter_text())
        events = [block for block in body.split("\n\n") if block]
        pieces = [json.loads(e[len("data: "):])["text"] for e in events if e.startswith("data: ")]
        done = [e for e in events if e.startswith("event: done")]
        assert len(done) == 1 and json.loads(done[0].split("data: ", 1)[1]) == plain
        assert "".join(pieces).strip() == plain["output"].strip()
        assert client.post("/predict/stream", json={"inputs": ["x"]}).status_code == 422


def test_streaming_is_refused_for_a_classifier(classification_run):
    with _client(classification_run) as client:
        response = client.post("/predict/stream", json={"input": "a"})
        assert response.status_code == 422 and "generation" in response.json()["detail"]


def test_autoft_serve_runs_uvicorn_and_refuses_a_bad_run_dir(tmp_path, classification_run, capsys):
    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert "not an autoft run directory" in capsys.readouterr().err
    assert main(["serve", str(classification_run.path), "--token-file", str(tmp_path / "none")]) == 2
    assert "token file not found" in capsys.readouterr().err
    (tmp_path / "token").write_text(TOKEN + "\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "autoft.cli", "serve", str(classification_run.path), "--port",
                               str(port), "--token-file", str(tmp_path / "token")], stderr=subprocess.PIPE)
    try:
        import httpx

        deadline = time.time() + 120
        while True:
            try:
                response = httpx.post(f"http://127.0.0.1:{port}/predict", json={"input": "a text"},
                                      headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.time() < deadline, server.stderr.read().decode()[-2000:]
                time.sleep(0.5)
        assert response.status_code == 200 and response.json()["prediction"]["label"] in classification_run.labels
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 401
    finally:
        server.terminate()
        server.wait(timeout=30)
