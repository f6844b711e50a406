"""The batcher alone, with an injected failing model."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from server.engine.batcher import Batcher, BatchError, QueueFull, QueueTimeout


class Model:
    """Doubles its inputs; fails any batch holding a negative number; records what it saw."""

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.delay = delay
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, payloads):
        self.gate.wait(10)
        self.batches.append(list(payloads))
        time.sleep(self.delay)
        if any(p < 0 for p in payloads):
            raise RuntimeError("bad clip")
        return [2 * p for p in payloads]


def run(coro):
    return asyncio.run(coro)


def test_concurrent_jobs_share_batches():
    model = Model(delay=0.01)

    async def main():
        b = Batcher(model, ThreadPoolExecutor(1), max_batch_size=4, max_wait_ms=20)
        b.start()
        results = await asyncio.gather(*[b.submit(i, 1, 5) for i in range(10)])
        await b.stop()
        return [r for r, _ in results]

    assert run(main()) == [2 * i for i in range(10)]
    assert max(len(batch) for batch in model.batches) > 1
    assert all(len(batch) <= 4 for batch in model.batches)


def test_a_failing_batch_fails_only_its_own_jobs():
    model = Model()

    async def main():
        b = Batcher(model, ThreadPoolExecutor(1), max_batch_size=2, max_wait_ms=50)
        b.start()
        first = await asyncio.gather(b.submit(-1, 1, 5), b.submit(3, 1, 5), return_exceptions=True)
        later = await asyncio.gather(b.submit(4, 1, 5), b.submit(5, 1, 5))
        running = b.running
        await b.stop()
        return first, later, running

    first, later, running = run(main())
    assert all(isinstance(r, BatchError) for r in first)
    assert [r for r, _ in later] == [8, 10]
    assert running


def test_timed_out_jobs_never_reach_the_model():
    model = Model()
    model.gate.clear()  # hold the model so that the queue backs up

    async def main():
        b = Batcher(model, ThreadPoolExecutor(1), max_batch_size=1, max_wait_ms=0)
        b.start()
        blocker = asyncio.ensure_future(b.submit(1, 1, 5))
        await asyncio.sleep(0.05)  # job 1 is in the model now
        with pytest.raises(QueueTimeout):
            await b.submit(99, 1, 0.05)
        model.gate.set()
        await blocker
        await b.submit(2, 1, 5)
        await b.stop()

    run(main())
    assert [p for batch in model.batches for p in batch] == [1, 2]


def test_cancelled_callers_never_reach_the_model():
    model = Model()
    model.gate.clear()

    async def main():
        b = Batcher(model, ThreadPoolExecutor(1), max_batch_size=1, max_wait_ms=0)
        b.start()
        blocker = asyncio.ensure_future(b.submit(1, 1, 5))
        await asyncio.sleep(0.05)
        doomed = asyncio.ensure_future(b.submit(77, 1, 5))
        await asyncio.sleep(0.01)
        doomed.cancel()
        model.gate.set()
        await blocker
        await b.submit(3, 1, 5)
        await b.stop()

    run(main())
    assert 77 not in [p for batch in model.batches for p in batch]


def test_overload_is_refused_immediately():
    model = Model()
    model.gate.clear()

    async def main():
        b = Batcher(model, ThreadPoolExecutor(1), max_batch_size=1, max_wait_ms=0, max_queue=2)
        b.start()
        running = asyncio.ensure_future(b.submit(0, 1, 5))
        await asyncio.sleep(0.05)
        queued = [asyncio.ensure_future(b.submit(i, 1, 5)) for i in (1, 2)]
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull):
            await b.submit(3, 1, 5)
        model.gate.set()
        await asyncio.gather(running, *queued)
        await b.stop()

    run(main())


def test_jobs_of_several_clips_respect_the_batch_size():
    model = Model()

    async def main():
        b = Batcher(
            lambda ps: model([sum(p) for p in ps]),
            ThreadPoolExecutor(1),
            max_batch_size=4,
            max_wait_ms=30,
        )
        b.start()
        await asyncio.gather(*[b.submit([1, 1, 1], 3, 5) for _ in range(4)])
        await b.stop()

    run(main())
    assert all(len(batch) == 1 for batch in model.batches)  # 3 + 3 > 4: never together


def test_a_failing_batch_callback_leaves_results_delivered_and_the_loop_running():
    calls = []

    def observer(stats):
        calls.append(stats.clips)
        raise RuntimeError("injected: the metrics observer fails")

    async def main():
        b = Batcher(Model(), ThreadPoolExecutor(1), max_batch_size=4, max_wait_ms=1,
                    on_batch=observer)  # fmt: skip
        b.start()
        try:
            first, _ = await asyncio.wait_for(b.submit(3, 1, 5), 5)
            assert b.running  # the loop survived the callback's failure
            second, _ = await asyncio.wait_for(b.submit(4, 1, 5), 5)
            return first, second
        finally:
            await b.stop()

    assert run(main()) == (6, 8)
    assert calls == [1, 1]
