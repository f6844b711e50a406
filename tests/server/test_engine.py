"""The engine's behaviour where it is easy to miss: a stopped batcher, shutdown with work
queued, several views per video, the label cache's eviction."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest

from media import decode_clip
from model import preset
from server.api import create_app
from server.engine.backends.torch_backend import TorchBackend
from server.engine.batcher import Batcher, BatchError
from server.engine.labels import LabelCache
from server.engine.schemas import Explain
from server.settings import Settings
from tests.fixtures import save_tiny_checkpoint
from tests.server.test_faults import ThreadServer


def test_a_dead_batcher_makes_readyz_503_and_requests_fail_fast(tiny_checkpoint, video_dir):
    settings = Settings(checkpoint=tiny_checkpoint, request_timeout_s=30)
    app = create_app(settings)
    with ThreadServer(app) as srv:
        task = app.state.engine.model.batcher._task
        task.get_loop().call_soon_threadsafe(task.cancel)  # the fault: the loop dies
        for _ in range(50):
            if task.done():
                break
            asyncio.run(asyncio.sleep(0.05))
        ready = httpx.get(srv.url + "/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "not ready"
        video = (video_dir / "clip0.mp4").read_bytes()
        r = httpx.post(srv.url + "/recognize", files={"video": ("a.mp4", video)}, timeout=10)
        assert r.status_code == 503 and r.json()["error"] == "unavailable"
        assert httpx.get(srv.url + "/healthz").status_code == 200  # the process lives on


def test_stopping_the_batcher_fails_every_queued_job():
    async def scenario() -> list[BaseException | None]:
        from concurrent.futures import ThreadPoolExecutor

        release = asyncio.Event()
        loop = asyncio.get_running_loop()

        def slow(payloads):  # the first batch holds the model until shutdown
            asyncio.run_coroutine_threadsafe(release.wait(), loop).result(5)
            return payloads

        batcher = Batcher(slow, ThreadPoolExecutor(1), max_batch_size=1, max_wait_ms=1)
        batcher.start()
        jobs = [asyncio.create_task(batcher.submit(i, 1, 30)) for i in range(4)]
        await asyncio.sleep(0.2)
        stopping = asyncio.create_task(batcher.stop())
        await asyncio.sleep(0.1)
        release.set()
        await stopping
        return [j.exception() if not j.cancelled() else None for j in await _settled(jobs)]

    async def _settled(tasks):
        await asyncio.wait(tasks, timeout=5)
        return tasks

    errors = asyncio.run(scenario())
    assert len(errors) == 4
    assert all(isinstance(e, BatchError) and "shutting down" in str(e) for e in errors), errors


def test_several_views_per_video_are_averaged(tmp_path, video_dir):
    config = preset("tiny").replace(alpha_init=0.5, test_clips=3, test_crops=1)
    ckpt = save_tiny_checkpoint(tmp_path / "ckpt", config)
    settings = Settings(checkpoint=ckpt)
    backend = TorchBackend(ckpt)
    data = (video_dir / "clip2.mp4").read_bytes()

    async def run():
        engine = settings.in_process_engine(backend)
        await engine.start()
        try:
            return await engine.recognize(
                data, ["juggling", "surfing", "knitting"], 3, Explain.entities
            )
        finally:
            await engine.stop()

    answer = asyncio.run(run())
    # Independently: the three temporal views, each scored, softmax averaged.
    frames, _ = decode_clip(data, config.frames, config.image_size, clips=3)
    views = backend.encode_video(frames, False)
    assert len(views) == 3
    emb = np.stack([v.embedding for v in views])
    labels = backend.encode_labels(["juggling", "surfing", "knitting"])
    logits = backend.info.logit_scale * emb @ labels.T
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs = (probs / probs.sum(1, keepdims=True)).mean(0)
    got = {a.label: a.score for a in answer.actions}
    for i, label in enumerate(["juggling", "surfing", "knitting"]):
        assert got[label] == pytest.approx(float(probs[i]), abs=1e-5)
    # The views differ, so averaging is not a single view's answer.
    assert np.abs(emb[0] - emb[2]).max() > 1e-4


def test_the_label_cache_evicts_the_least_recently_used_set():
    cache = LabelCache(2)
    a, b, c = (LabelCache.key([x], ["{}"]) for x in "abc")
    cache.put(a, np.zeros(1))
    cache.put(b, np.ones(1))
    assert cache.get(a) is not None  # a is now the most recent
    cache.put(c, np.full(1, 2.0))
    assert len(cache) == 2 and cache.get(b) is None
    assert cache.get(a) is not None and cache.get(c)[0] == 2.0
