"""A decode worker process: `python -m media.worker FD SLOT_FD SLOT_BYTES NICE MEMORY_MB`.

It reads jobs from the connection on file descriptor FD (a pickled `media.jobs` job, then the video
bytes), decodes, writes the frames into the shared-memory slot SLOT_FD and answers with
their shape and the `VideoInfo` (or the error). It imports PyAV and NumPy, nothing heavy,
so a replacement starts in a fraction of a second.
"""

from __future__ import annotations

import mmap
import os
import resource
import sys
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from .decode import decode_clip
from .errors import VideoError
from .jobs import WindowJob
from .windows import WindowedVideo


class _Gone(Exception):
    """The server closed the connection mid-stream."""


def _stream(conn: Connection, slot: mmap.mmap, job: WindowJob, data: bytes) -> None:
    from .shots import find_cuts  # noqa: PLC0415 - only jobs that ask for shots need it

    source = Path(job.path) if job.path else data
    cuts = find_cuts(source, job.limits) if job.shots else ()
    with WindowedVideo(
        source, job.frames, job.size, job.window_s, job.stride_s, job.crops, job.limits,
        threads=job.threads, cuts=cuts, hwaccel=_hwaccel(job.device),
    ) as video:  # fmt: skip
        conn.send(("info", video.info))
        for chunk in video.chunks(job.per_chunk, job.first):
            if chunk.video.nbytes > len(slot):
                raise VideoError(f"{chunk.video.nbytes} bytes of frames exceed the slot")
            np.frombuffer(slot, np.uint8, chunk.video.nbytes)[:] = chunk.video.reshape(-1)
            conn.send(("chunk", chunk.video.shape, chunk.first, chunk.windows, chunk.rotation))
            try:
                if conn.recv() != "next":
                    return
            except (EOFError, OSError):
                raise _Gone from None
        conn.send(("done", video.stats.seeks, video.stats.errors))


def _hwaccel(device: str):
    if device == "cpu":
        return None
    from av.codec.hwaccel import HWAccel  # lazy: only where a GPU decodes

    return HWAccel(device_type="cuda", allow_software_fallback=True)


def serve(conn: Connection, slot: mmap.mmap) -> None:
    while True:
        try:
            job = conn.recv()
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the server closed the connection: exit quietly
        try:
            if isinstance(job, WindowJob):
                _stream(conn, slot, job, data)
                continue
            video, info = decode_clip(
                data, job.frames, job.size, job.clips, job.crops, job.limits,
                threads=job.threads, hwaccel=_hwaccel(job.device),
            )  # fmt: skip
            del data
            if video.nbytes > len(slot):
                raise VideoError(f"{video.nbytes} bytes of frames exceed the slot")
            np.frombuffer(slot, np.uint8, video.nbytes)[:] = video.reshape(-1)
            conn.send(("ok", video.shape, info))
        except _Gone:
            return
        except VideoError as err:
            conn.send(("video_error", type(err).__name__, str(err)))
        except MemoryError:
            conn.send(("video_error", "VideoTooLarge", "decoding needs more memory than allowed"))
        except Exception as err:  # noqa: BLE001 - any other failure is this file's, not ours
            conn.send(("video_error", "CorruptVideo", f"{type(err).__name__}: {err}"))


def _die_with_parent() -> None:
    """Linux: be killed when the server process dies, however it dies."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def confine(nice: int, memory_mb: int) -> None:
    """A worker process's bounds: it dies with the server, yields the CPU by `nice`, and
    may map at most `memory_mb` (0: no cap)."""
    _die_with_parent()
    if nice:
        os.nice(nice)
    if memory_mb:
        limit = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def main(argv: list[str]) -> None:
    fd, slot_fd, slot_bytes, nice, memory_mb = (int(a) for a in argv)
    confine(nice, memory_mb)
    slot = mmap.mmap(slot_fd, slot_bytes)
    serve(Connection(fd), slot)


if __name__ == "__main__":
    main(sys.argv[1:])
