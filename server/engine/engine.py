"""The recognition engine: decode, batch on the model, answer.

Two parts meet here. A *decoder* turns an upload into frames (`media.pool.DecodePool`:
worker processes on this machine). A *model* batches clips across requests and encodes
label sets (`ModelRunner`). The `Engine` joins them for one video and builds the answer.
On a Ray cluster the same Engine runs with remote decoders and models (`server.ray_serve`),
so the answer, its errors and its timings are the same wherever the parts run.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import numpy as np

from media import DecodeJob, VideoInfo
from media.pool import DecodePool

from .answer import build_answer
from .backends import Backend, ModelInfo
from .errors import TimedOut
from .limits import BatchLimits, DecodeLimits
from .metrics import Metrics
from .runner import Inference, ModelRunner
from .schemas import Explain, Recognition


class Decoder(Protocol):
    busy: int  # decodes running
    waiting: int  # decodes waiting for a worker

    async def decode(self, data: bytes, job: DecodeJob) -> tuple[np.ndarray, VideoInfo]: ...

    def close(self) -> None: ...


class Model(Protocol):
    @property
    def info(self) -> ModelInfo: ...

    @property
    def ready(self) -> bool: ...

    @property
    def depth(self) -> int: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def infer(self, frames: np.ndarray, explain_regions: bool) -> Inference: ...

    async def label_embeddings(self, labels: list[str]) -> np.ndarray: ...


def decode_pool(limits: DecodeLimits, job: DecodeJob, workers: int | None = None) -> DecodePool:
    """Worker processes on this machine, with slots sized for `job`."""
    return DecodePool(
        workers or limits.workers,
        job.nbytes,
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
    ) -> None:
        self.model = model
        self.decoder = decoder
        self.decode_limits = decode
        self.request_timeout_s = request_timeout_s
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
    ) -> Engine:
        """The model in this process and decoding in worker processes of this machine."""
        return cls(
            ModelRunner(backend, batch, metrics),
            decode_pool(decode, decode.job(backend.info.clip_shape)),
            decode,
            request_timeout_s,
            metrics,
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
