"""The few numbers each part of the engine runs by, frozen: the settings are unpacked into
these at the edge (`server.settings`), so no part carries the whole configuration."""

from __future__ import annotations

from dataclasses import dataclass

from media import DecodeJob, Limits, WindowJob
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
    rate_mpx: float = 400.0  # decoded megapixels per second assumed: the plan's budget
    nice: int = 10  # CPU priority below the model's
    memory_mb: int = 4096  # address-space cap of each worker (0: none)
    threads: int = 1  # codec threads per worker (0: FFmpeg's choice)
    device: str = "cpu"  # "cuda": NVDEC
    max_pixels: int = Limits.max_pixels
    max_duration_s: float = 600.0
    max_sync_duration_s: float = 120.0  # a timeline answered in the request
    max_job_duration_s: float = 4 * 3600.0  # a timeline computed as a job
    window_batch: int = 8  # clips of windows handed to the model at once (its batch size)

    def job(self, shape: ClipShape) -> DecodeJob:
        """What a decoder must produce for a model of this clip shape, within these limits:
        the one place a decode job is made."""
        limits = Limits(
            max_pixels=self.max_pixels, max_duration_s=self.max_duration_s,
            max_decoded_pixels=int(self.timeout_s * self.rate_mpx * 1e6),
        )  # fmt: skip
        return DecodeJob(shape.frames, shape.size, shape.clips, shape.crops, limits,
                         threads=self.threads, device=self.device)  # fmt: skip

    def window_job(
        self, shape: ClipShape, window_s: float, stride_s: float, shots: bool,
        path: str | None = None,
    ) -> WindowJob:  # fmt: skip
        """A long video as windows of the model's clip shape (temporal views become the
        windows; spatial crops stay), within the job limit of duration and frames."""
        limits = Limits(
            max_pixels=self.max_pixels,
            max_duration_s=max(self.max_job_duration_s, self.max_sync_duration_s),
            max_frames=int(max(self.max_job_duration_s, self.max_sync_duration_s) * 240),
        )
        return WindowJob(
            shape.frames, shape.size, window_s, stride_s, crops=shape.crops,
            per_chunk=self.windows_per_chunk(shape.crops), limits=limits, threads=self.threads,
            device=self.device, shots=shots, path=path,
        )  # fmt: skip

    def windows_per_chunk(self, crops: int) -> int:
        """Windows decoded and sent to the model at once: one batch of their views."""
        return max(1, self.window_batch // crops)
