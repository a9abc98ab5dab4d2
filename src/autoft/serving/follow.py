"""``autoft serve ROOT --follow-latest``: serve what the lineage's ``latest`` link points to, and follow it.

The server looks at ``ROOT/latest`` every ``interval`` seconds. When ``autoft update`` promotes a new run, the
server loads it in the background (the model, and with ``--backend onnx`` its ONNX session, exported first where
missing) while the old run keeps answering, then swaps it in on the model's thread between two batches: a request is
answered wholly by the old run or wholly by the new one, and none waits for the load. A run that fails to load is
logged and refused (the old one keeps serving) until ``latest`` moves again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoft.errors import AutoftError
from autoft.lineage import latest, root_of
from autoft.run import Run
from autoft.serving.backends import Backend, load_backend

log = logging.getLogger(__name__)
FOLLOW_INTERVAL = 5.0
"""Seconds between two looks at ``ROOT/latest``."""


@dataclass
class Served:
    """What a server answers with now: the run, its backend, and why it was chosen (``autoft run``'s better run)."""

    run: Run
    backend: Backend
    chosen: str | None = None


class Serving:
    """What a server answers with now (``now``), replaced whole by a swap, so a reader sees the old run or the new."""

    def __init__(self, served: Served) -> None:
        self.now = served


def load_served(
    path: str | Path, *, backend: str, quantize: str | None, threads: int, chosen: str | None = None
) -> Served:
    """Load the run at ``path`` with its backend."""
    run = Run.load(path)
    return Served(run, load_backend(run, backend=backend, quantize=quantize, threads=threads), chosen)


class Follower:
    """Watches ``root``'s ``latest`` link; ``swap(served)`` puts a newly loaded run in place (between batches)."""

    def __init__(
        self,
        root: str | Path,
        current: Path,
        *,
        load: Callable[[Path], Served],
        swap: Callable[[Served], Any],
        interval: float = FOLLOW_INTERVAL,
    ) -> None:
        self.root, self.current, self.load, self.swap, self.interval = Path(root), current, load, swap, interval
        self.refused: Path | None = None  # the last target that failed to load: not retried until latest moves
        self.swaps = self.failures = 0
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def check(self) -> bool:
        """One look at ``latest``: load and swap in a run it newly points to. Returns whether the served run
        changed."""
        try:
            target = latest(self.root)
        except (AutoftError, OSError) as error:
            log.warning("--follow-latest: cannot read %s/latest: %s", self.root, error)
            return False
        if target == self.current.resolve() or target == self.refused:
            return False
        log.info(
            "--follow-latest: %s/latest now points to %s: loading it (the current run keeps serving)", self.root, target
        )
        try:
            served = await asyncio.to_thread(self.load, target)
        except Exception as error:  # noqa: BLE001 - any failure to load: refuse the run, keep serving the old one
            self.refused, self.failures = target, self.failures + 1
            log.error(
                "--follow-latest: %s failed to load (%s: %s); still serving %s",
                target,
                type(error).__name__,
                str(error).splitlines()[0] if str(error) else "",
                self.current,
            )
            return False
        await self.swap(served)
        log.info("--follow-latest: now serving %s (was %s)", target, self.current)
        self.current, self.refused, self.swaps = target, None, self.swaps + 1
        return True

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.check()


def follow_root(run_dir: str | Path) -> tuple[Path, Path]:
    """For ``--follow-latest``: the lineage root of ``run_dir`` and the run its ``latest`` points to now."""
    root = root_of(run_dir)
    return root, latest(root)


__all__ = ["FOLLOW_INTERVAL", "Follower", "Served", "Serving", "follow_root", "load_served"]
