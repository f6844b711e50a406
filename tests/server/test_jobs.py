"""Jobs: long videos in the background. Submitted with 202 and a Location, polled and
followed as server-sent events, cancelled mid-way (the decode stops), bounded by quotas,
and durable: a server killed mid-job finds the job at its next start and finishes it,
and finished results outlive it."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests import videos

from .conftest import ROOT, ServerProcess
from .test_routes import InProcess, _settings
from .test_timeline import encode

FAULTS = ROOT / "tests" / "media" / "faults"
LONG = videos.long_video_mp4(40)  # 40 s at 1 fps: 19 windows of 4 s


@pytest.fixture
def slow_chunks(monkeypatch):
    """Decode workers started from here on take 0.4 s more per chunk of windows."""
    path = os.pathsep.join(filter(None, [str(FAULTS), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setenv("ALT_FAULT_CHUNK_DELAY_S", "0.4")


async def wait_for(c: httpx.AsyncClient, url: str, states: tuple[str, ...], timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = (await c.get(url)).json()
        if body["state"] in states:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never reached {states}: {body}")


def test_a_job_is_accepted_at_once_followed_and_answered_with_a_timeline(tmp_path):
    async def main():
        async with InProcess(_settings(jobs_dir=tmp_path, max_batch_size=2)) as c:
            r = await c.post("/jobs?labels=waving,jumping&window_s=4&windows=true",
                             content=LONG, headers={"content-type": "video/mp4"})  # fmt: skip
            assert r.status_code == 202, r.text
            url = r.headers["location"]
            events = await c.get(url + "/events")
            done = await wait_for(c, url, ("succeeded",))
            listed = (await c.get("/jobs")).json()["jobs"]
            gone = await c.delete(url)
            after = await c.get(url)
        return r.json(), events, done, listed, gone, after

    submitted, events, done, listed, gone, after = asyncio.run(main())
    assert submitted["state"] in ("queued", "running")
    assert submitted["links"]["events"].endswith("/events")
    assert done["progress"] == {"windows_done": 19, "windows_total": 19, "fraction": 1.0}
    assert done["attempts"] == 1 and done["labels"] == ["waving", "jumping"]
    result = done["result"]
    assert result["video"]["windows"] == len(result["windows"]) == 19
    assert {s["label"] for s in result["timeline"]} <= {"waving", "jumping"}
    # Events: the status on every change, progress while running, the final state last.
    kinds = [line.split(": ", 1)[1] for line in events.text.splitlines()
             if line.startswith("event: ")]  # fmt: skip
    assert events.headers["content-type"].startswith("text/event-stream")
    assert kinds[-1] == "succeeded" and "progress" in kinds
    assert [j["id"] for j in listed] == [done["id"]] and "result" not in listed[0]
    assert gone.status_code == 204 and after.status_code == 404
    assert after.json()["error"] == "not_found"
    assert not list((tmp_path / "spool").iterdir())  # the upload left with the job


def test_a_cancelled_job_stops_decoding_and_the_next_job_runs(tmp_path, slow_chunks):
    async def main():
        async with InProcess(_settings(jobs_dir=tmp_path, max_batch_size=2)) as c:
            r = await c.post("/jobs", content=LONG, headers={"content-type": "video/mp4"})
            url = r.headers["location"]
            deadline = time.monotonic() + 30
            while (await c.get(url)).json()["progress"]["windows_done"] == 0:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            cancelled = await c.delete(url)
            await asyncio.sleep(1.0)
            later = (await c.get(url)).json()
            nxt = await c.post("/jobs", content=LONG, headers={"content-type": "video/mp4"})
            finished = await wait_for(c, nxt.headers["location"], ("succeeded", "failed"))
        return cancelled, later, finished

    cancelled, later, finished = asyncio.run(main())
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert later["state"] == "cancelled"
    # The decode stopped with the cancel: a second later, no window more was done.
    assert later["progress"] == cancelled.json()["progress"]
    assert 0 < later["progress"]["windows_done"] < 19
    assert finished["state"] == "succeeded"
    assert not list((tmp_path / "spool").iterdir())


def test_jobs_are_bounded_and_their_errors_have_the_one_shape(tmp_path, slow_chunks):
    async def main():
        settings = _settings(jobs_dir=tmp_path, max_jobs=1, max_job_upload_mb=0.05,
                             max_job_duration_s=30)  # fmt: skip
        async with InProcess(settings) as c:
            too_big = await c.post("/jobs", content=b"\0" * 60_000,
                                   headers={"content-type": "video/mp4"})  # fmt: skip
            first = await c.post("/jobs", content=LONG, headers={"content-type": "video/mp4"})
            second = await c.post("/jobs", content=LONG, headers={"content-type": "video/mp4"})
            failed = await wait_for(c, first.headers["location"], ("failed", "succeeded"))
            junk = await c.post("/jobs", content=b"not a video at all",
                                headers={"content-type": "video/mp4"})  # fmt: skip
            junk_done = await wait_for(c, junk.headers["location"], ("failed", "succeeded"))
            missing = await c.get("/jobs/nope")
            bad_state = await c.get("/jobs?state=finished")
        return too_big, second, failed, junk_done, missing, bad_state

    too_big, second, failed, junk, missing, bad_state = asyncio.run(main())
    assert too_big.status_code == 413 and "ALT_MAX_JOB_UPLOAD_MB" in too_big.json()["detail"]
    assert second.status_code == 429 and second.headers["retry-after"] == "30"
    # 40 s over the jobs' limit of 30 s: failed with the reason, once its index was read.
    assert failed["state"] == "failed" and failed["error"]["error"] == "too_large"
    assert "30 s" in failed["error"]["detail"]
    assert junk["state"] == "failed" and junk["error"]["error"] == "unsupported_media"
    assert missing.status_code == 404 and bad_state.status_code == 422
    assert not list((tmp_path / "spool").iterdir())


@pytest.mark.slow
def test_a_server_killed_mid_job_finishes_it_after_a_restart_and_keeps_results(tmp_path):
    env = {
        "ALT_BACKEND": "fake",
        "ALT_DECODE_WORKERS": "1",
        "ALT_MAX_BATCH_SIZE": "2",
        "ALT_JOBS_DIR": str(tmp_path),
        "PYTHONPATH": str(FAULTS),
        "ALT_FAULT_CHUNK_DELAY_S": "0.3",
    }
    data = encode(videos.gradient_frames(250, 32, 32), fps=5)  # 50 s, 24 windows
    first = ServerProcess(env)
    try:
        quick = httpx.post(first.url + "/jobs?window_s=25", content=LONG, timeout=30,
                           headers={"content-type": "video/mp4"})  # fmt: skip
        done = None
        while done is None or done["state"] != "succeeded":
            done = httpx.get(first.url + quick.headers["location"]).json()
            time.sleep(0.1)
        r = httpx.post(first.url + "/jobs", content=data, timeout=30,
                       headers={"content-type": "video/mp4"})  # fmt: skip
        url = r.headers["location"]
        while httpx.get(first.url + url).json()["progress"]["windows_done"] < 4:
            time.sleep(0.05)
        first.proc.send_signal(signal.SIGKILL)  # no shutdown: the job stays "running"
        first.proc.wait(10)
    finally:
        first.stop()
    second = ServerProcess(env)
    try:
        deadline = time.monotonic() + 60
        while (job := httpx.get(second.url + url).json())["state"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
        kept = httpx.get(second.url + quick.headers["location"]).json()
    finally:
        second.stop()
    assert job["state"] == "succeeded" and job["attempts"] == 2
    assert job["progress"]["windows_done"] == job["progress"]["windows_total"] == 24
    assert kept["state"] == "succeeded" and kept["result"] == done["result"]
    assert not list(Path(tmp_path, "spool").iterdir())


def test_without_a_writable_jobs_folder_recognize_serves_and_jobs_say_why(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("a file where the jobs' folder should be")

    async def main():
        async with InProcess(_settings(jobs_dir=blocked / "jobs")) as c:
            job = await c.post("/jobs", content=LONG, headers={"content-type": "video/mp4"})
            plain = await c.post("/recognize", content=LONG,
                                 headers={"content-type": "video/mp4"})  # fmt: skip
        return job, plain

    job, plain = asyncio.run(main())
    assert plain.status_code == 200
    assert job.status_code == 503 and "ALT_JOBS_DIR" in job.json()["detail"]


def test_finished_jobs_expire_and_the_api_key_guards_the_job_routes(tmp_path):
    async def main():
        app = InProcess(_settings(jobs_dir=tmp_path, job_ttl_s=0.5, api_key="k3y"))
        async with app as c:
            key = {"authorization": "Bearer k3y"}
            refused = await c.post("/jobs", content=LONG, headers={"content-type": "video/mp4"})
            listing = await c.get("/jobs")
            r = await c.post("/jobs", content=LONG,
                             headers={"content-type": "video/mp4", **key})  # fmt: skip
            url = r.headers["location"]
            deadline = time.monotonic() + 30
            while (await c.get(url, headers=key)).json()["state"] != "succeeded":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.6)
            expired = await c.get(url, headers=key)
            app.app.state.jobs.sweep()  # what the periodic sweep does
            listed = (await c.get("/jobs", headers=key)).json()["jobs"]
        return refused, listing, expired, listed

    refused, listing, expired, listed = asyncio.run(main())
    assert refused.status_code == listing.status_code == 401
    assert expired.status_code == 404 and listed == []


def test_a_job_another_live_process_runs_is_not_taken_back(tmp_path):
    """Two runners on one database (Ray's ingress replicas of one machine): a starting one
    requeues only jobs whose lease lapsed, never a job the other is running."""
    import sqlite3

    from server.jobs.runner import LEASE_S, JobLimits, JobRunner
    from server.jobs.spool import Spool
    from server.jobs.store import Job, JobStore

    spool = Spool(tmp_path / "spool", 2**20, 2**24)
    a, b = JobStore(tmp_path / "jobs.db"), JobStore(tmp_path / "jobs.db")
    for name in ("live", "orphan"):
        video = spool.path(name)
        video.write_bytes(b"video")
        a.add(Job(name, "queued", time.time(), {}, str(video), 5))
    assert {a.claim().id, a.claim().id} == {"live", "orphan"}  # both running in process A
    with sqlite3.connect(tmp_path / "jobs.db") as db:  # A stopped renewing "orphan" (it died)
        db.execute(
            "UPDATE jobs SET heartbeat = ? WHERE id = 'orphan'", (time.time() - 2 * LEASE_S,)
        )
    a.beat(["live"])
    other = JobRunner(None, b, spool, None, JobLimits())  # type: ignore[arg-type]
    other.recover()
    assert b.get("live").state == "running" and b.get("orphan").state == "queued"
    assert b.get("orphan").attempts == 1
    a.close()
    b.close()
