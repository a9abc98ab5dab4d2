"""Dynamic batching: concurrent requests wait a few milliseconds and go through the model together.

One worker owns the model (a single thread, so a forward pass never races another); requests queue up, and each
batch takes every request that arrives within ``window`` seconds of the first, up to ``max_batch`` inputs. A model
call's error goes back to the requests of that batch alone; the worker keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class DynamicBatcher:
    """``await batcher.submit(items)`` returns ``predict(items)``'s outputs for those items, computed in a batch
    with whatever other requests arrived meanwhile. ``run_exclusive(fn)`` runs ``fn`` on the model's thread."""

    def __init__(
        self,
        predict: Callable[[list[Any]], list[Any]],
        *,
        max_batch: int = 32,
        window: float = 0.005,
        on_batch: Callable[[int, bool], None] | None = None,
    ):
        if max_batch < 1 or window < 0:
            raise ValueError(f"max_batch must be >= 1 and window >= 0, got {max_batch}, {window}")
        self.predict = predict
        self.max_batch = max_batch
        self.window = window
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="autoft-model")
        self.batches = 0  # model calls made, for /metadata and the load test
        self.items = 0
        self.waiting = 0  # inputs submitted and not yet in a model call (/metrics' queue depth)
        self.on_batch = on_batch  # called with (inputs, failed) after each model call
        self._queue: asyncio.Queue[tuple[list[Any], asyncio.Future]] | None = None
        self._worker: asyncio.Task | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._serve())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        self.executor.shutdown(wait=True, cancel_futures=True)

    async def submit(self, items: list[Any]) -> list[Any]:
        if self._queue is None:
            raise RuntimeError("the batcher is not started")
        future = asyncio.get_running_loop().create_future()
        self.waiting += len(items)
        await self._queue.put((items, future))
        return await future

    async def run_exclusive(self, function: Callable[[], Any]) -> Any:
        """Run ``function`` on the model's thread, between batches."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, function)

    async def _collect(self) -> list[tuple[list[Any], asyncio.Future]]:
        assert self._queue is not None
        waiting = [await self._queue.get()]
        count = len(waiting[0][0])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.window
        while count < self.max_batch:
            try:
                request = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    request = await asyncio.wait_for(self._queue.get(), left)
                except TimeoutError:
                    break
            waiting.append(request)
            count += len(request[0])
        return waiting

    async def _serve(self) -> None:
        while True:
            waiting = await self._collect()
            self.waiting -= sum(len(items) for items, _ in waiting)
            waiting = [(items, future) for items, future in waiting if not future.cancelled()]  # client gone
            if not waiting:
                continue
            flat = [item for items, _ in waiting for item in items]
            try:
                outputs = await self.run_exclusive(functools.partial(self.predict, flat))
            except Exception as error:  # noqa: BLE001 - that batch's requests fail; the server goes on
                if self.on_batch is not None:
                    self.on_batch(len(flat), True)
                for _, future in waiting:
                    if not future.done():
                        future.set_exception(error)
                continue
            self.batches += 1
            self.items += len(flat)
            if self.on_batch is not None:
                self.on_batch(len(flat), False)
            start = 0
            for items, future in waiting:
                if not future.done():
                    future.set_result(outputs[start : start + len(items)])
                start += len(items)


__all__ = ["DynamicBatcher"]
