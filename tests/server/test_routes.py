"""Routes, errors and admission in process: the HTTP app over the fake backend through
ASGI, with real decode worker processes and real video files. Seconds, not minutes."""

from __future__ import annotations

import asyncio
import os
import tempfile

import httpx
import numpy as np
import pytest

from server.api import create_app
from server.engine import ModelRunner
from server.engine.backends.fake import FakeBackend
from server.engine.limits import BatchLimits
from server.settings import Settings
from tests import videos


def _settings(**changes) -> Settings:
    changes.setdefault("jobs_dir", tempfile.mkdtemp(prefix="alt-jobs-"))
    return Settings(backend="fake", decode_workers=1, max_upload_mb=4, **changes)


class InProcess:
    """The app with its lifespan running, and an httpx client that calls it directly."""

    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)

    async def __aenter__(self) -> httpx.AsyncClient:
        self._life = self.app.router.lifespan_context(self.app)
        await self._life.__aenter__()
        transport = httpx.ASGITransport(app=self.app)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://app")
        return self.client

    async def __aexit__(self, *exc) -> None:
        await self.client.aclose()
        await self._life.__aexit__(None, None, None)


def run(coro):
    return asyncio.run(coro)


VIDEO = videos.keyframed_mp4(frames=40)


def test_an_answer_follows_the_pixels_and_the_labels_and_repeats_exactly():
    other = videos.faststart_mp4(frames=40)

    async def main():
        async with InProcess(_settings()) as c:
            a = await c.post(
                "/recognize?labels=waving,jumping,surfing", files={"video": ("a.mp4", VIDEO)}
            )
            again = await c.post("/recognize?labels=waving,jumping,surfing", content=VIDEO,
                                 headers={"content-type": "video/mp4"})  # fmt: skip
            b = await c.post(
                "/recognize?labels=waving,jumping,surfing", files={"video": ("b.mp4", other)}
            )
            named = await c.post(
                "/recognize?labels=@ucf101&top_k=3", files={"video": ("a.mp4", VIDEO)}
            )
            return a, again, b, named

    a, again, b, named = run(main())
    assert a.status_code == again.status_code == b.status_code == named.status_code == 200
    scores = lambda r: {x["label"]: x["score"] for x in r.json()["actions"]}  # noqa: E731
    assert scores(a) == scores(again)  # multipart and raw body: the same bytes, the same answer
    assert scores(a) != scores(b)  # other pixels, other scores
    assert set(scores(a)) == {"waving", "jumping", "surfing"}
    assert len(named.json()["actions"]) == 3
    assert named.json()["model"] == {"name": "fake", "version": "fake", "backend": "fake"}


@pytest.mark.parametrize(
    ("request_args", "status", "kind"),
    [
        ({"files": {"video": ("x.bin", os.urandom(4000))}}, 415, "unsupported_media"),
        ({"files": {"clip": ("a.mp4", VIDEO)}}, 422, "bad_request"),
        ({"content": b"", "headers": {"content-type": "video/mp4"}}, 422, "bad_request"),
        ({"content": VIDEO, "headers": {"content-type": "text/plain"}}, 415, "unsupported_media"),
        ({"files": {"video": ("a.mp4", VIDEO)}, "params": {"labels": "a,,b"}}, 422, "bad_request"),
        ({"files": {"video": ("a.mp4", VIDEO)}, "params": {"labels": "@nope"}}, 422, "bad_request"),
        ({"files": {"video": ("a.mp4", VIDEO)}, "params": {"top_k": "0"}}, 422, "bad_request"),
    ],
)
def test_bad_requests_get_the_one_error_shape(request_args, status, kind):
    async def main():
        async with InProcess(_settings()) as c:
            bad = await c.post("/recognize", **request_args)
            good = await c.post("/recognize", files={"video": ("a.mp4", VIDEO)})
            return bad, good

    bad, good = run(main())
    assert (bad.status_code, bad.json()["error"]) == (status, kind), bad.text
    assert set(bad.json()) == {"error", "detail"}
    assert good.status_code == 200  # and the app goes on serving


def test_unknown_paths_and_methods_get_the_error_shape():
    async def main():
        async with InProcess(_settings()) as c:
            return await c.get("/nope"), await c.get("/recognize")

    missing, wrong = run(main())
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    assert (wrong.status_code, wrong.json()["error"]) == (405, "method_not_allowed")


def test_a_refused_multipart_upload_closes_its_spooled_parts(monkeypatch):
    """A part over the spool's 1 MiB goes to a temporary file on disk. A refusal must close
    it itself: here every spool is also kept referenced, so that nothing else (CPython's
    reference counting) can close it in the app's place."""
    import tempfile

    import starlette.formparsers

    spools = []

    class Kept(tempfile.SpooledTemporaryFile):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            spools.append(self)

    monkeypatch.setattr(starlette.formparsers, "SpooledTemporaryFile", Kept)
    big = os.urandom(2 * 2**20)

    async def main():
        async with InProcess(_settings()) as c:
            wrong_field = await c.post("/recognize", files={"clip": ("a.mp4", big)})
            too_big = await c.post("/recognize", files={"video": ("a.mp4", big * 3)})
            good = await c.post("/recognize", files={"video": ("a.mp4", VIDEO)})
            return wrong_field, too_big, good

    wrong_field, too_big, good = run(main())
    assert (wrong_field.status_code, too_big.status_code, good.status_code) == (422, 413, 200)
    assert len(spools) >= 2 and all(f.closed for f in spools), [f.closed for f in spools]


def test_readiness_reports_the_admission_gate():
    async def main():
        async with InProcess(_settings(max_in_flight=3)) as c:
            return await c.get("/readyz")

    ready = run(main())
    assert ready.status_code == 200
    assert ready.json()["capacity"] == 3 and ready.json()["in_flight"] == 0


def test_a_label_set_encoded_once_counts_one_miss_however_many_ask_at_once():
    runner = ModelRunner(FakeBackend(), BatchLimits(label_cache_size=4))

    async def main():
        await runner.start()  # encodes the default set: one miss
        try:
            sets = await asyncio.gather(*[runner.label_embeddings(["a", "b"]) for _ in range(3)])
        finally:
            await runner.stop()
        return sets

    sets = run(main())
    for s in sets[1:]:
        np.testing.assert_array_equal(s, sets[0])
    counts = {
        m.labels["result"]: m.value
        for metric in runner.metrics.registry.collect()
        if metric.name == "alt_label_cache"
        for m in metric.samples
        if m.name.endswith("_total")
    }
    assert counts == {"miss": 2.0, "hit": 2.0}  # the default set and ["a", "b"]; two waited
