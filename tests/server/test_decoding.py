"""Decoding as the server does it, over real HTTP: worker faults, time limits, odd inputs."""

from __future__ import annotations

import threading

import httpx
import pytest

from tests import videos
from tests.media.conftest import FAULTS
from tests.server.conftest import ServerProcess


@pytest.fixture(scope="module")
def faulty(tiny_checkpoint):
    """A server whose decode workers load the fault injection (b"ABORT", b"HANG")."""
    srv = ServerProcess({
        "ALT_CHECKPOINT": str(tiny_checkpoint),
        "ALT_DECODE_WORKERS": "2",
        "ALT_DECODE_TIMEOUT_S": "2",
        "ALT_MAX_WAIT_MS": "0",
        "PYTHONPATH": str(FAULTS),
    })  # fmt: skip
    yield srv
    srv.stop()


def _post(url: str, data: bytes, ctype: str = "video/mp4") -> httpx.Response:
    return httpx.post(url + "/recognize", content=data, headers={"content-type": ctype}, timeout=60)


def test_a_crashing_decoder_fails_only_its_request(faulty, video_dir):
    good = (video_dir / "clip0.mp4").read_bytes()
    results = {}

    def send(name, data):
        results[name] = _post(faulty.url, data)

    threads = [threading.Thread(target=send, args=(f"good{i}", good)) for i in range(3)]
    threads.append(threading.Thread(target=send, args=("crash", b"ABORT" + good)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    crash = results.pop("crash")
    assert crash.status_code == 422, crash.text
    assert crash.json() == {
        "error": "decode_failed",
        "detail": "the decoder crashed on this file (signal SIGABRT)",
    }
    assert all(r.status_code == 200 for r in results.values())
    assert faulty.alive and httpx.get(faulty.url + "/readyz").status_code == 200
    assert _post(faulty.url, good).status_code == 200  # the replaced worker decodes


def test_a_hanging_decoder_is_cut_at_the_limit_while_others_are_served(faulty, video_dir):
    good = (video_dir / "clip1.mp4").read_bytes()
    hung = {}
    thread = threading.Thread(target=lambda: hung.update(r=_post(faulty.url, b"HANG" + good)))
    thread.start()
    served = _post(faulty.url, good)  # the other worker is free
    thread.join()
    assert served.status_code == 200
    assert hung["r"].status_code == 422
    assert "longer than the limit of 2 s" in hung["r"].json()["detail"]
    assert httpx.get(faulty.url + "/readyz").status_code == 200


def test_an_animated_gif_is_recognized_and_a_still_image_refused(faulty):
    gif = _post(faulty.url, videos.animated_gif(frames=8), "image/gif")
    assert gif.status_code == 200, gif.text
    assert gif.json()["video"]["frames"] == 8 and gif.json()["actions"]
    still = _post(faulty.url, videos.png_image(), "application/octet-stream")
    assert still.status_code == 415 and "still image" in still.json()["detail"]


def test_a_truncated_upload_is_answered_with_warnings(faulty):
    data = videos.faststart_mp4(frames=100)
    resp = _post(faulty.url, data[: int(len(data) * 0.7)])
    assert resp.status_code == 200, resp.text
    body = resp.json()
    held = body["video"]["frames"]
    assert held < 100 and max(body["video"]["frames_sampled"]) < held
    assert f"holds {held}" in body["warnings"][0] and "announces 100" in body["warnings"][0]
    whole = _post(faulty.url, data).json()
    assert whole["warnings"] == [] and whole["video"]["frames"] == 100


def test_a_seekable_video_is_served_by_seeking(faulty):
    data = videos.keyframed_mp4(frames=200, keyframe_every=10)
    resp = _post(faulty.url, data)
    assert resp.status_code == 200
    sampled = resp.json()["video"]["frames_sampled"]
    assert len(sampled) == 4 and sampled == sorted(sampled) and sampled[-1] > 150
