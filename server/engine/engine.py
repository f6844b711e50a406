"""The recognition engine: decode, batch on the model, answer.

Two parts meet here. A *decoder* turns an upload into frames (`media.pool.DecodePool`:
worker processes on this machine). A *model* batches clips across requests and encodes
label sets (`ModelRunner`). The `Engine` joins them for one video and builds the answer.
On a Ray cluster the same Engine runs with remote decoders and models (`server.ray_serve`),
so the answer, its errors and its timings are the same wherever the parts run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from media import DecodeJob, VideoInfo, WindowJob
from media.pool import DecodePool
from media.windows import Window, WindowChunk, WindowedInfo

from .answer import build_answer
from .backends import Backend, ClipResult, ModelInfo
from .errors import PayloadTooLarge, TimedOut
from .limits import BatchLimits, DecodeLimits
from .metrics import Metrics
from .runner import Inference, ModelRunner
from .schemas import Explain, Recognition, TimelineRecognition
from .timeline import TimelineOptions, build_timeline

Progress = Callable[[int, int], Awaitable[None]]  # (windows done, windows in all)
# A chunk of windows through the model: (index of its first window, the windows, the
# views of each window, rotation in degrees).
WindowSink = Callable[[int, tuple[Window, ...], list[list[ClipResult]], int], Awaitable[None]]


class Decoder(Protocol):
    busy: int  # decodes running
    waiting: int  # decodes waiting for a worker

    async def decode(self, data: bytes, job: DecodeJob) -> tuple[np.ndarray, VideoInfo]: ...

    async def windows(
        self,
        data: bytes,
        job: WindowJob,
        on_info: Callable[[WindowedInfo], Awaitable[None]],
        on_chunk: Callable[[WindowChunk], Awaitable[None]],
    ) -> tuple[int, int]: ...

    def close(self) -> None: ...


class Model(Protocol):
    @property
    def info(self) -> ModelInfo: ...

    @property
    def ready(self) -> bool: ...

    @property
    def degraded(self) -> list[str]:
        """The parts without a working replica (a cluster's deployments); [] when whole."""
        ...

    @property
    def depth(self) -> int: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def infer(self, frames: np.ndarray, explain_regions: bool) -> Inference: ...

    async def label_embeddings(self, labels: list[str]) -> np.ndarray: ...


def decode_pool(limits: DecodeLimits, job: DecodeJob, workers: int | None = None) -> DecodePool:
    """Worker processes on this machine, with slots sized for `job` and for a chunk of
    windows of the same clip shape."""
    chunk = limits.windows_per_chunk(job.crops) * job.crops * job.frames * 3 * job.size * job.size
    return DecodePool(
        workers or limits.workers,
        max(job.nbytes, chunk),
        timeout_s=limits.timeout_s,
        nice=limits.nice,
        memory_mb=limits.memory_mb,
    )


class Engine:
    """One video in, its answer out, within `request_timeout_s`."""

    def __init__(
        self,
        model: Model,
        decoder: Decoder,
        decode: DecodeLimits,
        request_timeout_s: float,
        metrics: Metrics,
        timeline_rate: float = 1.0,
    ) -> None:
        self.model = model
        self.decoder = decoder
        self.decode_limits = decode
        self.request_timeout_s = request_timeout_s
        self.timeline_rate = timeline_rate  # a timeline's deadline grows by this per video s
        self.metrics = metrics
        self.job: DecodeJob | None = None  # known once the model is

    @classmethod
    def in_process(
        cls,
        backend: Backend,
        batch: BatchLimits,
        decode: DecodeLimits,
        request_timeout_s: float,
        metrics: Metrics,
        timeline_rate: float = 1.0,
    ) -> Engine:
        """The model in this process and decoding in worker processes of this machine."""
        return cls(
            ModelRunner(backend, batch, metrics),
            decode_pool(decode, decode.job(backend.info.clip_shape)),
            decode,
            request_timeout_s,
            metrics,
            timeline_rate,
        )

    @property
    def info(self) -> ModelInfo:
        return self.model.info

    async def start(self) -> None:
        await self.model.start()
        self.job = self.decode_limits.job(self.model.info.clip_shape)

    async def stop(self) -> None:
        await self.model.stop()
        self.decoder.close()

    @property
    def ready(self) -> bool:
        return self.model.ready

    @property
    def degraded(self) -> list[str]:
        return self.model.degraded

    async def recognize(
        self, data: bytes, labels: list[str] | None, top_k: int, explain: Explain
    ) -> Recognition:
        """The whole answer within one deadline: decoding, label encoding, the model."""
        limit = self.request_timeout_s
        try:
            async with asyncio.timeout(limit):
                return await self._recognize(data, labels, top_k, explain)
        except TimeoutError:
            raise TimedOut(f"no answer within {limit:g} s (ALT_REQUEST_TIMEOUT_S)") from None

    async def _recognize(
        self, data: bytes, labels: list[str] | None, top_k: int, explain: Explain
    ) -> Recognition:
        assert self.job is not None, "the engine has not started"
        t0 = time.perf_counter()
        frames, video = await self.decoder.decode(data, self.job)
        del data  # the upload is not needed any more
        decode_s = time.perf_counter() - t0
        self.metrics.stage.labels("decode").observe(decode_s)

        label_set = labels or list(self.info.default_labels)
        label_emb = await self.model.label_embeddings(label_set)
        run = await self.model.infer(frames, explain == Explain.regions)
        total = time.perf_counter() - t0
        self.metrics.stage.labels("total").observe(total)
        timings = {"decode_s": decode_s, "queue_s": run.queue_s,
                   "inference_s": run.inference_s, "total_s": total}  # fmt: skip
        # Ranking, explanations and the response model, off the event loop.
        return await asyncio.to_thread(
            build_answer, self.info, video, run.views, label_set, label_emb, top_k, explain,
            timings,
        )  # fmt: skip

    async def timeline(
        self,
        data: bytes,
        labels: list[str] | None,
        options: TimelineOptions,
        *,
        path: Path | None = None,
        decoder: Decoder | None = None,
        progress: Progress | None = None,
        max_duration_s: float | None = None,
    ) -> TimelineRecognition:
        """A long video as a timeline (`data`, or the file at `path`). In a request
        (`max_duration_s` None): up to `max_sync_duration_s`, within `request_timeout_s`
        plus `timeline_rate` seconds per second of video. As a job: up to
        `max_duration_s`, no deadline but each decode step's, on the job's own `decoder`."""
        assert self.job is not None, "the engine has not started"
        job = self.decode_limits.window_job(
            self.info.clip_shape, options.window_s, options.stride_s, options.shots,
            str(path) if path is not None else None,
        )  # fmt: skip
        label_set = labels or list(self.info.default_labels)
        run = _TimelineRun(self, max_duration_s, progress)
        label_emb = await self.model.label_embeddings(label_set)
        try:
            async with asyncio.timeout(run.budget_s if run.sync else None) as run.deadline:
                _, damaged = await (decoder or self.decoder).windows(
                    data, job, run.on_info, run.on_chunk
                )
        except TimeoutError:
            raise TimedOut(
                f"no timeline within {run.budget_s:.0f} s (ALT_REQUEST_TIMEOUT_S plus "
                "ALT_TIMELINE_RATE per second of video); POST /jobs has no such limit"
            ) from None
        del data
        total = time.perf_counter() - run.t0
        self.metrics.stage.labels("total").observe(total)
        timings = {"decode_s": total - run.model_s, "queue_s": run.queue_s,
                   "inference_s": run.inference_s, "total_s": total}  # fmt: skip
        warnings = [f"{damaged} damaged packets were skipped"] if damaged else []
        assert run.info is not None
        return await asyncio.to_thread(
            build_timeline, self.info, run.info, run.rotation, run.views, label_set, label_emb,
            options, timings, warnings,
        )  # fmt: skip

    async def embed_windows(
        self,
        path: Path,
        options: TimelineOptions,
        *,
        decoder: Decoder,
        first: int,
        on_info: Callable[[WindowedInfo], Awaitable[None]],
        sink: WindowSink,
        progress: Progress | None = None,
        max_duration_s: float,
    ) -> int:
        """The windows of the video at `path` from window `first` on, through the model,
        handed to `sink` a chunk at a time and not kept (a library stores them as they
        come). No deadline but each decode step's. -> damaged packets skipped."""
        assert self.job is not None, "the engine has not started"
        job = self.decode_limits.window_job(
            self.info.clip_shape, options.window_s, options.stride_s, options.shots, str(path)
        )
        job = dataclasses.replace(job, first=first)
        run = _TimelineRun(self, max_duration_s, progress, sink=sink, done=first)

        async def info(video: WindowedInfo) -> None:
            await on_info(video)
            await run.on_info(video)

        _, damaged = await decoder.windows(b"", job, info, run.on_chunk)
        return damaged


class _TimelineRun:
    """One timeline in progress: the windows' results as chunks come back from the model,
    kept for the answer, or handed to a `sink` and dropped."""

    def __init__(
        self,
        engine: Engine,
        max_duration_s: float | None,
        progress: Progress | None,
        sink: WindowSink | None = None,
        done: int = 0,
    ):
        self.engine, self.progress, self.sink, self.done = engine, progress, sink, done
        self.sync = max_duration_s is None
        limits = engine.decode_limits
        self.limit_s = limits.max_sync_duration_s if max_duration_s is None else max_duration_s
        self.budget_s = engine.request_timeout_s
        self.deadline: asyncio.Timeout | None = None
        self.t0 = time.perf_counter()
        self.info: WindowedInfo | None = None
        self.views: list[list] = []
        self.rotation = 0
        self.model_s = self.queue_s = self.inference_s = 0.0

    async def on_info(self, info: WindowedInfo) -> None:
        if info.duration_s > self.limit_s:
            jobs = self.engine.decode_limits.max_job_duration_s
            raise PayloadTooLarge(
                f"the video lasts {info.duration_s:.1f} s, over the limit of {self.limit_s:g} s "
                + (
                    f"for a timeline in the request; POST /jobs takes up to {jobs:g} s"
                    if self.sync
                    else "for a job"
                )  # fmt: skip
            )
        self.info = info
        if self.sync and self.deadline is not None:
            self.budget_s = (
                self.engine.request_timeout_s + self.engine.timeline_rate * info.duration_s
            )
            loop = asyncio.get_running_loop()
            self.deadline.reschedule(loop.time() + self.budget_s - (time.perf_counter() - self.t0))
        if self.progress is not None:
            await self.progress(self.done, len(info.windows))

    async def on_chunk(self, chunk: WindowChunk) -> None:
        t = time.perf_counter()
        run = await self.engine.model.infer(chunk.video, False)
        self.model_s += time.perf_counter() - t
        self.queue_s += run.queue_s
        self.inference_s += run.inference_s
        crops = len(chunk.video) // len(chunk.windows)
        views = [run.views[i : i + crops] for i in range(0, len(run.views), crops)]
        self.rotation = chunk.rotation
        if self.sink is not None:
            await self.sink(chunk.first, chunk.windows, views, chunk.rotation)
        else:
            self.views.extend(views)
        self.done += len(views)
        if self.progress is not None and self.info is not None:
            await self.progress(self.done, len(self.info.windows))
