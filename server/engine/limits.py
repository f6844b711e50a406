"""The few numbers each part of the engine runs by, frozen: the settings are unpacked into
these at the edge (`server.settings`), so no part carries the whole configuration."""

from __future__ import annotations

from dataclasses import dataclass

from media import DecodeJob, Limits
from model.contract import ClipShape


@dataclass(frozen=True)
class BatchLimits:
    """The model side: batching across requests and the label-set cache."""

    max_batch_size: int = 8  # clips per forward pass
    max_wait_ms: float = 5.0  # how long a batch waits to fill
    max_queue: int = 64  # videos waiting for the model before a refusal (429)
    label_cache_size: int = 128  # label sets whose embeddings are kept
    compiled: bool = False  # warm up the backend's compiled forward before ready


@dataclass(frozen=True)
class DecodeLimits:
    """The decoding side: worker processes and what one decode may cost."""

    workers: int = 1  # worker processes
    timeout_s: float = 30.0  # wall-clock limit of one decode
    nice: int = 10  # CPU priority below the model's
    memory_mb: int = 4096  # address-space cap of each worker (0: none)
    threads: int = 1  # codec threads per worker (0: FFmpeg's choice)
    device: str = "cpu"  # "cuda": NVDEC
    max_pixels: int = Limits.max_pixels
    max_duration_s: float = 600.0

    def job(self, shape: ClipShape) -> DecodeJob:
        """What a decoder must produce for a model of this clip shape, within these limits:
        the one place a decode job is made."""
        limits = Limits(max_pixels=self.max_pixels, max_duration_s=self.max_duration_s)
        return DecodeJob(shape.frames, shape.size, shape.clips, shape.crops, limits,
                         threads=self.threads, device=self.device)  # fmt: skip
