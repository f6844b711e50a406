"""Live sources cut into windows as their frames arrive, in a worker process.

`python -m media.live FD NICE MEMORY_MB` reads one `LiveJob` from the connection on file
descriptor FD, opens its URL with FFmpeg (RTSP over TCP or UDP, HLS, MPEG-TS over UDP or
HTTP, RTMP, SRT, or a file played at its own rate), decodes every frame as it comes and
sends each window as soon as its last sampled frame has arrived:

    ("live", width, height, fps)                        once the first frame is decoded
    ("window", start_s, end_s, times_s, shape) + bytes  uint8 (frames, 3, size, size)
    ("frames", n)                                       frames decoded so far, every second
    ("ended", why) / ("failed", why)                    the source ended / could not be read

Times are seconds from the first frame this connection decoded. A window `[s, s + window_s)`
(one every `stride_s`) samples `frames` instants at the centres of equal segments, as TSN
samples a clip (`media.sampling`), each showing the latest frame presented at or before it.
Only sampled frames are scaled; memory holds the windows not yet complete, never the
stream. A source that sends nothing for `read_timeout_s` fails the read, so a stalled
source never hangs the worker.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import av
import numpy as np

from .decode import Limits, _why, scale_frame
from .worker import confine

SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "srt", "file")


@dataclass(frozen=True)
class LiveJob:
    url: str
    frames: int  # sampled per window
    size: int
    window_s: float
    stride_s: float
    limits: Limits = Limits()  # noqa: RUF009 - frozen
    transport: str | None = None  # RTSP: "tcp" or "udp"
    listen: bool = False  # RTSP: wait on the URL's address for a pushed stream (RECORD)
    open_timeout_s: float = 10.0
    read_timeout_s: float = 10.0
    realtime: bool = False  # pace a file at its own rate, as a camera would send it
    threads: int = 1


@dataclass
class _Open:
    """A window still waiting for some of its instants."""

    start_s: float
    instants: list[float]
    frames: list[np.ndarray | None] = field(default_factory=list)
    times: list[float] = field(default_factory=list)


class WindowCutter:
    """Frames in, in presentation order; complete windows out."""

    def __init__(self, window_s: float, stride_s: float, frames: int) -> None:
        assert window_s > 0 and stride_s > 0 and frames >= 1
        self.window_s, self.stride_s, self.frames = window_s, stride_s, frames
        self._next = 0  # index of the next window to open
        self._open: list[_Open] = []
        self._prev: tuple[float, Callable[[], np.ndarray]] | None = None
        self._scaled: np.ndarray | None = None  # the previous frame, scaled once if used

    def _instants(self, start: float) -> list[float]:
        step = self.window_s / self.frames
        return [start + (i + 0.5) * step for i in range(self.frames)]

    def push(
        self, t: float, scale: Callable[[], np.ndarray]
    ) -> list[tuple[float, float, list[float], np.ndarray]]:
        """A frame presented at `t` (scaled by `scale()` only if a window samples it) ->
        the windows it completes: (start_s, end_s, times_s, uint8 (frames, 3, S, S)).
        Instants in [previous frame's time, t) show the previous frame."""
        while self._next * self.stride_s <= t:
            start = round(self._next * self.stride_s, 6)
            self._open.append(_Open(start, self._instants(start)))
            self._next += 1
        done = []
        if self._prev is not None:
            prev_t, prev_scale = self._prev
            for w in self._open:
                while len(w.frames) < self.frames and w.instants[len(w.frames)] < t:
                    if self._scaled is None:
                        self._scaled = prev_scale()
                    w.frames.append(self._scaled)
                    w.times.append(round(prev_t, 3))
            while self._open and len(self._open[0].frames) == self.frames:
                w = self._open.pop(0)
                end = round(w.start_s + self.window_s, 6)
                done.append((w.start_s, end, w.times, np.stack(w.frames)))  # type: ignore[arg-type]
        self._prev, self._scaled = (t, scale), None
        return done

    @property
    def pending(self) -> int:
        return len(self._open)


def _options(job: LiveJob) -> dict[str, str]:
    scheme = job.url.split(":", 1)[0].lower()
    opts: dict[str, str] = {}
    if scheme in ("rtsp", "rtsps") and job.listen:
        opts["rtsp_flags"] = "listen"
        opts["listen_timeout"] = str(max(1, round(job.open_timeout_s)))
    elif scheme in ("rtsp", "rtsps"):
        opts["rtsp_transport"] = job.transport or "tcp"
    if scheme in ("http", "https"):
        opts["reconnect"] = "0"  # the server reconnects, with backoff, and says so
    if scheme == "udp":
        opts["overrun_nonfatal"] = "1"
        opts["fifo_size"] = "50000"
    return opts


def _source(url: str) -> str:
    return url[len("file://") :] if url.startswith("file://") else url


def watch(job: LiveJob, send: Callable[..., None], send_bytes: Callable[[bytes], None]) -> None:
    """Read `job.url` until it ends, sending what the module docstring lists."""
    try:
        container = av.open(
            _source(job.url),
            options=_options(job),
            timeout=(job.open_timeout_s, job.read_timeout_s),
        )
    except av.ExitError:
        send(("failed", f"the source did not open within {job.open_timeout_s:g} s"))
        return
    except (av.FFmpegError, OSError, ValueError) as err:
        send(("failed", f"the source cannot be opened ({_why(err)})"))
        return
    try:
        streams = [s for s in container.streams if s.type == "video"]
        if not streams:
            send(("failed", "the source has no video stream"))
            return
        stream = streams[0]
        stream.codec_context.thread_count = job.threads
        cutter = WindowCutter(job.window_s, job.stride_s, job.frames)
        first: float | None = None
        wall0 = time.monotonic()
        count, told = 0, time.monotonic()
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        frame: av.VideoFrame
        for frame in container.decode(stream):  # type: ignore[assignment]
            pts = frame.time
            if pts is None:
                pts = count / fps
            if first is None:
                first = pts
                send(("live", frame.width, frame.height, round(fps, 3)))
            t = pts - first
            if t < 0:  # a frame presented before the first one: out of order, dropped
                continue
            if job.realtime:
                ahead = t - (time.monotonic() - wall0)
                if ahead > 0:
                    time.sleep(ahead)
            count += 1

            def scale(frame=frame) -> np.ndarray:
                return scale_frame(frame, job.size, 1, job.limits)[0]

            for start, end, times, frames in cutter.push(t, scale):
                send(("window", start, end, times, frames.shape))
                send_bytes(frames.tobytes())
            if time.monotonic() - told >= 1.0:
                send(("frames", count))
                told = time.monotonic()
        send(("frames", count))
        send(("ended", "the source ended" if count else "the source ended before any frame"))
    except av.ExitError:  # the timeout's interrupt
        send(("failed", f"the source sent nothing for {job.read_timeout_s:g} s"))
    except av.FFmpegError as err:
        send(("failed", f"the source stopped ({_why(err)})"))
    except Exception as err:  # noqa: BLE001 - whatever the source does, the worker says why
        send(("failed", f"{type(err).__name__}: {err}"))
    finally:
        container.close()


def main(argv: list[str]) -> None:
    fd, nice, memory_mb = (int(a) for a in argv)
    confine(nice, memory_mb)
    conn = Connection(fd)
    try:
        job = conn.recv()
        watch(job, conn.send, conn.send_bytes)
    except (EOFError, OSError, BrokenPipeError):
        pass  # the server went away


if __name__ == "__main__":
    main(sys.argv[1:])
