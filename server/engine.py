"""The recognition engine: decode, batch on the model, explain.

Two parts meet here. A *decoder* turns an upload into frames (`media.pool.DecodePool`: worker
processes on this machine). A *model* batches clips across requests and encodes label sets
(`ModelRunner`: the backend behind a batcher on one model thread, with a label cache). The
`Engine` joins them for one request and builds the answer. On a Ray cluster the same Engine
runs with remote decoders and models (`server.cluster`), so the answer, its errors and its
timings are the same wherever the parts run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from media import Limits, VideoInfo
from media.pool import DecodePool
from media.worker import Job

from . import explain as ex
from .admission import Admission
from .backends import Backend, ClipResult, ModelInfo
from .batcher import Batcher, BatchError, BatchStats, QueueFull, QueueTimeout
from .errors import TimedOut, Unavailable, from_batch_error
from .labels import LabelCache
from .metrics import Metrics
from .schemas import Explain, Recognition
from .settings import Settings

LABEL_CHUNK = 64  # labels per text-encoder call


@dataclass
class _Payload:
    frames: np.ndarray  # (V, T, 3, H, W) uint8
    explain_regions: bool


@dataclass
class Inference:
    """One video's views through the model, with the time it waited and ran."""

    views: list[ClipResult]
    queue_s: float
    inference_s: float


class Decoder(Protocol):
    busy: int  # decodes running
    waiting: int  # decodes waiting for a worker

    async def decode(self, data: bytes, job: Job) -> tuple[np.ndarray, VideoInfo]: ...

    def close(self) -> None: ...


class Model(Protocol):
    info: ModelInfo

    @property
    def ready(self) -> bool: ...

    @property
    def depth(self) -> int: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def infer(self, frames: np.ndarray, explain_regions: bool) -> Inference: ...

    async def label_embeddings(self, labels: list[str]) -> np.ndarray: ...


def decode_job(settings: Settings, frames: int, size: int, clips: int, crops: int) -> Job:
    """What a decoder must produce for a model (`frames` of `size` px per view, `clips` x
    `crops` views), within the settings' limits."""
    limits = Limits(max_pixels=settings.max_pixels, max_duration_s=settings.max_duration_s)
    return Job(frames, size, clips, crops, limits, threads=settings.decode_threads,
               device=settings.decode_device)  # fmt: skip


def model_job(info: ModelInfo, settings: Settings) -> Job:
    return decode_job(settings, info.frames, info.image_size, info.clips, info.crops)


def local_decoder(job: Job, settings: Settings, workers: int | None = None) -> DecodePool:
    return DecodePool(
        workers or settings.decode_workers,
        job.nbytes,
        timeout_s=settings.decode_timeout_s,
        nice=settings.decode_nice,
        memory_mb=settings.decode_memory_mb,
    )


