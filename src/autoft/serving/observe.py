"""What a server tells its operators: Prometheus metrics at ``GET /metrics`` and one structured log line per request.

Metrics (prometheus-client, a registry per app, so several apps in one process do not mix):

- ``autoft_requests_total{route, status}``: requests answered (401 / 413 / 422 refusals included);
- ``autoft_request_seconds{route}``: time from the request to the last byte of its response (a histogram);
- ``autoft_batch_inputs``: inputs per model call (a histogram), ``autoft_model_errors_total``: model calls that raised;
- ``autoft_queue_inputs``: inputs waiting for a model call now;
- ``autoft_served_run_info{run, backend, quantize}``: 1 for the run being served; ``autoft_swaps_total``: runs
  swapped in by ``--follow-latest``.

With ``--workers N`` each worker process keeps its own counts, and a scrape reaches one of them. A request's log line
(logger ``autoft.serving.requests``, level INFO) is a JSON object: method, route, path, status, milliseconds, client.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

requests_log = logging.getLogger("autoft.serving.requests")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServeMetrics:
    """The server's Prometheus metrics (see the module docstring); ``exposition()`` is the ``/metrics`` body."""

    def __init__(self, *, run: str, backend: str, quantize: str | None, queue_depth: Callable[[], float]) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "autoft_requests",
            "HTTP requests answered, by route and status code",
            ["route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "autoft_request_seconds",
            "seconds from a request to the end of its response",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_inputs = Histogram(
            "autoft_batch_inputs", "inputs per model call", buckets=BATCH_BUCKETS, registry=registry
        )
        self.model_errors = Counter(
            "autoft_model_errors", "model calls that raised (their requests failed)", registry=registry
        )
        queue = Gauge("autoft_queue_inputs", "inputs waiting for a model call", registry=registry)
        queue.set_function(queue_depth)
        self.served = Gauge(
            "autoft_served_run_info",
            "the run being served (value 1)",
            ["run", "backend", "quantize"],
            registry=registry,
        )
        self.swaps = Counter("autoft_swaps", "runs swapped in by --follow-latest", registry=registry)
        self.serving(run, backend, quantize, swapped=False)

    def serving(self, run: str, backend: str, quantize: str | None, *, swapped: bool = True) -> None:
        """The run served from now on (after a ``--follow-latest`` swap)."""
        self.served.clear()
        self.served.labels(run=run, backend=backend, quantize=quantize or "none").set(1)
        if swapped:
            self.swaps.inc()

    def batch(self, inputs: int, failed: bool) -> None:
        """A model call of ``inputs`` inputs (``DynamicBatcher.on_batch``)."""
        self.batch_inputs.observe(inputs)
        if failed:
            self.model_errors.inc()

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class Observe:
    """ASGI middleware, outermost: counts and times every HTTP request into ``metrics`` (by route: one of
    ``routes``, else ``other``, so stray paths cannot grow the label set) and logs it as one JSON line."""

    def __init__(self, app: Any, *, metrics: ServeMetrics, routes: tuple[str, ...]) -> None:
        self.app, self.metrics, self.routes = app, metrics, frozenset(routes)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        path = scope["path"]
        route = path if path in self.routes else "other"
        status = 500  # an exception before the response started is answered 500 by the server

        async def observed(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            seconds = time.perf_counter() - started
            self.metrics.requests.labels(route=route, status=str(status)).inc()
            self.metrics.latency.labels(route=route).observe(seconds)
            if requests_log.isEnabledFor(logging.INFO):
                client = scope.get("client")
                requests_log.info(
                    json.dumps(
                        {
                            "method": scope.get("method"),
                            "route": route,
                            "path": path,
                            "status": status,
                            "ms": round(seconds * 1000, 2),
                            "client": f"{client[0]}:{client[1]}" if client else None,
                        }
                    )
                )


__all__ = ["Observe", "ServeMetrics"]
