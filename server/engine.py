"""The recognition engine: decode in worker processes, batch on the model worker, explain."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from media import Limits
from media.pool import DecodePool
from media.worker import Job

from . import explain as ex
from .admission import Admission
from .backends import Backend, ClipResult
from .batcher import Batcher, BatchError, BatchStats, QueueFull, QueueTimeout
from .errors import BatchFailed, Overloaded, TimedOut
from .labels import LabelCache
from .metrics import Metrics
from .schemas import Explain
from .settings import Settings


@dataclass
class _Payload:
    frames: np.ndarray  # (V, T, 3, H, W) uint8
    explain_regions: bool


_LABEL_CHUNK = 64  # labels per text-encoder call


class Engine:
    def __init__(self, backend: Backend, settings: Settings, metrics: Metrics) -> None:
        self.backend = backend
        self.info = backend.info
        self.settings = settings
        self.metrics = metrics
        limits = Limits(max_pixels=settings.max_pixels, max_duration_s=settings.max_duration_s)
        info = self.info
        self.job = Job(
            info.frames, info.image_size, info.clips, info.crops, limits,
            threads=settings.decode_threads, device=settings.decode_device,
        )  # fmt: skip
        # One model worker: forward passes never overlap; decoding has its own processes.
        self._model_pool = ThreadPoolExecutor(1, thread_name_prefix="alt-model")
        self.decoder = DecodePool(
            settings.decode_workers,
            self.job.nbytes,
            timeout_s=settings.decode_timeout_s,
            nice=settings.decode_nice,
            memory_mb=settings.decode_memory_mb,
        )
        self.batcher = Batcher(
            self._run_batch,
            self._model_pool,
            max_batch_size=settings.max_batch_size,
            max_wait_ms=settings.max_wait_ms,
            max_queue=settings.max_queue,
            on_batch=self._on_batch,
        )
        self.label_cache = LabelCache(settings.label_cache_size)
        self.admission = Admission(settings.max_queue, int(settings.max_uploads_mb * 2**20))
        self.admit = self.admission.admit
        self._encoding = asyncio.Semaphore(1)  # one new label set through the text tower at once

    # ---- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        warmup = getattr(self.backend, "warmup", None)
        if self.settings.compile and warmup is not None:
            # Compile every batch bucket before the server reports ready.
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._model_pool, warmup, self.settings.max_batch_size)
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
        self.decoder.close()
        self._model_pool.shutdown(wait=False, cancel_futures=True)

    @property
    def ready(self) -> bool:
        return self.batcher.running

    # ---- model work --------------------------------------------------------------------

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
            # In chunks, so the model worker runs video batches between them.
            parts = []
            for i in range(0, len(labels), _LABEL_CHUNK):
                chunk = labels[i : i + _LABEL_CHUNK]
                parts.append(
                    await loop.run_in_executor(self._model_pool, self.backend.encode_labels, chunk)
                )
        emb = np.concatenate(parts)
        self.label_cache.put(key, emb)
        return emb

    # ---- one request -------------------------------------------------------------------

    async def recognize(
        self, data: bytes, labels: list[str] | None, top_k: int, explain: Explain
    ) -> dict:
        """The whole answer within `request_timeout_s`: decoding, label encoding, the model."""
        limit = self.settings.request_timeout_s
        try:
            async with asyncio.timeout(limit):
                return await self._recognize(data, labels, top_k, explain)
        except TimeoutError:
            raise TimedOut(f"no answer within {limit:g} s (ALT_REQUEST_TIMEOUT_S)") from None

    async def _recognize(
        self, data: bytes, labels: list[str] | None, top_k: int, explain: Explain
    ) -> dict:
        t0 = time.perf_counter()
        info = self.info
        frames, video = await self.decoder.decode(data, self.job)
        del data  # the upload is not needed any more
        t_decoded = time.perf_counter()
        self.metrics.stage.labels("decode").observe(t_decoded - t0)

        label_set = labels or list(info.default_labels)
        label_emb = await self.label_embeddings(label_set)

        payload = _Payload(frames, explain == Explain.regions)
        self.metrics.queue_depth.set(self.batcher.depth + 1)
        try:
            views, job = await self.batcher.submit(
                payload, len(frames), self.settings.request_timeout_s
            )
        except QueueFull as err:
            raise Overloaded(str(err), headers={"Retry-After": "1"}) from None
        except QueueTimeout as err:
            raise TimedOut(str(err)) from None
        except BatchError as err:
            raise BatchFailed(f"inference failed: {err}") from None
        finally:
            self.metrics.queue_depth.set(self.batcher.depth)
        t_done = time.perf_counter()
        queue_s = job.started - job.enqueued
        self.metrics.stage.labels("queue").observe(queue_s)

        embeddings = np.stack([v.embedding for v in views])
        answer: dict = {
            "actions": ex.rank_actions(embeddings, label_emb, label_set, info.logit_scale, top_k),
            "video": {
                "duration_s": video.duration_s,
                "fps": video.fps,
                "width": video.width,
                "height": video.height,
                "frames": video.num_frames,
                "rotation": video.rotation,
                "frames_sampled": list(video.sampled[0]),
                "times_s": video.timestamps(0),
                "crop": ex.center_crop_box(video.width, video.height),
            },
            "model": {"name": info.name, "version": info.version, "backend": info.backend},
            "warnings": list(video.warnings),
        }
        if explain != Explain.none:
            entities = ex.aligned_entities(views, info.entity_names, k=len(views[0].entity_ids))
            if explain == Explain.regions:
                answer["regions"] = ex.region_maps(
                    views[0], entities, info.grid, video.timestamps(0)
                )
            answer["entities"] = [{k: e[k] for k in ("name", "score", "frames")} for e in entities]
        total = time.perf_counter() - t0
        self.metrics.stage.labels("total").observe(total)
        answer["timings"] = {
            "decode_ms": round((t_decoded - t0) * 1000, 2),
            "queue_ms": round(queue_s * 1000, 2),
            "inference_ms": round((t_done - job.started) * 1000, 2),
            "total_ms": round(total * 1000, 2),
        }
        return answer
