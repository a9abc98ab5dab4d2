"""autoft serve: predictions as `autoft predict` gives them, dynamic batching, the token, limits and bad input."""

from __future__ import annotations

import json
import logging
import re
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

import autoft
from autoft.autonomous import run as autoft_run
from autoft.cli import main
from autoft.comparison import better_run
from autoft.data.loading import input_example
from autoft.errors import DataError, RunDirError
from autoft.run import Run
from autoft.serving import ServeSettings, create_app
from autoft.serving.requests import ONE_INPUT, GenerationParameters
from tests.conftest import synthetic_rows, tiny_config, write_csv

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def classification_run(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("serve")
    files = {
        split: write_csv(folder / f"{split}.csv", synthetic_rows(n, seed))
        for split, n, seed in (("train", 60, 0), ("validation", 20, 1), ("test", 20, 2))
    }
    return autoft.train(tiny_config(tiny_model_dir, files, folder / "run", epochs=1))


def _client(run, **settings):
    return TestClient(create_app(ServeSettings(run_dir=str(run.path), **settings), run))


def test_predictions_are_those_of_autoft_predict_one_or_many(classification_run):
    texts = [text for text, _ in synthetic_rows(5, 7)]
    expected = classification_run.predict(texts)
    with _client(classification_run) as client:
        assert client.get("/health").json() == {"status": "ok", "run": str(classification_run.path)}
        one = client.post("/predict", json={"input": texts[0]})
        assert one.status_code == 200 and one.json() == {"prediction": json.loads(json.dumps(expected[0]))}
        many = client.post("/predict", json={"inputs": texts})
        assert many.json()["predictions"] == json.loads(json.dumps(expected))
        assert (
            client.post("/predict", json={"input": {"text": texts[1]}}).json()["prediction"]["label"]
            == expected[1]["label"]
        )
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


def test_the_token_guards_every_route_but_health_and_the_docs(classification_run):
    with _client(classification_run, token=TOKEN) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": "Basic x"}):
            for response in (
                client.get("/metadata", headers=headers),
                client.post("/predict", json={"input": "a"}, headers=headers),
                client.post("/predict/stream", json={"input": "a"}, headers=headers),
            ):
                assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
            # Load balancers probe without a token: /health is open and names the run it serves.
            health = client.get("/health", headers=headers)
            assert health.status_code == 200 and health.json() == {"status": "ok", "run": str(classification_run.path)}
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert client.post("/predict", json={"input": "a"}, headers=good).status_code == 200
        assert client.get("/metadata", headers=good).json()["run_dir"] == str(classification_run.path)


def test_the_docs_load_offline_without_the_token_and_authorize_with_it(classification_run):
    with _client(classification_run, token=TOKEN) as client:
        for page in ("/docs", "/redoc"):
            response = client.get(page)
            assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
            html = response.text
            assert "://" not in html  # no CDN, no other host
            assets = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
            assert any(a.endswith(".js") for a in assets) and all(a.startswith("/") for a in assets), assets
            for asset in assets:
                fetched = client.get(asset)
                assert fetched.status_code == 200 and len(fetched.content) > 1000, asset
        schema = client.get("/openapi.json").json()
        [(name, scheme)] = schema["components"]["securitySchemes"].items()
        assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
        for path, method in (("/predict", "post"), ("/predict/stream", "post"), ("/metadata", "get")):
            assert schema["paths"][path][method]["security"] == [{name: []}], path
        assert "security" not in schema["paths"]["/health"]["get"]
        # The 4xx answers documented are the one-line ones given, not FastAPI's list of errors.
        assert (
            schema["paths"]["/predict"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]
            == {"$ref": "#/components/schemas/Detail"}
            and "HTTPValidationError" not in schema["components"]["schemas"]
        )
        assert client.post("/predict", json={"input": "a"}).status_code == 401
        assert (
            client.post("/predict", json={"input": "a"}, headers={"Authorization": f"Bearer {TOKEN}"}).json()[
                "prediction"
            ]["label"]
            in classification_run.labels
        )
    with _client(classification_run) as client:  # without a token the docs offer no Authorize button
        assert "securitySchemes" not in client.get("/openapi.json").json().get("components", {})


def test_a_body_that_does_not_fit_gets_one_line_naming_the_field(classification_run):
    prompt = "a prompt: a text, or an object with the task's columns (prompt, or chat messages)"
    cases = [
        ("/predict", {"input": 5}, f"input: expected {ONE_INPUT}, got the number 5"),
        ("/predict", {"inputs": "x"}, f'inputs: expected a list of inputs, each {ONE_INPUT}, got the text "x"'),
        (
            "/predict",
            {"inputs": ["ok", 1, ["a", 2]]},
            f"inputs[1]: expected {ONE_INPUT}, got the number 1 (and 1 more)",
        ),  # (inputs[2] holds a number too)
        ("/predict", {"input": "a", "extra": 1}, "extra: not a field of this request (it takes 'input' or 'inputs')"),
        ("/predict", [1], "the body must be a JSON object with 'input' or 'inputs', such as {\"input\": \"a text\"}"),
        ("/predict/stream", {}, f"input: missing, expected {prompt}"),
        ("/predict/stream", {"inputs": ["x"]}, f"input: missing, expected {prompt} (and 1 more)"),
    ]
    with _client(classification_run) as client:
        for path, body, detail in cases:
            response = client.post(path, json=body)
            assert (response.status_code, response.json()) == (422, {"detail": detail})
        broken = client.post("/predict", content=b'{"input": ', headers={"content-type": "application/json"})
        assert broken.status_code == 422 and broken.json()["detail"].startswith("the body is not valid JSON: ")


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
            detail = response.json()["detail"]
            assert isinstance(detail, str) and "\n" not in detail and len(detail) < 300, detail
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
    run = autoft.train(
        {
            "task": "generation",
            "model": str(tiny_gpt2),
            "output_dir": str(tmp_path / "run"),
            "data": {"train": str(path), "validation": str(path)},
            "training": {"epochs": 3, "batch_size": 8, "learning_rate": 1e-2, "progress": False},
            "generation": {"max_new_tokens": 4},
        }
    )
    with _client(run) as client:
        plain = client.post("/predict", json={"input": "say river"}).json()["prediction"]
        with client.stream("POST", "/predict/stream", json={"input": "say river"}) as response:
            assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
            body = "".join(response.iter_text())
        events = [block for block in body.split("\n\n") if block]
        pieces = [json.loads(e[len("data: ") :])["text"] for e in events if e.startswith("data: ")]
        done = [e for e in events if e.startswith("event: done")]
        assert len(done) == 1 and json.loads(done[0].split("data: ", 1)[1]) == plain
        assert "".join(pieces).strip() == plain["output"].strip()
        assert client.post("/predict/stream", json={"inputs": ["x"]}).status_code == 422
        # /generate takes decoding settings per request, bounded by the server's limits; the run's stay for the next.
        short = _done(client.post("/generate", json={"input": "say river", "parameters": {"max_new_tokens": 1}}))
        tokens = run.adapter.tokenizer(short["output"], add_special_tokens=False)["input_ids"]
        assert len(tokens) <= 1 and plain["output"].startswith(short["output"].strip())
        sampled = [
            _done(client.post("/generate", json={"input": "say river", "parameters": {"temperature": 2.0, "seed": 7}}))
            for _ in range(2)
        ]
        assert sampled[0] == sampled[1]  # seeded
        assert GenerationParameters(temperature=2.0).overrides() == {"temperature": 2.0, "do_sample": True}
        assert GenerationParameters(top_p=0.5, do_sample=False).overrides() == {"top_p": 0.5, "do_sample": False}
        assert _done(client.post("/generate", json={"input": "say river"})) == plain
        for parameters, message in (
            (
                {"max_new_tokens": 10_000},
                ("parameters.max_new_tokens: 10000 is over this server's limit of 512 (--max-new-tokens)"),
            ),
            ({"temperature": 5}, ("parameters.temperature: Input should be less than or equal to 2, got the number 5")),
            ({"num_beams": 4}, "parameters.num_beams: not a setting this request takes"),
        ):
            response = client.post("/generate", json={"input": "say river", "parameters": parameters})
            assert response.status_code == 422 and response.json()["detail"] == message


def _done(response):
    """The prediction of a server-sent events answer's ``done`` event."""
    [done] = [e for e in response.text.split("\n\n") if e.startswith("event: done")]
    return json.loads(done.split("data: ", 1)[1])


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
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autoft.cli",
            "serve",
            str(classification_run.path),
            "--port",
            str(port),
            "--token-file",
            str(tmp_path / "token"),
        ],
        stderr=subprocess.PIPE,
    )
    try:
        import httpx

        deadline = time.time() + 120
        while True:
            try:
                response = httpx.post(
                    f"http://127.0.0.1:{port}/predict",
                    json={"input": "a text"},
                    headers={"Authorization": f"Bearer {TOKEN}"},
                    timeout=5,
                )
                break
            except httpx.TransportError:
                assert server.poll() is None and time.time() < deadline, server.stderr.read().decode()[-2000:]
                time.sleep(0.5)
        assert response.status_code == 200 and response.json()["prediction"]["label"] in classification_run.labels
        assert httpx.get(f"http://127.0.0.1:{port}/metadata", timeout=5).status_code == 401
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()["run"] == str(classification_run.path)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_better_run_takes_the_main_validation_metric_and_gives_ties_to_plain():
    better = better_run({"macro_f1": 0.69, "loss": 0.5}, {"macro_f1": 0.71, "loss": 0.9}, metric="macro_f1")
    assert (better["run"], better["why"]) == ("autonomous", "validation macro_f1 0.7100 vs plain 0.6900")
    tie = better_run({"macro_f1": 0.7}, {"macro_f1": 0.7}, metric="macro_f1")
    assert (tie["run"], tie["why"]) == ("plain", "validation macro_f1 0.7000 vs autonomous 0.7000: a tie goes to plain")
    loss = better_run({"loss": 1.2}, {"loss": 1.3}, metric="loss", greater_is_better=False)
    assert (loss["run"], loss["why"]) == ("plain", "validation loss 1.2000 vs autonomous 1.3000, lower is better")
    assert better_run({"loss": 1.3}, {"loss": 1.2}, metric="loss", greater_is_better=False)["run"] == "autonomous"
    assert better_run({}, {"f1": 0.9}, metric="f1")["run"] == "plain"
    assert better_run({"f1": 0.5}, None, metric="f1")["run"] == "plain"