class ModelRunner:
    """A backend behind a batcher on one model thread (forward passes never overlap), with
    the label-set cache. Errors leave it as the HTTP errors of the one table."""

    def __init__(self, backend: Backend, settings: Settings, metrics: Metrics | None = None):
        self.backend = backend
        self.info = backend.info
        self.settings = settings
        self.metrics = metrics or Metrics()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="alt-model")
        self.batcher = Batcher(
            self._run_batch,
            self._pool,
            max_batch_size=settings.max_batch_size,
            max_wait_ms=settings.max_wait_ms,
            max_queue=settings.max_queue,
            on_batch=self._on_batch,
        )
        self.label_cache = LabelCache(settings.label_cache_size)
        self._encoding = asyncio.Semaphore(1)  # one new label set through the text tower at once

    async def start(self) -> None:
        warmup = getattr(self.backend, "warmup", None)
        if self.settings.compile and warmup is not None:
            # Compile every batch bucket before the model reports ready.
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._pool, warmup, self.settings.max_batch_size)
        self.batcher.start()
        # Warm the default label set so the first request pays no text-encoder cost.
        labels = list(self.info.default_labels)
        stored = self.backend.stored_label_embeddings()
        if stored is not None and len(stored) == len(labels):
            self.label_cache.put(LabelCache.key(labels, self.info.label_templates), stored)
        else:
            await self.label_embeddings(labels)

    async def stop(self) -> None:
        await self.batcher.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def ready(self) -> bool:
        return self.batcher.running

    @property
    def depth(self) -> int:
        return self.batcher.depth

    def _run_batch(self, payloads: Sequence[_Payload]) -> list[list[ClipResult]]:
        frames = np.concatenate([p.frames for p in payloads])
        results = self.backend.encode_video(frames, any(p.explain_regions for p in payloads))
        out, start = [], 0
        for p in payloads:
            out.append(results[start : start + len(p.frames)])
            start += len(p.frames)
        return out

    def _on_batch(self, stats: BatchStats) -> None:
        self.metrics.batch_size.observe(stats.clips)
        self.metrics.stage.labels("inference").observe(stats.seconds)

    async def infer(self, frames: np.ndarray, explain_regions: bool) -> Inference:
        if not self.batcher.running:
            raise Unavailable("the model's batcher has stopped; this server needs a restart")
        self.metrics.queue_depth.set(self.batcher.depth + 1)
        timeout = self.settings.request_timeout_s
        try:
            views, job = await self.batcher.submit(
                _Payload(frames, explain_regions), len(frames), timeout
            )
        except (QueueFull, QueueTimeout, BatchError) as err:
            raise from_batch_error(err) from None
        finally:
            self.metrics.queue_depth.set(self.batcher.depth)
        queue_s = job.started - job.enqueued
        self.metrics.stage.labels("queue").observe(queue_s)
        return Inference(views, queue_s, time.perf_counter() - job.started)

    async def label_embeddings(self, labels: list[str]) -> np.ndarray:
        key = LabelCache.key(labels, self.info.label_templates)
        cached = self.label_cache.get(key)
        if cached is not None:
            self.metrics.label_cache.labels("hit").inc()
            return cached
        self.metrics.label_cache.labels("miss").inc()
        loop = asyncio.get_running_loop()
        async with self._encoding:
            cached = self.label_cache.get(key)  # another request may have encoded it meanwhile
            if cached is not None:
                return cached
            # In chunks, so the model thread runs video batches between them.
            parts = []
            for i in range(0, len(labels), LABEL_CHUNK):
                chunk = labels[i : i + LABEL_CHUNK]
                parts.append(
                    await loop.run_in_executor(self._pool, self.backend.encode_labels, chunk)
                )
        emb = np.concatenate(parts)
        self.label_cache.put(key, emb)
        return emb


class Engine:
    def __init__(self, model: Model, decoder: Decoder, settings: Settings, metrics: Metrics):
        self.model = model
        self.decoder = decoder
        self.settings = settings
        self.metrics = metrics
        self.admission = Admission(settings.max_queue, int(settings.max_uploads_mb * 2**20))
        self.admit = self.admission.admit
        self.job: Job | None = None

    @classmethod
    def local(cls, backend: Backend, settings: Settings, metrics: Metrics) -> Engine:
        """Decode in worker processes and run the model on this machine (`alt serve`)."""
        return cls(
            ModelRunner(backend, settings, metrics),
            local_decoder(model_job(backend.info, settings), settings),
            settings,
            metrics,
        )

    @property
    def info(self) -> ModelInfo:
        return self.model.info

    async def start(self) -> None:
        await self.model.start()
        self.job = model_job(self.model.info, self.settings)

    async def stop(self) -> None:
        await self.model.stop()
        self.decoder.close()

    @property
    def ready(self) -> bool:
        return self.model.ready

    async def recognize(
        self, data: bytes, labels: list[str] | None, top_k: int, explain: Explain
    ) -> Recognition:
        """The whole answer within `request_timeout_s`: decoding, label encoding, the model."""
        limit = self.settings.request_timeout_s
        try:
            async with asyncio.timeout(limit):
                return await self._recognize(data, labels, top_k, explain)
        except TimeoutError:
            raise TimedOut(f"no answer within {limit:g} s (ALT_REQUEST_TIMEOUT_S)") from None

    async def _recognize(
        self, data: bytes, labels: list[str] | None, top_k: int, explain: Explain
    ) -> Recognition:
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
            _answer, self.info, video, run.views, label_set, label_emb, top_k, explain, timings
        )


def _answer(*args) -> Recognition:
    return Recognition.model_validate(ex.answer(*args))
