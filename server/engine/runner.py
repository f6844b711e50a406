"""The model side of the engine: a backend behind a batcher on one model thread (forward
passes never overlap), with the label-set cache. `alt serve` runs one in its own process;
on a Ray cluster each Model replica runs one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .backends import Backend, ClipResult, ModelInfo
from .batcher import Batcher, BatchError, BatchStats, QueueFull, QueueTimeout
from .errors import Unavailable, from_batch_error
from .labels import LabelCache, label_chunks, stored_embeddings
from .limits import BatchLimits
from .metrics import Metrics


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


class ModelRunner:
    """Errors leave it as the service's errors (`errors.py`), so every caller answers alike."""

    def __init__(
        self, backend: Backend, limits: BatchLimits, metrics: Metrics | None = None
    ) -> None:
        self.backend = backend
        self.info: ModelInfo = backend.info
        self.limits = limits
        self.metrics = metrics or Metrics()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="alt-model")
        self.batcher = Batcher(
            self._run_batch,
            self._pool,
            max_batch_size=limits.max_batch_size,
            max_wait_ms=limits.max_wait_ms,
            max_queue=limits.max_queue,
            on_batch=self._on_batch,
        )
        self.label_cache = LabelCache(limits.label_cache_size)
        self._encoding = asyncio.Semaphore(1)  # one new label set through the text tower at once

    async def start(self) -> None:
        warmup = getattr(self.backend, "warmup", None)
        if self.limits.compiled and warmup is not None:
            # Compile every batch bucket before the model reports ready.
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._pool, warmup, self.limits.max_batch_size)
        self.batcher.start()
        # The default label set, so the first request pays no text-encoder cost.
        await self.label_embeddings(list(self.info.default_labels))

    async def stop(self) -> None:
        await self.batcher.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def ready(self) -> bool:
        return self.batcher.running

    @property
    def degraded(self) -> list[str]:
        return []  # one process: loaded and running, or not ready

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
        """The views of one video through the model. No deadline of its own: the caller's
        (the request's) cancels the wait, and a cancelled entry never reaches the model."""
        if not self.batcher.running:
            raise Unavailable("the model's batcher has stopped; this server needs a restart")
        self.metrics.queue_depth.set(self.batcher.depth + 1)
        try:
            views, entry = await self.batcher.submit(_Payload(frames, explain_regions), len(frames))
        except (QueueFull, QueueTimeout, BatchError) as err:
            raise from_batch_error(err) from None
        finally:
            self.metrics.queue_depth.set(self.batcher.depth)
        queue_s = entry.started - entry.enqueued
        self.metrics.stage.labels("queue").observe(queue_s)
        return Inference(views, queue_s, time.perf_counter() - entry.started)

    async def label_embeddings(self, labels: list[str]) -> np.ndarray:
        key = LabelCache.key(labels, self.info.label_templates)
        cached = self.label_cache.get(key)
        if cached is None:
            async with self._encoding:
                cached = self.label_cache.get(key)  # another request may have encoded it meanwhile
                if cached is None:
                    return await self._encode_into_cache(key, labels)
        self.metrics.label_cache.labels("hit").inc()
        return cached

    async def _encode_into_cache(self, key: tuple, labels: list[str]) -> np.ndarray:
        self.metrics.label_cache.labels("miss").inc()
        emb = stored_embeddings(self.backend, labels)
        if emb is None:
            loop = asyncio.get_running_loop()
            emb = np.concatenate([
                await loop.run_in_executor(self._pool, self.backend.encode_labels, chunk)
                for chunk in label_chunks(labels)
            ])  # fmt: skip
        self.label_cache.put(key, emb)
        return emb
