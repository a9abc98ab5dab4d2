"""``autoft serve``: a run directory behind HTTP (FastAPI), with dynamic batching, a bearer token and limits.

- ``POST /predict``: ``{"input": X}`` → ``{"prediction": P}``, or ``{"inputs": [X, ...]}`` → ``{"predictions":
  [P, ...]}``. ``X`` is what one line of ``autoft predict``'s JSON-lines input holds: a text (a prompt for
  generative tasks, a text or a word list for NER) or an object with the task's columns (question answering:
  ``question`` and ``context``; generation: ``prompt`` or chat ``messages``). ``P`` is the line ``autoft predict``
  writes for it.
- ``POST /generate`` (generation and seq2seq; ``/predict/stream`` is the same): ``{"input": X, "parameters": {...}}``
  → server-sent events, one ``data: {"text": ...}`` per decoded piece, then ``event: done`` with the whole
  prediction. ``parameters`` (optional) overrides the run's decoding settings for this request
  (:class:`~autoft.serving.requests.GenerationParameters`), ``max_new_tokens`` at most the server's limit.
- ``GET /health`` (``{"status": "ok", "run": PATH}``); ``GET /metadata`` (task, labels, base model, the run's
  metrics and lineage, the backend, limits, batches served); ``GET /metrics`` (Prometheus,
  :mod:`autoft.serving.observe`); OpenAPI docs at ``/docs`` (Swagger UI) and ``/redoc``, with their
  scripts and styles served from the installed ``fastapi-offline`` package, so they work offline.

Given the output folder of ``autoft run``, the server serves its better run on validation
(:mod:`autoft.comparison`), with PyTorch or onnxruntime (:mod:`autoft.serving.backends`). With a token, every request but ``/health`` and the docs needs ``Authorization: Bearer
<token>`` (401 otherwise, compared in constant time); the docs' Authorize button takes it. A body over
``max_body_bytes`` or more than ``max_items`` inputs is 413; a malformed body or input is 422 with a one-line
reason. Bad input never reaches the model, so it is never a 500.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPBearer
from fastapi_offline import FastAPIOffline

from autoft.comparison import resolve_run_dir
from autoft.config import GENERATIVE_TASKS
from autoft.data.loading import input_example
from autoft.errors import AutoftError, DataError
from autoft.run import Run
from autoft.serving import draining
from autoft.serving.backends import load_backend, onnx_file, worker_threads
from autoft.serving.batching import DynamicBatcher
from autoft.serving.collect import MAX_MB as COLLECT_MAX_MB
from autoft.serving.collect import Collector
from autoft.serving.draining import DRAIN_SECONDS, CloseWhileDraining, Draining
from autoft.serving.follow import FOLLOW_INTERVAL, Follower, Served, Serving, follow_root, load_served
from autoft.serving.observe import Observe, ServeMetrics
from autoft.serving.requests import Detail, PredictRequest, StreamRequest, one_line

if TYPE_CHECKING:
    from pydantic import BaseModel

    from autoft.tasks.generation import TextGenerationAdapter

log = logging.getLogger(__name__)
ENVIRONMENT = "AUTOFT_SERVE"
"""Where ``autoft serve --workers N`` hands each worker process its settings (JSON)."""
DOCS, REDOC, OPENAPI, ASSETS = "/docs", "/redoc", "/openapi.json", "/docs/assets"
ROUTES = ("/predict", "/generate", "/predict/stream", "/health", "/metadata", "/metrics", DOCS, REDOC, OPENAPI)
MAX_NEW_TOKENS = 512
"""``--max-new-tokens``' default: the most a ``/generate`` request may ask for."""
OPEN = ("/health", DOCS, f"{DOCS}/oauth2-redirect", REDOC, OPENAPI)
"""The paths a token does not guard: load balancers probe ``/health`` without one, and the docs page (with its
assets under ``ASSETS``) loads before its Authorize button can take the token."""


