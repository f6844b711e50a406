"""Decode worker processes: results as in-process, crashes and hangs contained."""

import asyncio
import time

import numpy as np
import pytest

from media import DecodeFailed, NotAVideo, decode_clip
from media.jobs import DecodeJob
from media.pool import DecodePool
from tests import videos

JOB = DecodeJob(frames=4, size=32, clips=3, crops=1)


def _run(coro):
    return asyncio.run(coro)


def test_workers_answer_as_the_in_process_decoder():
    data = videos.keyframed_mp4(frames=60, keyframe_every=12)

    async def go():
        pool = DecodePool(2, JOB.nbytes)
        try:
            return await asyncio.gather(*[pool.decode(data, JOB) for _ in range(5)])
        finally:
            pool.close()

    expected, info = decode_clip(data, 4, 32, clips=3, threads=1)
    for frames, got in _run(go()):
        np.testing.assert_array_equal(frames, expected)
        assert got == info


def test_a_crashing_decode_fails_only_its_job_and_the_worker_is_replaced(faulty_workers):
    data = videos.keyframed_mp4(frames=30)

    async def go():
        pool = DecodePool(1, JOB.nbytes, timeout_s=30)
        try:
            first = pool._workers[0].proc.pid
            good = asyncio.ensure_future(pool.decode(data, JOB))  # queued behind the crash
            with pytest.raises(DecodeFailed, match="crashed.*SIGABRT"):
                await pool.decode(b"ABORT" + data, JOB)
            frames, _ = await good
            assert pool._workers[0].proc.pid != first  # a new process took its place
            with pytest.raises(NotAVideo):  # ordinary errors still come back as themselves
                await pool.decode(b"not a video" * 10, JOB)
            return frames
        finally:
            pool.close()

    assert _run(go()).shape == (3, 4, 3, 32, 32)


def test_a_hanging_decode_is_killed_at_its_time_limit(faulty_workers):
    data = videos.keyframed_mp4(frames=30)

    async def go():
        pool = DecodePool(1, JOB.nbytes, timeout_s=1.5)
        try:
            t0 = time.monotonic()
            with pytest.raises(DecodeFailed, match="longer than the limit of 1.5 s"):
                await pool.decode(b"HANG" + data, JOB)
            waited = time.monotonic() - t0
            frames, _ = await pool.decode(data, JOB)
            return waited, frames
        finally:
            pool.close()

    waited, frames = _run(go())
    assert waited < 10 and frames.shape == (3, 4, 3, 32, 32)


def test_a_cancelled_decode_stops_its_worker(faulty_workers):
    data = videos.keyframed_mp4(frames=30)

    async def go():
        pool = DecodePool(1, JOB.nbytes, timeout_s=600)
        try:
            hung = asyncio.ensure_future(pool.decode(b"HANG" + data, JOB))
            await asyncio.sleep(1.0)
            worker = pool._workers[0]
            pid = worker.proc.pid
            hung.cancel()
            with pytest.raises(asyncio.CancelledError):
                await hung
            # Without the kill this would wait for the hour-long sleep.
            frames, _ = await asyncio.wait_for(pool.decode(data, JOB), 30)
            return pid, worker.proc.pid, frames
        finally:
            pool.close()

    before, after, frames = _run(go())
    assert before != after and frames.shape == (3, 4, 3, 32, 32)


class _CancelAfterReply:
    """The worker's connection, with a cancel() landing just after the answer arrived and
    before the worker is marked idle (the gap between a reply and the caller's cancel)."""

    def __init__(self, worker) -> None:
        self.worker, self.conn = worker, worker.conn

    def __getattr__(self, name):
        return getattr(self.conn, name)

    def recv(self):
        reply = self.conn.recv()
        self.worker.cancel()
        self.worker.proc.wait(5)  # the kill has landed
        return reply


def test_a_cancel_after_the_reply_does_not_leave_a_dead_worker_in_the_pool():
    from media.pool import _Worker

    data = videos.keyframed_mp4(frames=30)
    worker = _Worker(JOB.nbytes, nice=0, memory_mb=0)
    try:
        worker.conn = _CancelAfterReply(worker)
        first, _ = worker.run(JOB, data, timeout=30)
        assert first.shape == (3, 4, 3, 32, 32)
        # The next, unrelated job must find a live process, not "crashed (SIGKILL)".
        again, _ = worker.run(JOB, data, timeout=30)
        np.testing.assert_array_equal(again, first)
    finally:
        worker.close()


def test_a_decode_given_up_before_its_thread_began_never_runs(faulty_workers):
    """The pool's threads may all be busy (replacing killed workers): a request that
    times out while its decode waits for a thread must not decode later, for nobody, until
    the decode time limit (a hanging file here would hold the worker 30 s)."""
    data = videos.keyframed_mp4(frames=30)

    async def go():
        pool = DecodePool(1, JOB.nbytes, timeout_s=30)
        try:
            pid = pool._workers[0].proc.pid
            blocker = pool._threads.submit(time.sleep, 1.0)  # the pool's only thread, busy
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(pool.decode(b"HANG" + data, JOB), 0.2)
            while not blocker.done():
                await asyncio.sleep(0.05)
            t0 = time.monotonic()
            while pool.busy:
                assert time.monotonic() - t0 < 5, "the given-up decode ran"
                await asyncio.sleep(0.05)
            frames, _ = await pool.decode(data, JOB)
            return pid, pool._workers[0].proc.pid, frames
        finally:
            pool.close()

    before, after, frames = _run(go())
    assert before == after  # nothing was killed: the hanging job never reached the worker
    assert frames.shape == (3, 4, 3, 32, 32)
