"""Graceful shutdown with a drain: SIGTERM (or Ctrl-C) stops the server accepting connections, then for a short
while it goes on answering on the connections it has, each response saying ``Connection: close``, before uvicorn's
own shutdown closes what is left and finishes the requests in flight.

Without the drain, uvicorn closes every idle keep-alive connection at once: a request a client wrote on one in the
same instant is never read, and the client sees the connection close with no answer (``benchmarks/serve_load.py``'s
SIGTERM test counts such requests). With it, such a request is read and answered, and every client
learns from its answer that the connection is closing.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import uvicorn

log = logging.getLogger(__name__)
DRAIN_SECONDS = 1.0
"""``--drain-seconds``' default: enough for a request already on its way over a network to arrive."""


class Draining:
    """Whether the server of this process is draining; set once by :class:`DrainingServer`."""

    def __init__(self) -> None:
        self.on = False


class CloseWhileDraining:
    """ASGI middleware: while the server drains, every response carries ``Connection: close`` (uvicorn then closes
    the connection once the response is sent, and the client opens no new request on it)."""

    def __init__(self, app: Any, *, draining: Draining) -> None:
        self.app, self.draining = app, draining

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def closing(message: dict) -> None:
            if message["type"] == "http.response.start" and self.draining.on:
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, closing)


class DrainingServer(uvicorn.Server):
    """uvicorn's server whose shutdown first stops accepting, then drains for ``seconds`` (cut short by a second
    Ctrl-C), then shuts down as uvicorn does."""

    def __init__(self, config: uvicorn.Config, *, draining: Draining, seconds: float = DRAIN_SECONDS) -> None:
        super().__init__(config)
        self.draining, self.seconds = draining, seconds

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        self.draining.on = True
        if self.seconds > 0:
            log.info("draining: no new connections; answering on the open ones for %.1f s", self.seconds)
        loop = asyncio.get_running_loop()
        until = loop.time() + self.seconds
        while loop.time() < until and not self.force_exit:
            await asyncio.sleep(min(0.05, max(until - loop.time(), 0)))
        await super().shutdown(sockets)


def run_app(app: Any, *, host: str, port: int, log_level: str, drain_seconds: float = DRAIN_SECONDS) -> None:
    """Serve ``app`` (built by ``create_app``: it holds ``app.state.draining``) in this process until SIGTERM or
    Ctrl-C, with the drain; exits as ``uvicorn.run`` does when the server cannot start (e.g. the port is taken)."""
    from uvicorn.server import STARTUP_FAILURE

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False)
    server = DrainingServer(config, draining=app.state.draining, seconds=drain_seconds)
    server.run()
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)


__all__ = ["DRAIN_SECONDS", "CloseWhileDraining", "Draining", "DrainingServer", "run_app"]
