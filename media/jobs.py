"""What a decode worker is asked to produce (pickled to `media.worker`)."""

from __future__ import annotations

from dataclasses import dataclass

from .decode import Limits


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


@dataclass(frozen=True)
class WindowJob:
    """A long video as windows (`media.windows`), handed back `per_chunk` windows at a time
    through the slot: each chunk waits for the server's "next" before the slot is reused."""

    frames: int
    size: int
    window_s: float
    stride_s: float
    crops: int = 1
    per_chunk: int = 1
    limits: Limits = Limits()  # noqa: RUF009 - frozen
    threads: int = 1
    device: str = "cpu"
    shots: bool = False  # find the cuts first; windows never straddle one
    path: str | None = None  # read the video from this file instead of the bytes sent
    first: int = 0  # the first window handed out (a resumed job skips those stored)

    @property
    def nbytes(self) -> int:
        return self.per_chunk * self.crops * self.frames * 3 * self.size * self.size