def _comparison_folder(run: Run, folder, better: str):
    """The layout of ``autoft run``'s output, both runs copies of ``run``, ``comparison.json`` naming ``better``."""
    for name in ("plain", "autonomous"):
        shutil.copytree(run.path, folder / name)
    why = "validation macro_f1 0.7100 vs plain 0.6900"
    (folder / "comparison.json").write_text(json.dumps({"better": {"run": better, "why": why}}))
    return folder


def test_an_autoft_run_folder_serves_its_better_run(tmp_path, classification_run, caplog):
    folder = _comparison_folder(classification_run, tmp_path / "out", "autonomous")
    with caplog.at_level(logging.INFO, logger="autoft"):
        loaded = Run.load(folder)
        assert loaded.path == folder / "autonomous"
        with TestClient(create_app(ServeSettings(run_dir=str(folder)))) as client:
            assert client.get("/health").json()["run"] == str(folder / "autonomous")
    assert (
        f"serving autonomous/ (validation macro_f1 0.7100 vs plain 0.6900) of {folder}: classification" in caplog.text
    ), caplog.text
    # predict, evaluate and export take the folder too (the CLI loads through Run.load).
    assert main(["export", str(folder), "--output", str(tmp_path / "exported")]) == 0
    assert (tmp_path / "exported" / "config.json").is_file()
    # A folder that is not whole is a one-line error naming the two runs.
    shutil.rmtree(folder / "autonomous" / "model")
    (folder / "autonomous" / "config.yaml").unlink()
    with pytest.raises(RunDirError, match=r"autonomous/config.yaml missing\): it needs plain/ and autonomous/"):
        Run.load(folder)
    (folder / "comparison.json").unlink()
    with pytest.raises(RunDirError, match=r"no comparison.json\): load plain/ or autonomous/ inside it directly$"):
        Run.load(folder)
    (folder / "comparison.json").write_text("{}")
    with pytest.raises(RunDirError, match="does not say which run is better"):
        Run.load(folder)


