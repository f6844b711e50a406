"""Decoding in worker processes, so untrusted files never run FFmpeg inside the server.

Each worker is a `python -m media.worker` process with its own connection and its own
shared-memory slot (an anonymous file in /dev/shm, mapped by both sides): the video bytes
go in as raw bytes, the frames come back through the slot, never pickled. A worker that
crashes fails only its own job and is replaced; a job that runs past its time limit has
its worker killed and replaced. Nothing a file does to a worker reaches the server.
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from . import errors
from .decode import VideoInfo
from .jobs import DecodeJob, WindowJob
from .windows import WindowChunk, WindowedInfo

log = logging.getLogger(__name__)
_SHM_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else None
_ROOT = str(Path(__file__).resolve().parents[1])


class _Worker:
    """One worker process and its slot; `run` blocks, so it is called from a thread."""

    def __init__(self, slot_bytes: int, nice: int, memory_mb: int) -> None:
        self.slot_bytes, self.nice, self.memory_mb = slot_bytes, nice, memory_mb
        self._file = tempfile.TemporaryFile(dir=_SHM_DIR)  # noqa: SIM115 - lives with the worker
        self._file.truncate(slot_bytes)
        self.slot = mmap.mmap(self._file.fileno(), slot_bytes)
        self.proc: subprocess.Popen | None = None
        self.conn: Connection | None = None
        self._lock = threading.Lock()
        self._active = False  # a job is in the worker's hands
        self._cancelled = False
        self._token: threading.Event | None = None  # set when the caller gives the job up
        self.spawn()

    def spawn(self) -> None:
        ours, theirs = socket.socketpair()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            filter(None, [_ROOT, os.environ.get("PYTHONPATH")]))}  # fmt: skip
        fds = (theirs.fileno(), self._file.fileno())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "media.worker", *map(str, fds), str(self.slot_bytes),
             str(self.nice), str(self.memory_mb)],
            pass_fds=fds, env=env, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        theirs.close()
        self.conn = Connection(ours.detach())

    def kill(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()

    def respawn(self) -> None:
        self.kill()
        self.spawn()

    def _death(self) -> str:
        self.proc.wait(5)
        code = self.proc.returncode
        if code is not None and code < 0:
            return f"signal {signal.Signals(-code).name}"
        return f"exit code {code}"

    def cancel(self, token: threading.Event | None = None) -> None:
        """Kill the job in progress (from another thread); `run` then replaces the worker.
        With the job's `token`, a job whose thread has not begun yet is cancelled too: it
        never starts (else it would run, for nobody, until its time limit)."""
        with self._lock:
            if token is not None:
                token.set()
                if self._token is not token:
                    return
            if self._active:
                self._cancelled = True
                self.proc.kill()

    def _send(self, *messages) -> None:
        try:
            for m in messages:
                if isinstance(m, bytes):
                    self.conn.send_bytes(m)
                else:
                    self.conn.send(m)
        except (EOFError, OSError):
            self._lost()

    def _lost(self):
        with self._lock:
            self._active = False
        why = self._death()
        self.respawn()
        if self._cancelled:
            raise errors.DecodeFailed("the decode was cancelled") from None
        raise errors.DecodeFailed(f"the decoder crashed on this file ({why})") from None

    def _receive(self, timeout: float, what: str = "decoding"):
        """The worker's next message within `timeout`; a death, a cancel or a timeout ends
        the job (the worker is replaced) with a `DecodeFailed`."""
        try:
            done = self.conn.poll(timeout)
            reply = self.conn.recv() if done else None
        except (EOFError, OSError):
            self._lost()
        if reply is None:
            with self._lock:
                self._active = False
            self.respawn()
            raise errors.DecodeFailed(
                f"{what} took longer than the limit of {timeout:g} s (ALT_DECODE_TIMEOUT_S)"
            )
        if reply[0] == "video_error":
            self._finish()
            raise getattr(errors, reply[1], errors.CorruptVideo)(reply[2])
        return reply

    def _begin(self, token: threading.Event | None = None) -> None:
        with self._lock:
            if token is not None and token.is_set():
                raise errors.DecodeFailed("the decode was cancelled before it began")
            self._active, self._cancelled, self._token = True, False, token

    def _finish(self) -> None:
        with self._lock:
            self._active = False
            killed = self._cancelled
        if killed:
            # cancel() landed after the answer arrived: the process is dead and must not
            # go back to the pool as it is.
            self.respawn()

    def _frames(self, shape) -> np.ndarray:
        return np.frombuffer(self.slot, np.uint8, int(np.prod(shape))).reshape(shape).copy()

    def run(
        self, job: DecodeJob, data: bytes, timeout: float, token: threading.Event | None = None
    ) -> tuple[np.ndarray, VideoInfo]:
        self._begin(token)
        self._send(job, data)
        reply = self._receive(timeout)
        _, shape, info = reply
        frames = self._frames(shape)
        self._finish()
        return frames, info

    # A window stream: start it, then step until "done".
    def start_stream(self, job: WindowJob, data: bytes) -> None:
        self._begin()
        self._send(job, data)

    def step(self, timeout: float):
        """("info", WindowedInfo) | ("chunk", WindowChunk) | ("done", seeks, errors).
        A chunk is copied out of the slot and the worker told to go on at once, so it
        decodes the next chunk while this one is on the model."""
        reply = self._receive(timeout, "decoding one chunk of windows")
        if reply[0] == "chunk":
            _, shape, first, windows, rotation = reply
            chunk = WindowChunk(first, self._frames(shape), windows, rotation)
            self._send("next")
            return ("chunk", chunk)
        if reply[0] == "done":
            self._finish()
        return reply

    def close(self) -> None:
        self.kill()
        self.slot.close()
        self._file.close()


class DecodePool:
    """`await pool.decode(data, job)` -> uint8 frames `(V, T, 3, S, S)` and their `VideoInfo`.

    `workers` processes decode at once; further jobs wait for a free one. `timeout_s` bounds
    one decode; `nice` lowers the workers' CPU priority so the model's threads come first;
    `memory_mb` caps each worker's address space (0: no cap).
    """

    def __init__(
        self,
        workers: int,
        slot_bytes: int,
        timeout_s: float = 30.0,
        nice: int = 0,
        memory_mb: int = 0,
    ) -> None:
        assert workers >= 1 and slot_bytes > 0
        self.timeout_s = timeout_s
        self._workers = [_Worker(slot_bytes, nice, memory_mb) for _ in range(workers)]
        self._idle: asyncio.Queue[_Worker] | None = None
        self._threads = ThreadPoolExecutor(workers, thread_name_prefix="alt-decode")
        self._recycling: set[asyncio.Future] = set()
        self.waiting = 0  # jobs waiting for a free worker
        self.busy = 0  # jobs being decoded

    @property
    def size(self) -> int:
        return len(self._workers)

    @property
    def slot_bytes(self) -> int:
        return self._workers[0].slot_bytes

    def _queue(self) -> asyncio.Queue[_Worker]:
        if self._idle is None:
            self._idle = asyncio.Queue()
            for w in self._workers:
                self._idle.put_nowait(w)
        return self._idle

    async def _acquire(self, nbytes: int) -> tuple[asyncio.Queue[_Worker], _Worker]:
        """A free worker (waiting for one), counted busy; the caller gives it back."""
        if nbytes > self.slot_bytes:
            raise ValueError(f"a job of {nbytes} bytes does not fit the slots")
        idle = self._queue()
        self.waiting += 1
        try:
            worker = await idle.get()
        finally:
            self.waiting -= 1
        self.busy += 1
        return idle, worker

    async def decode(self, data: bytes, job: DecodeJob) -> tuple[np.ndarray, VideoInfo]:
        idle, worker = await self._acquire(job.nbytes)
        loop = asyncio.get_running_loop()
        token = threading.Event()
        run = loop.run_in_executor(self._threads, worker.run, job, data, self.timeout_s, token)
        try:
            return await asyncio.shield(run)
        except asyncio.CancelledError:
            # The caller is gone: stop the decode now rather than let it finish for nobody,
            # also when its thread has not begun (the threads may be busy replacing workers).
            worker.cancel(token)
            raise
        finally:
            # The worker goes back once its thread is done with it, even if we were cancelled.
            def release(_):
                self.busy -= 1
                idle.put_nowait(worker)

            if run.done():
                release(None)
            else:
                run.add_done_callback(release)

    async def windows(
        self,
        data: bytes,
        job: WindowJob,
        on_info: Callable[[WindowedInfo], Awaitable[None]],
        on_chunk: Callable[[WindowChunk], Awaitable[None]],
    ) -> tuple[int, int]:
        """Decode a long video as windows (`job.path`, or `data`), calling `on_info` once
        and `on_chunk` per chunk, in order; the worker decodes the next chunk while
        `on_chunk` runs. `timeout_s` bounds each step (indexing, one chunk), so the time
        limit grows with the video. Cancelling stops the decode at once. -> (seeks, damaged
        packets)."""
        idle, worker = await self._acquire(job.nbytes)
        loop = asyncio.get_running_loop()
        finished = False
        step: asyncio.Future | None = None
        try:
            step = loop.run_in_executor(self._threads, worker.start_stream, job, data)
            await asyncio.shield(step)
            while True:
                step = loop.run_in_executor(self._threads, worker.step, self.timeout_s)
                reply = await asyncio.shield(step)
                if reply[0] == "info":
                    await on_info(reply[1])
                elif reply[0] == "chunk":
                    await on_chunk(reply[1])
                else:
                    finished = True
                    return reply[1], reply[2]
        except errors.VideoError:  # a DecodeFailed's worker was replaced already
            finished = True
            raise
        finally:
            if finished:
                self.busy -= 1
                idle.put_nowait(worker)
            else:
                worker.cancel()  # mid-stream: kill it, whatever it is doing
                if step is not None:  # what it raises now is the cancel's doing: retrieved
                    step.add_done_callback(lambda f: f.cancelled() or f.exception())
                self._recycling.add(asyncio.ensure_future(self._recycle(worker, step, idle)))

    async def _recycle(self, worker: _Worker, step, idle) -> None:
        """A stream left mid-way: once its step is over, a fresh process, then back."""
        try:
            if step is not None:
                await asyncio.wait([step])
            await asyncio.get_running_loop().run_in_executor(self._threads, worker.respawn)
        finally:
            self.busy -= 1
            idle.put_nowait(worker)
            self._recycling.discard(asyncio.current_task())

    def close(self) -> None:
        for task in self._recycling:  # a respawn after the close would find no threads
            task.cancel()
        self._threads.shutdown(wait=False, cancel_futures=True)
        for w in self._workers:
            w.close()