@dataclass
class ServeSettings:
    run_dir: str
    token: str | None = None
    max_body_bytes: int = 1 << 20
    max_items: int = 64
    max_batch: int = 32
    batch_window_ms: float = 5.0
    backend: str = "torch"
    quantize: str | None = None
    threads: int = 0  # intra-op threads per worker; 0: the worker's share of the cores
    follow_latest: bool = False  # serve the lineage's latest run, and each run promoted after it
    follow_interval: float = FOLLOW_INTERVAL
    collect: str | None = None  # a folder: served inputs and predictions, as unlabelled data (serving/collect.py)
    collect_max_mb: float = COLLECT_MAX_MB
    max_new_tokens: int = MAX_NEW_TOKENS  # what a /generate request may ask for at most
    drain_seconds: float = DRAIN_SECONDS  # on SIGTERM: answering on open connections before closing them

    def public(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in asdict(self).items()
            if k in ("max_body_bytes", "max_items", "max_batch", "batch_window_ms", "max_new_tokens")
        }


def _error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


class Guard:
    """ASGI middleware before any route: the bearer token (401; not on ``OPEN`` paths and the docs' assets) and the
    body size (413, counted as it streams in, whatever Content-Length says)."""

    def __init__(self, app: Any, *, token: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.token = None if token is None else token.encode()
        self.max_body_bytes = max_body_bytes

    @staticmethod
    def is_open(scope: dict) -> bool:
        path, root = scope["path"], scope.get("root_path", "")
        path = path[len(root) :] if root and path.startswith(root) else path
        return path in OPEN or path.startswith(f"{ASSETS}/")

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if self.token is not None and not self.is_open(scope):
            given = headers.get(b"authorization", b"")
            scheme, _, credential = given.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(credential.strip(), self.token):
                response = _error(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
                return await response(scope, receive, send)
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            return await self._too_large(scope, receive, send)
        received = 0

        async def limited() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:  # FastAPI passes an HTTPException from reading the body on
                    raise HTTPException(413, f"request body over {self.max_body_bytes} bytes")
            return message

        await self.app(scope, limited, send)

    async def _too_large(self, scope: dict, receive: Any, send: Any) -> None:
        await _error(413, f"request body over {self.max_body_bytes} bytes")(scope, receive, send)


async def _invalid_body(request: Request, error: RequestValidationError) -> JSONResponse:
    """A body that does not fit the route's request model: 422 with one line, not pydantic's list."""
    models: dict[str, type[BaseModel]] = {
        "/predict": PredictRequest,
        "/generate": StreamRequest,
        "/predict/stream": StreamRequest,
    }
    model = models.get(request.url.path)
    if model is None or not error.errors():  # (every route with a body is above)
        return _error(422, str(error).splitlines()[0])
    return _error(422, one_line(error.errors(), model))


def _stream(run: Run, batcher: DynamicBatcher, example: Any, overrides: dict[str, Any]) -> StreamingResponse:
    """Server-sent events of ``example``'s generation with the run's decoding settings and the request's
    ``overrides``: a ``data`` event per decoded piece, then ``done`` with the whole prediction (or ``error``). The
    generation runs on the model's thread, between batches (so the overrides touch no other request)."""
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(run.adapter.tokenizer, skip_prompt=True, skip_special_tokens=True)

    def generate() -> list[dict[str, Any]]:
        adapter = cast("TextGenerationAdapter", run.adapter)  # a generative run's
        settings = adapter.generation
        adapter.streamer, adapter.generation = streamer, settings.model_copy(update=overrides)
        try:
            return run.predict([example])
        finally:
            adapter.streamer, adapter.generation = None, settings
            streamer.end()  # (a second end after generation's own is harmless; after an error it unblocks)

    done = asyncio.ensure_future(batcher.run_exclusive(generate))

    async def events():
        pieces = iter(streamer)
        while (piece := await asyncio.to_thread(next, pieces, None)) is not None:
            if piece:
                yield f"data: {json.dumps({'text': piece}, ensure_ascii=False)}\n\n"
        try:
            [prediction] = await done
        except Exception as error:  # noqa: BLE001 - the model failed mid-stream: say so in the stream
            yield f"event: error\ndata: {json.dumps({'detail': str(error)})}\n\n"
            return
        yield f"event: done\ndata: {json.dumps(prediction, ensure_ascii=False)}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def _start_path(settings: ServeSettings) -> tuple[Path, str | None]:
    """The run directory served first, and why it was chosen (``resolve_run_dir``)."""
    path, chosen = resolve_run_dir(settings.run_dir)
    return (follow_root(path)[1], None) if settings.follow_latest else (path, chosen)


def _loaded(run: Run | None, path: Path) -> Run:
    """``run`` when it is the one at ``path``, else that one loaded."""
    return run if run is not None and run.path.resolve() == Path(path).resolve() else Run.load(path)


def _served_at_start(settings: ServeSettings, run: Run | None) -> Served:
    """The run served first: ``run`` when given, else ``settings.run_dir`` (for the output folder of ``autoft run``,
    its better run on validation; with ``follow_latest``, what its lineage's ``latest`` points to)."""
    path, chosen = _start_path(settings)
    run = _loaded(run, path)
    return Served(
        run, load_backend(run, backend=settings.backend, quantize=settings.quantize, threads=settings.threads), chosen
    )


def _follower(settings: ServeSettings, serving: Serving, batcher: DynamicBatcher, metrics: ServeMetrics) -> Follower:
    """``--follow-latest``: a follower of the served run's lineage that swaps a promoted run in between batches."""

    async def swap(new: Served) -> None:
        def replace_served() -> None:  # on the model's thread: between two batches
            serving.now = new

        await batcher.run_exclusive(replace_served)
        metrics.serving(str(new.run.path), new.backend.name, new.backend.quantize)

    return Follower(
        follow_root(serving.now.run.path)[0],
        serving.now.run.path,
        swap=swap,
        interval=settings.follow_interval,
        load=lambda path: load_served(
            path, backend=settings.backend, quantize=settings.quantize, threads=settings.threads
        ),
    )


def _metadata(
    served: Served,
    settings: ServeSettings,
    batcher: DynamicBatcher,
    follower: Follower | None,
    collector: Collector | None,
) -> dict[str, Any]:
    """``GET /metadata``: the run served (its lineage too), the backend, limits, and what was served."""
    from autoft.lineage import history

    run = served.run
    try:
        lineage = history(run.path)
    except (AutoftError, OSError, ValueError):  # a run moved away from its lineage
        lineage = []
    return {
        "task": run.task,
        "labels": run.labels,
        "base_model": run.config.model,
        "run_dir": str(run.path),
        "chosen": served.chosen,
        "peft": run.is_peft,
        "metrics": run.metrics,
        "lineage": lineage,
        "backend": served.backend.describe(),
        "limits": settings.public(),
        "served": {"batches": batcher.batches, "inputs": batcher.items},
        **(
            {
                "collect": {
                    "folder": str(collector.folder),
                    "inputs": collector.collected,
                    "megabytes": round(collector.size / (1 << 20), 3),
                    "full": collector.full,
                }
            }
            if collector
            else {}
        ),
        **(
            {
                "follow": {
                    "root": str(follower.root),
                    "swaps": follower.swaps,
                    "failed_loads": follower.failures,
                    "refused": str(follower.refused) if follower.refused else None,
                }
            }
            if follower
            else {}
        ),
    }


def _examples(values: list[Any], max_items: int, run: Run) -> list[Any]:
    """The inputs of a request as the run's examples (a lineage keeps its task and columns); 413 / 422 when there
    are none, too many, or one is malformed."""
    if not values:
        raise HTTPException(422, "inputs is empty: give at least one input")
    if len(values) > max_items:
        raise HTTPException(413, f"{len(values)} inputs: at most {max_items} per request")
    try:
        return [
            input_example(
                v, task=run.task, index=i, text_column=run.config.data.text_column, columns=run.config.data.columns
            )
            for i, v in enumerate(values, start=1)
        ]
    except DataError as error:
        raise HTTPException(422, str(error)) from None


def _app(settings: ServeSettings, first: Served, batcher: DynamicBatcher, follower: Follower | None) -> FastAPI:
    """The FastAPI app with its lifespan (the batcher and the follower start and stop with it) and docs served
    offline; ``first``: what it serves at start."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        if follower is not None:
            await follower.start()
        log.info(
            "serving %s: %s, batches of up to %d inputs, %s%s",
            f"{first.chosen} of {settings.run_dir}" if first.chosen else first.run.path,
            first.run.task,
            settings.max_batch,
            ", ".join(f"{k} {v}" for k, v in first.backend.describe().items() if v is not None),
            f"; following {follower.root}/latest" if follower else "",
        )
        yield
        if follower is not None:
            await follower.stop()
        await batcher.stop()

    app = FastAPIOffline(
        title="autoft",
        summary=f"{first.run.task} model from {first.run.path}",
        lifespan=lifespan,
        docs_url=DOCS,
        redoc_url=REDOC,
        openapi_url=OPENAPI,
        static_url=ASSETS,
        swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
    )  # no calls out
    return app


def create_app(settings: ServeSettings, run: Run | None = None) -> FastAPI:
    """The FastAPI app serving ``settings.run_dir`` (or an already loaded ``run``): for the output folder of
    ``autoft run``, its better run on validation; with ``settings.follow_latest``, its lineage's latest run, then
    each run promoted after it (:mod:`autoft.serving.follow`)."""
    serving = Serving(_served_at_start(settings, run))
    batcher = DynamicBatcher(
        lambda examples: serving.now.backend.predict(examples),
        max_batch=settings.max_batch,
        window=settings.batch_window_ms / 1000,
    )
    first = serving.now
    metrics = ServeMetrics(
        run=str(first.run.path),
        backend=first.backend.name,
        quantize=first.backend.quantize,
        queue_depth=lambda: batcher.waiting,
    )
    batcher.on_batch = metrics.batch
    collector = (
        None
        if settings.collect is None
        else Collector(
            settings.collect,
            text_column=serving.now.run.config.data.text_column,
            max_bytes=int(settings.collect_max_mb * (1 << 20)),
        )
    )
    follower = _follower(settings, serving, batcher, metrics) if settings.follow_latest else None

    app = _app(settings, first, batcher, follower)
    # (starlette types a handler's error as Exception; this one is registered for RequestValidationError only)
    app.add_exception_handler(RequestValidationError, _invalid_body)  # type: ignore[arg-type]
    # With a token, the schema says so (HTTPBearer): the docs' Authorize button then sends it. Guard checks it.
    bearer = HTTPBearer(auto_error=False, description="the token in the server's --token-file")
    secured = [Depends(bearer)] if settings.token else []
    refused: dict[int | str, dict[str, Any]] = (
        {401: {"model": Detail, "description": "missing or wrong bearer token"}} if settings.token else {}
    )
    bad: dict[int | str, dict[str, Any]] = {
        **refused,
        413: {"model": Detail, "description": "body or list too large"},
        422: {"model": Detail, "description": "malformed body or input, in one line"},
    }

    def examples(values: list[Any]) -> list[Any]:
        return _examples(values, settings.max_items, serving.now.run)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "run": str(serving.now.run.path)}

    @app.get("/metadata", dependencies=secured, responses=refused)
    async def metadata() -> dict[str, Any]:
        return _metadata(serving.now, settings, batcher, follower, collector)

    @app.get("/metrics", dependencies=secured, responses=refused, response_class=Response)
    async def prometheus() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    @app.post("/predict", dependencies=secured, responses=bad)
    async def predict(request: PredictRequest) -> Response:
        if (request.input is None) == (request.inputs is None):
            raise HTTPException(422, "give exactly one of 'input' (one input) or 'inputs' (a list)")
        values = [request.input] if request.inputs is None else request.inputs
        predictions = await batcher.submit(examples(values))
        if collector is not None and not collector.full:
            await asyncio.to_thread(collector.add, values, predictions, str(serving.now.run.path))
        body = {"prediction": predictions[0]} if request.inputs is None else {"predictions": predictions}
        return Response(json.dumps(body, ensure_ascii=False), media_type="application/json")  # (no re-validation)

    @app.post("/generate", dependencies=secured, responses=bad)
    @app.post("/predict/stream", dependencies=secured, responses=bad)
    async def stream(request: StreamRequest) -> StreamingResponse:
        if serving.now.run.task not in GENERATIVE_TASKS:
            raise HTTPException(422, f"streaming is for generation and seq2seq runs, not {serving.now.run.task}")
        overrides = request.parameters.overrides() if request.parameters else {}
        if overrides.get("max_new_tokens", 0) > settings.max_new_tokens:
            raise HTTPException(
                422,
                f"parameters.max_new_tokens: {overrides['max_new_tokens']} is over this "
                f"server's limit of {settings.max_new_tokens} (--max-new-tokens)",
            )
        [example] = examples([request.input])
        return _stream(serving.now.run, batcher, example, overrides)

    app.add_middleware(Guard, token=settings.token, max_body_bytes=settings.max_body_bytes)
    app.state.draining = Draining()  # set by the server on SIGTERM (serving/draining.py)
    app.add_middleware(CloseWhileDraining, draining=app.state.draining)
    app.add_middleware(Observe, metrics=metrics, routes=ROUTES)  # outermost: refusals are counted too
    return app


def app_from_environment() -> Any:
    """The app of ``$AUTOFT_SERVE`` (a JSON ``ServeSettings``): each ``--workers`` process builds its own."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")  # (a fresh process)
    return create_app(ServeSettings(**json.loads(os.environ[ENVIRONMENT])))


def read_token(path: str | Path) -> str:
    """The bearer token in ``path`` (surrounding whitespace ignored); ``DataError`` when missing or empty."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: token file not found")
    token = path.read_text(encoding="utf-8").strip()
    if not token or any(c.isspace() for c in token):
        raise DataError(
            f"{path}: the token file must hold one token (no spaces), got {'nothing' if not token else 'several words'}"
        )
    return token


def serve(
    settings: ServeSettings,
    *,
    run: Run | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    log_level: str = "info",
) -> None:
    """Run the server until interrupted (uvicorn; SIGTERM or Ctrl-C stop it gracefully: no new connections, the open
    ones answered for ``settings.drain_seconds`` (serving/draining.py), the requests in flight finished, then the
    model released). One worker serves ``run`` when given (else loads it); with several, each worker process loads
    its own, with its share of the cores (``settings.threads``), and uvicorn's supervisor shuts them down (no drain)."""
    import uvicorn

    if settings.backend == "onnx":  # written once here, before any worker could race to write it
        run = _loaded(run, _start_path(settings)[0])
        onnx_file(run, settings.quantize)
    if workers > 1:
        settings = replace(settings, threads=settings.threads or worker_threads(workers))
        os.environ[ENVIRONMENT] = json.dumps(asdict(settings))
        uvicorn.run(
            "autoft.serving.app:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            access_log=False,
        )
    else:
        draining.run_app(
            create_app(settings, run),
            host=host,
            port=port,
            log_level=log_level,
            drain_seconds=settings.drain_seconds,
        )


__all__ = ["ServeSettings", "create_app", "read_token", "serve"]
