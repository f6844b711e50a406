"""A decode worker process: `python -m media.worker FD SLOT_FD SLOT_BYTES NICE MEMORY_MB`.

It reads jobs from the connection on file descriptor FD (a pickled `DecodeJob`, then the video
bytes), decodes, writes the frames into the shared-memory slot SLOT_FD and answers with
their shape and the `VideoInfo` (or the error). It imports PyAV and NumPy, nothing heavy,
so a replacement starts in a fraction of a second.
"""

from __future__ import annotations

import mmap
import os
import resource
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection

import numpy as np

from .decode import Limits, decode_clip
from .errors import VideoError


@dataclass(frozen=True)
class DecodeJob:
    frames: int
    size: int
    clips: int = 1
    crops: int = 1
    limits: Limits = Limits()  # noqa: RUF009 - frozen
    threads: int = 1  # codec threads
    device: str = "cpu"  # "cuda": decode with NVDEC through PyAV's hardware acceleration

    @property
    def nbytes(self) -> int:
        return self.clips * self.crops * self.frames * 3 * self.size * self.size


def _hwaccel(device: str):
    if device == "cpu":
        return None
    from av.codec.hwaccel import HWAccel  # lazy: only where a GPU decodes

    return HWAccel(device_type="cuda", allow_software_fallback=True)


def serve(conn: Connection, slot: mmap.mmap) -> None:
    while True:
        try:
            job: DecodeJob = conn.recv()
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the server closed the connection: exit quietly
        try:
            video, info = decode_clip(
                data, job.frames, job.size, job.clips, job.crops, job.limits,
                threads=job.threads, hwaccel=_hwaccel(job.device),
            )  # fmt: skip
            del data
            if video.nbytes > len(slot):
                raise VideoError(f"{video.nbytes} bytes of frames exceed the slot")
            np.frombuffer(slot, np.uint8, video.nbytes)[:] = video.reshape(-1)
            conn.send(("ok", video.shape, info))
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


def main(argv: list[str]) -> None:
    fd, slot_fd, slot_bytes, nice, memory_mb = (int(a) for a in argv)
    _die_with_parent()
    if nice:
        os.nice(nice)
    if memory_mb:
        limit = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    slot = mmap.mmap(slot_fd, slot_bytes)
    serve(Connection(fd), slot)


if __name__ == "__main__":
    main(sys.argv[1:])
