"""One connection to a live source: a `media.live` worker process and the thread that
reads it, handing windows to the event loop through a small buffer that drops the oldest
window when the model falls behind (counted), so memory stays bounded."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from media.live import LiveJob

_ROOT = str(Path(__file__).resolve().parents[2])


class Reader:
    """`await next()` -> ("live", w, h, fps) | ("window", start, end, times, frames) |
    ("frames", n) | ("ended", why) | ("failed", why); after the last two, nothing more."""

    def __init__(self, job: LiveJob, buffer: int = 2, nice: int = 0, memory_mb: int = 0) -> None:
        self.job = job
        self.dropped = 0  # windows dropped because the buffer was full
        self._buffer: collections.deque = collections.deque()
        self._windows = 0  # windows in the buffer
        self._max = buffer
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            filter(None, [_ROOT, os.environ.get("PYTHONPATH")]))}  # fmt: skip
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "media.live", str(theirs.fileno()), str(nice), str(memory_mb)],
            pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        theirs.close()
        self._conn = Connection(ours.detach())
        self._conn.send(job)
        self._thread = threading.Thread(target=self._read, name="alt-live", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while True:
                msg = self._conn.recv()
                if msg[0] == "window":
                    _, start, end, times, shape = msg
                    frames = np.frombuffer(self._conn.recv_bytes(), np.uint8).reshape(shape)
                    msg = ("window", start, end, times, frames)
                self._hand(msg)
                if msg[0] in ("ended", "failed"):
                    return
        except (EOFError, OSError):
            code = self.proc.wait()
            self._hand(("failed", f"the reader exited ({code})" if code else "the reader exited"))

    def _hand(self, msg) -> None:
        with contextlib.suppress(RuntimeError):  # a closed event loop: nobody listens
            self._loop.call_soon_threadsafe(self._put, msg)

    def _put(self, msg) -> None:
        if msg[0] == "window":
            if self._windows >= self._max:  # the model is behind: the oldest window goes
                for i, old in enumerate(self._buffer):
                    if old[0] == "window":
                        del self._buffer[i]
                        self._windows -= 1
                        self.dropped += 1
                        break
            self._windows += 1
        self._buffer.append(msg)
        self._wake.set()

    async def next(self):
        while not self._buffer:
            self._wake.clear()
            await self._wake.wait()
        msg = self._buffer.popleft()
        if msg[0] == "window":
            self._windows -= 1
        return msg

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # the thread's read then ends (the other end is gone)
        self.proc.wait()
        self._thread.join(5)
        self._conn.close()
