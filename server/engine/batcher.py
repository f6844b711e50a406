"""Dynamic batching that knows nothing of HTTP.

Each submitted entry is a group of clips (the views of one video) with one future. The loop
takes entries from a bounded queue until `max_batch_size` clips are gathered or `max_wait_ms`
has passed, drops entries whose caller has given up, and runs the batch in the single model
worker thread. A failing batch fails only its own futures; the loop keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """The queue holds `max_queue` entries already."""


class QueueTimeout(Exception):
    """The entry did not finish within its timeout; it will not reach the model."""


class BatchError(Exception):
    """The batch this entry ran in failed."""


@dataclass
class Entry:
    """One caller's place in the queue: its clips and the future its result goes to."""

    payload: Any
    size: int  # clips in this entry
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)
    started: float = 0.0  # when its batch began running


@dataclass
class BatchStats:
    entries: int
    clips: int
    seconds: float


class Batcher:
    """`run_batch(payloads) -> results` runs in `executor`; one result per payload, in order."""

    def __init__(
        self,
        run_batch: Callable[[Sequence[Any]], Sequence[Any]],
        executor: Executor,
        max_batch_size: int = 8,
        max_wait_ms: float = 5.0,
        max_queue: int = 64,
        on_batch: Callable[[BatchStats], None] | None = None,
    ) -> None:
        self._run_batch = run_batch
        self._executor = executor
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self._on_batch = on_batch or (lambda stats: None)
        self._queue: asyncio.Queue[Entry] = asyncio.Queue(maxsize=max_queue)
        self._carry: Entry | None = None  # an entry that did not fit the last batch
        self._task: asyncio.Task | None = None

    @property
    def depth(self) -> int:
        return self._queue.qsize() + (self._carry is not None)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        pending = [self._carry] if self._carry else []
        while not self._queue.empty():
            pending.append(self._queue.get_nowait())
        for entry in pending:
            if not entry.future.done():
                entry.future.set_exception(BatchError("the server is shutting down"))
        self._carry = None

    async def submit(
        self, payload: Any, size: int, timeout: float | None = None
    ) -> tuple[Any, Entry]:
        """Queue `size` clips and wait for their result; raises QueueFull, BatchError, or
        QueueTimeout past `timeout` (None: the caller's own deadline bounds the wait)."""
        entry = Entry(payload, size, asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(entry)
        except asyncio.QueueFull:
            raise QueueFull(f"{self.max_queue} videos are already waiting for the model") from None
        try:
            # wait_for cancels the future on timeout or when the caller is cancelled, and
            # the loop skips cancelled entries: they never reach the model.
            result = await asyncio.wait_for(entry.future, timeout)
        except TimeoutError:
            raise QueueTimeout(f"no result within {timeout:.1f} s") from None
        return result, entry

    async def _next_batch(self) -> list[Entry]:
        first = self._carry or await self._queue.get()
        self._carry = None
        batch, clips = [first], first.size
        deadline = time.perf_counter() + self.max_wait
        while clips < self.max_batch_size:
            remaining = deadline - time.perf_counter()
            try:
                entry = (
                    self._queue.get_nowait()
                    if remaining <= 0
                    else await asyncio.wait_for(self._queue.get(), remaining)
                )
            except (TimeoutError, asyncio.QueueEmpty):
                break
            if clips + entry.size > self.max_batch_size:
                self._carry = entry
                break
            batch.append(entry)
            clips += entry.size
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            live = [entry for entry in batch if not entry.future.done()]
            if not live:
                continue
            start = time.perf_counter()
            for entry in live:
                entry.started = start
            try:
                results = await loop.run_in_executor(
                    self._executor, self._run_batch, [entry.payload for entry in live]
                )
                if len(results) != len(live):
                    raise RuntimeError(f"{len(results)} results for {len(live)} entries")
            except asyncio.CancelledError:
                for entry in live:
                    if not entry.future.done():
                        entry.future.set_exception(BatchError("the server is shutting down"))
                raise
            except Exception as err:  # noqa: BLE001 - a failing batch must not stop the loop
                log.exception("batch of %d entries failed", len(live))
                for entry in live:
                    if not entry.future.done():
                        entry.future.set_exception(BatchError(f"{type(err).__name__}: {err}"))
                continue
            for entry, result in zip(live, results):
                if not entry.future.done():
                    entry.future.set_result(result)
            stats = BatchStats(len(live), sum(e.size for e in live), time.perf_counter() - start)
            try:
                self._on_batch(stats)
            except Exception:  # noqa: BLE001 - a failing observer must not stop the loop
                log.exception("the batch callback failed")
