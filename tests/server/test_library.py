"""The video library: a video indexed once answers any label set's timeline exactly as a
job would and finds moments by text, without decoding; it refuses another model's library,
says why it is unavailable while /recognize serves and opens once the cause is gone,
answers bad questions in the one error shape, deletes what it stored, and a server killed
mid-index resumes after the last stored window with no duplicate."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import httpx
import numpy as np
import pytest

from server.engine.backends.fake import FakeBackend
from server.library import Fingerprint, Library, StoredWindows, moments
from server.settings import Settings
from tests import videos
from tests.conftest import DEFAULT_CHECKPOINT

from .conftest import ROOT, ServerProcess
from .test_jobs import wait_for
from .test_routes import InProcess
from .test_routes import _settings as _fake_settings
from .test_timeline import encode

FAULTS = ROOT / "tests" / "media" / "faults"
LONG = videos.long_video_mp4(40)  # 40 s at 1 fps: 19 windows of 4 s
MP4 = {"content-type": "video/mp4"}


def _settings(**changes) -> Settings:
    """The test settings (the fake model unless `backend` says otherwise)."""
    if changes.get("backend", "fake") == "fake":
        return _fake_settings(**changes)
    return Settings(decode_workers=1, max_upload_mb=4, **changes)


def _close(a: dict, b: dict, path: str = "") -> None:
    """Two answers equal, their floats within 1e-4."""
    assert type(a) is type(b) or {type(a), type(b)} <= {int, float}, path
    if isinstance(a, dict):
        assert a.keys() == b.keys(), (path, a.keys() ^ b.keys())
        for key in a:
            _close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float):
        assert a == pytest.approx(b, abs=1e-4), path
    else:
        assert a == b, path


async def _index(c: httpx.AsyncClient, data: bytes, query: str = "") -> dict:
    r = await c.post(f"/videos?{query}", content=data, headers=MP4)
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/videos/{r.json()['id']}"
    return await wait_for(c, r.headers["location"], ("succeeded", "failed"), 120)


async def _job(c: httpx.AsyncClient, data: bytes, query: str) -> dict:
    r = await c.post(f"/jobs?{query}", content=data, headers=MP4)
    return (await wait_for(c, r.headers["location"], ("succeeded",), 120))["result"]


def test_a_stored_video_answers_any_label_set_as_a_fresh_job_does(tmp_path, tiny_checkpoint):
    """The real (tiny) model: the timelines of a stored video, relabelled, equal the jobs'
    over the same video with the same labels and options, floors and window scores too."""
    questions = [
        "",  # the model's own labels
        "labels=waving,jumping,sitting&windows=true",
        "labels=a%20dog%20barking,a%20person%20cooking&min_similarity=0.2&smoothing=0",
        "labels=@kinetics400&top_k=3",
    ]

    async def main():
        settings = _settings(jobs_dir=tmp_path, backend="torch", checkpoint=tiny_checkpoint,
                             max_batch_size=4)  # fmt: skip
        async with InProcess(settings) as c:
            video = await _index(c, LONG, "name=long&window_s=6&stride_s=3")
            pairs = []
            for q in questions:
                stored = await c.get(f"/videos/{video['id']}/timeline?{q}")
                assert stored.status_code == 200, stored.text
                fresh = await _job(c, LONG, f"window_s=6&stride_s=3&{q}")
                pairs.append((stored.json(), fresh))
            listed = (await c.get("/videos")).json()
        return video, pairs, listed

    video, pairs, listed = asyncio.run(main())
    assert video["state"] == "succeeded" and video["name"] == "long"
    assert video["progress"]["windows_done"] == video["video"]["windows"] == 13
    assert listed["total"] == 1 and listed["videos"][0]["id"] == video["id"]
    for stored, fresh in pairs:
        assert stored["timings"]["decode_ms"] == 0.0  # nothing was decoded
        for answer in (stored, fresh):
            answer.pop("timings")
        _close(stored, fresh)
    assert {a["label"] for a in pairs[1][0]["actions"]} == {"waving", "jumping", "sitting"}
    assert len(pairs[1][0]["windows"]) == 13 and len(pairs[3][0]["actions"]) == 3


def _windows(sims: list[list[float]]) -> tuple[list[dict], StoredWindows, np.ndarray]:
    """Candidate rows of two videos whose single view has cosine `sims[v][w]` with the
    query e0, four aligned entities each, and the query."""
    rows, views = [], []
    for v, row_sims in enumerate(sims):
        for w, s in enumerate(row_sims):
            rows.append({"video_id": f"v{v}", "idx": w, "start_s": 2.0 * w, "end_s": 2.0 * w + 4})
            views.append([s, np.sqrt(1 - s * s), 0.0])
    n = len(rows)
    arrays = StoredWindows(
        start_s=np.array([r["start_s"] for r in rows]), end_s=np.array([r["end_s"] for r in rows]),
        times_s=np.array([[r["start_s"] + 1, r["start_s"] + 3] for r in rows]),
        views=np.array(views, np.float32)[:, None, :],
        entity_ids=np.tile(np.arange(4, dtype=np.int32), (n, 1))[:, None, :],
        entity_scores=np.tile(np.array([0.5, 0.3, 0.2, 0.0], np.float32), (n, 1))[:, None, :],
        # Frame 0 shows entities 0 and 1, frame 1 entities 2 and 0 (a bit per frame).
        seen=np.tile(np.array([0b11, 0b01, 0b10, 0], np.int64), (n, 1))[:, None, :],
    )  # fmt: skip
    return rows, arrays, np.array([1.0, 0.0, 0.0], np.float32)


def test_a_moment_grows_over_the_neighbours_that_match_about_as_well():
    info = FakeBackend().info  # logit scale 50: two nats are 0.04 of cosine
    rows, arrays, query = _windows([
        [0.10, 0.80, 0.78, 0.77, 0.50, 0.10, 0.60, 0.62],
        [0.79, 0.20],
    ])  # fmt: skip
    others = np.array([[0.0, 0.0, 1.0]], np.float32)
    found = moments(rows, arrays, query, others, info, k=10, min_similarity=None)
    spans = [(m["video_id"], m["start_s"], m["end_s"], m["windows"]) for m in found]
    # v0 windows 1-3 (0.80 to 0.77) are one moment; 0.50 ends it. v1's 0.79 is next; then
    # v0's 0.62 with its 0.60 neighbour; the 0.50 window overlaps the first moment by half
    # and is skipped; v0 window 0 also overlaps it and is skipped.
    assert spans[:3] == [("v0", 2.0, 10.0, 3), ("v1", 0.0, 4.0, 1), ("v0", 12.0, 18.0, 2)]
    assert [m["similarity"] for m in found[:3]] == pytest.approx([0.80, 0.79, 0.62], abs=1e-6)
    assert all(m["video_id"] != "v0" or m["start_s"] != 8.0 for m in found)
    first = found[0]
    assert [e["name"] for e in first["entities"]] == ["red", "green", "blue"]  # 0 scores out
    assert first["entities"][0]["times_s"] == [3.0, 5.0, 7.0, 9.0]  # entity 0 in both frames
    assert first["score"] == pytest.approx(
        np.exp(50 * 0.8) / (np.exp(50 * 0.8) + np.exp(0.0)), abs=1e-6
    )
    floor = moments(rows, arrays, query, others, info, k=10, min_similarity=0.7)
    assert [m["similarity"] >= 0.7 for m in floor] == [True, True]
    assert len(moments(rows, arrays, query, others, info, k=1, min_similarity=None)) == 1


def test_search_and_relabelling_answer_while_indexing_and_deleting_removes_everything(tmp_path):
    queries = ["jumping", "waving"]

    async def main():
        async with (app := InProcess(_settings(jobs_dir=tmp_path, max_batch_size=2))) as c:
            a = await _index(c, LONG, "name=a")
            other = encode(videos.gradient_frames(60, 32, 32), fps=5)  # 12 s
            b_post = await c.post("/videos?name=b&window_s=2", content=other, headers=MP4)
            # Asked while b is indexed: a answers (with whatever of b is stored by then, a
            # prefix of its windows), b's timeline is not ready (409) unless b is done.
            during = await c.get("/search", params={"q": queries, "k": 3})
            early = await c.get(b_post.headers["location"] + "/timeline")
            b = await wait_for(c, b_post.headers["location"], ("succeeded",), 60)
            both = (await c.get("/search", params={"q": "jumping", "k": 5})).json()
            only_b = (await c.get("/search", params={"q": "jumping", "video": b["id"]})).json()
            media = await c.get(f"/videos/{a['id']}/media")
            gone = await c.delete(f"/videos/{a['id']}")
            after = await c.get(f"/videos/{a['id']}")
            again = (await c.get("/search", params={"q": "jumping", "k": 5})).json()
            library: Library = app.app.state.library()
            rows_left = library.stored_windows(a["id"])
        return a, b, during, early, both, only_b, media, gone, after, again, rows_left

    a, b, during, early, both, only_b, media, gone, after, again, rows_left = asyncio.run(main())
    assert during.status_code == 200
    found = during.json()["results"]
    assert [m["query"] for m in found if m["video_id"] == a["id"]] == queries
    assert {m["video_id"] for m in found} <= {a["id"], b["id"]}
    asked = [queries.index(m["query"]) for m in found]
    assert asked == sorted(asked)  # query by query, in the order asked
    assert early.status_code in (200, 409)
    if early.status_code == 409:
        assert early.json()["error"] == "conflict" and "windows indexed" in early.json()["detail"]
    assert {m["video_id"] for m in both["results"]} == {a["id"], b["id"]}
    sims = [m["similarity"] for m in both["results"]]
    assert sims == sorted(sims, reverse=True)
    assert only_b["results"] and {m["video_id"] for m in only_b["results"]} == {b["id"]}
    assert all(m["name"] == "b" for m in only_b["results"])
    assert media.status_code == 200 and media.content == LONG
    assert gone.status_code == 204 and after.status_code == 404 and rows_left == 0
    assert {m["video_id"] for m in again["results"]} == {b["id"]}
    assert not (tmp_path / "library" / "media" / f"{a['id']}.video").exists()
    assert not list((tmp_path / "spool").iterdir())


def test_bad_questions_get_the_one_error_shape(tmp_path):
    async def main():
        settings = _settings(jobs_dir=tmp_path, max_query_chars=20, max_search_k=7)
        async with InProcess(settings) as c:
            ok = await _index(c, LONG)
            junk = await _index(c, b"not a video at all")
            answers = {
                "empty q": await c.get("/search?q=%20"),
                "no q": await c.get("/search"),
                "long q": await c.get("/search", params={"q": "x" * 21}),
                "k over": await c.get("/search?q=jumping&k=8"),
                "k zero": await c.get("/search?q=jumping&k=0"),
                "17 queries": await c.get("/search", params={"q": ["a"] * 17}),
                "unknown video": await c.get("/search?q=jumping&video=nope"),
                "odd id": await c.get("/search?q=jumping&video=x'%20OR%20'1'='1"),
                "get unknown": await c.get("/videos/0123"),
                "delete unknown": await c.delete("/videos/0123"),
                "timeline unknown": await c.get("/videos/0123/timeline"),
                "failed timeline": await c.get(f"/videos/{junk['id']}/timeline"),
                "bad labels": await c.get(f"/videos/{ok['id']}/timeline?labels=a,,b"),
                "bad set": await c.get(f"/videos/{ok['id']}/timeline?labels=@nope"),
                "bad smoothing": await c.get(f"/videos/{ok['id']}/timeline?smoothing=-1"),
                "bad page": await c.get("/videos?limit=0"),
            }
            fine = await c.get("/search?q=jumping&k=7")
        return junk, answers, fine

    junk, answers, fine = asyncio.run(main())
    assert junk["state"] == "failed" and junk["error"]["error"] == "unsupported_media"
    expected = {"empty q": 422, "no q": 422, "long q": 422, "k over": 422, "k zero": 422,
                "17 queries": 422, "unknown video": 404, "odd id": 404, "get unknown": 404,
                "delete unknown": 404, "timeline unknown": 404, "failed timeline": 409,
                "bad labels": 422, "bad set": 422, "bad smoothing": 422, "bad page": 422}  # fmt: skip
    assert {name: r.status_code for name, r in answers.items()} == expected
    for name, r in answers.items():
        assert set(r.json()) == {"error", "detail"}, name
    assert "ALT_MAX_SEARCH_K" in answers["k over"].json()["detail"]
    assert "failed" in answers["failed timeline"].json()["detail"]
    assert fine.status_code == 200 and len(fine.json()["results"]) >= 1


def test_another_models_library_is_refused_and_a_broken_one_leaves_recognize_serving(
    tmp_path, tiny_checkpoint
):
    async def main():
        library = tmp_path / "lib"
        first = InProcess(_settings(jobs_dir=tmp_path / "a", library=str(library)))
        async with first as c:
            # Opened at the first request that needs it: not at start, not by /recognize.
            assert (await c.post("/recognize", content=LONG, headers=MP4)).status_code == 200
            unopened = first.app.state.library.opened is None and not library.exists()
            built = await _index(c, LONG)
        torch = _settings(jobs_dir=tmp_path / "b", library=str(library), backend="torch",
                          checkpoint=tiny_checkpoint)  # fmt: skip
        async with InProcess(torch) as c:
            other = {
                "search": await c.get("/search?q=jumping"),
                "list": await c.get("/videos"),
                "timeline": await c.get(f"/videos/{built['id']}/timeline"),
                "add": await c.post("/videos", content=LONG, headers=MP4),
            }
            served = await c.post("/recognize", content=LONG, headers=MP4)
        blocked = tmp_path / "file"
        blocked.write_text("a file where the library's folder should be")
        server = InProcess(_settings(jobs_dir=tmp_path / "c", library=str(blocked / "lib")))
        async with server as c:
            broken = await c.get("/search?q=jumping")
            served_too = await c.post("/recognize", content=LONG, headers=MP4)
            jobs_still = await c.post("/jobs", content=LONG, headers=MP4)
            # The cause removed, the library opens at a later request, with no restart.
            blocked.unlink()
            still = await c.get("/search?q=jumping")  # within the retry interval
            server.app.state.library.retry_s = 0.0
            healed = await c.get("/search?q=jumping")
        return unopened, built, other, served, broken, served_too, jobs_still, still, healed

    unopened, built, other, served, broken, served_too, jobs_still, still, healed = asyncio.run(
        main()
    )
    assert unopened and built["state"] == "succeeded"
    for name, r in other.items():
        assert r.status_code == 409, name
        body = r.json()
        assert body["error"] == "model_mismatch"
        # Both models are named: the library's builder and the server's.
        assert "fake" in body["detail"] and "tiny" in body["detail"].lower(), body
    assert served.status_code == 200 and served_too.status_code == 200
    assert broken.status_code == 503 and "ALT_LIBRARY" in broken.json()["detail"]
    assert jobs_still.status_code == 202
    assert still.json() == broken.json()
    assert healed.status_code == 200 and healed.json()["results"] == []


def test_a_library_refuses_a_model_of_another_digest_dtype_or_architecture(tmp_path):
    base = Fingerprint("m v1", "ViT-B-16", "fp32", "0123456789abcdef")
    Library(str(tmp_path), base)
    Library(str(tmp_path), base)  # the same model opens it again
    for other in (
        Fingerprint("m v1", "ViT-B-16", "fp32", "fedcba9876543210"),
        Fingerprint("m v1", "ViT-B-16", "bf16", "0123456789abcdef"),
        Fingerprint("m v1", "ViT-L-14", "fp32", "0123456789abcdef"),
    ):
        with pytest.raises(Exception, match="built by m v1") as err:
            Library(str(tmp_path), other)
        assert type(err.value).__name__ == "ModelMismatch"


@pytest.fixture
def s3(monkeypatch):
    """A local S3-compatible server on loopback (moto) with a bucket, and the environment
    an S3 client reads (as a deployment sets it)."""
    boto3 = pytest.importorskip("boto3", reason="moto[server] is a dev dependency")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_REGION": "us-east-1", "AWS_ENDPOINT": f"http://{host}:{port}",
           "AWS_ALLOW_HTTP": "true"}  # fmt: skip
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    boto3.client("s3", endpoint_url=env["AWS_ENDPOINT"]).create_bucket(Bucket="alt")
    yield "s3://alt/library"
    server.stop()


def test_two_servers_share_one_library_on_object_storage(tmp_path, s3):
    async def main():
        async with InProcess(_settings(jobs_dir=tmp_path / "a", library=s3)) as a:
            video = await _index(a, LONG, "name=shared")
            here = (await a.get(f"/videos/{video['id']}/timeline?labels=x,y")).json()
        async with InProcess(_settings(jobs_dir=tmp_path / "b", library=s3)) as b:
            there = (await b.get(f"/videos/{video['id']}/timeline?labels=x,y")).json()
            found = (await b.get("/search?q=x&k=1")).json()["results"]
            listed = (await b.get("/videos")).json()
        return video, here, there, found, listed

    video, here, there, found, listed = asyncio.run(main())
    assert video["state"] == "succeeded" and "media" not in video["links"]  # no file kept
    for answer in (here, there):
        answer.pop("timings")
    _close(here, there)
    assert [m["video_id"] for m in found] == [video["id"]] and found[0]["name"] == "shared"
    assert [v["id"] for v in listed["videos"]] == [video["id"]]
    assert not list((tmp_path / "a" / "spool").iterdir())  # the upload was not kept


@pytest.mark.slow
def test_a_server_killed_mid_index_resumes_after_the_last_stored_window(tmp_path):
    log = tmp_path / "firsts.log"
    env = {
        "ALT_BACKEND": "fake",
        "ALT_DECODE_WORKERS": "1",
        "ALT_MAX_BATCH_SIZE": "2",
        "ALT_JOBS_DIR": str(tmp_path),
        "PYTHONPATH": str(FAULTS),
        "ALT_FAULT_CHUNK_DELAY_S": "0.3",
        "ALT_FAULT_FIRST_LOG": str(log),
    }
    data = encode(videos.gradient_frames(250, 32, 32), fps=5)  # 50 s, 24 windows
    first = ServerProcess(env)
    try:
        r = httpx.post(first.url + "/videos?name=g", content=data, headers=MP4, timeout=30)
        url = r.headers["location"]
        while (seen := httpx.get(first.url + url).json())["progress"]["windows_done"] < 6:
            time.sleep(0.05)
        # Searching while it indexes.
        during = httpx.get(first.url + "/search?q=jumping", timeout=30)
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
    finally:
        first.stop()
    second = ServerProcess(env)
    try:
        deadline = time.monotonic() + 90
        while (video := httpx.get(second.url + url).json())["state"] != "succeeded":
            assert video["state"] in ("queued", "running"), video
            assert time.monotonic() < deadline, video
            time.sleep(0.1)
        stored = httpx.get(second.url + url + "/timeline?windows=true", timeout=30).json()
        job = httpx.post(second.url + "/jobs?windows=true", content=data, headers=MP4, timeout=30)
        while (fresh := httpx.get(second.url + job.headers["location"]).json())["state"] not in (
            "succeeded", "failed"
        ):  # fmt: skip
            time.sleep(0.1)
    finally:
        second.stop()
    assert during.status_code == 200
    starts = [int(line) for line in log.read_text().split()]
    # The first run started at window 0; the run after the kill (and the job's) at the first
    # window not stored, at least the windows the first run had reported.
    assert starts[0] == 0 and starts[1] >= seen["progress"]["windows_done"] >= 6, starts
    assert starts[2] == 0  # the fresh job
    assert video["progress"] == {"windows_done": 24, "windows_total": 24, "fraction": 1.0}
    library = Library(str(tmp_path / "library"), _fake_fingerprint())
    table = library._windows.to_arrow()  # noqa: SLF001 - the rows themselves, for duplicates
    assert sorted(table.column("idx").to_pylist()) == list(range(24))
    for answer in (stored, fresh["result"]):
        answer.pop("timings")
    _close(stored, fresh["result"])


def _fake_fingerprint() -> Fingerprint:
    from server.library import of_model

    info = FakeBackend().info
    return of_model(info.name, info.version, info.clip_arch, info.dtype, "fake", None)


# ---- the shipped default: moments of actions -------------------------------------------


@pytest.mark.slow
def test_the_default_model_finds_each_action_of_a_long_video_by_its_name(tmp_path):
    from training.generate import render_timeline

    labels = json.loads((DEFAULT_CHECKPOINT / "labels.json").read_text())
    acts = [str(a) for a in np.random.default_rng(7).choice(labels, 8, replace=False)]
    frames, truth = render_timeline(acts, 8.0, seed=77)

    async def main():
        settings = _settings(jobs_dir=tmp_path, backend="torch", checkpoint=DEFAULT_CHECKPOINT)
        async with InProcess(settings) as c:
            video = await _index(c, encode(frames))
            found = (await c.get("/search", params={"q": acts, "k": 1})).json()["results"]
        return video, found

    video, found = asyncio.run(main())
    assert video["state"] == "succeeded" and len(found) == len(acts)
    # The best moment of each action's name lies in its stretch (measured: 7 of 8; the
    # eighth, "touching toes", peaks as high in a neighbouring action's window).
    inside = [s <= (m["start_s"] + m["end_s"]) / 2 < e for m, (s, e, _) in zip(found, truth)]
    assert sum(inside) >= 6, list(zip(acts, inside))
    assert all(m["entities"] for m in found)