def test_autoft_run_records_the_better_run_on_validation(tmp_path, tiny_model_dir, caplog):
    files = {
        split: write_csv(tmp_path / f"{split}.csv", synthetic_rows(n, seed))
        for split, n, seed in (("train", 60, 0), ("validation", 20, 1), ("test", 20, 2))
    }
    config = tiny_config(tiny_model_dir, files, tmp_path / "out", epochs=1)
    config["selection"] = {"policy": "small-loss", "drop_fraction": 0.3}
    comparison = autoft_run(config)
    better = json.loads((tmp_path / "out" / "comparison.json").read_text())["better"]
    assert better == comparison["better"] and better["metric"] == "macro_f1"
    # Both runs scored on the same rows: the agent's stopping half, on which the plain run scored its epochs too.
    agent = json.loads((tmp_path / "out" / "autonomous" / "metrics.json").read_text())["validation"]["macro_f1"]
    reference = json.loads((tmp_path / "out" / "plain" / "stopping_half.json").read_text())
    plain_metrics = json.loads((tmp_path / "out" / "plain" / "metrics.json").read_text())
    plain = reference["epochs"][plain_metrics["best_epoch"] - 1]
    assert (better["plain"], better["autonomous"]) == (plain, agent)
    assert better["run"] == ("autonomous" if agent > plain else "plain")
    assert better["compared_on"] == f"the same {reference['examples']} validation rows (the agent's stopping half)"
    assert better["validation_examples"]["plain"] == 20 and better["validation_examples"]["autonomous"] < 20
    assert reference["examples"] == better["validation_examples"]["autonomous"]
    row = f"| better on validation: macro_f1 (served) | {plain:.4f} | {agent:.4f} | {better['run']}"
    assert row in comparison["table"] and row in (tmp_path / "out" / "comparison.md").read_text()
    with caplog.at_level(logging.INFO, logger="autoft"):
        assert Run.load(tmp_path / "out").path == tmp_path / "out" / better["run"]
    assert f"the better run on validation is {better['run']}/ ({better['why']})" in caplog.text


def test_exporting_to_a_used_folder_names_export_s_own_options(tmp_path, classification_run, capsys):
    target = tmp_path / "exported"
    assert main(["export", str(classification_run.path), "--output", str(target)]) == 0
    capsys.readouterr()
    assert main(["export", str(classification_run.path), "--output", str(target)]) == 2
    error = capsys.readouterr().err
    assert (
        f"{target}: --output exists and is not empty (pass --overwrite to replace it, or give another --output)"
        in error
    ) and "output_dir" not in error
    assert main(["export", str(classification_run.path), "--output", str(target), "--overwrite"]) == 0
