"""A hostile client over real HTTP: bombs, admission, time limits, disconnects, stalls, and
one error shape for everything. After each, the server is still ready and within memory."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests import videos
from tests.media.conftest import FAULTS
from tests.server.conftest import ServerProcess

RSS_LIMIT_MB = 1500  # the server process; its decode workers are capped separately


@pytest.fixture(scope="module")
def hostile(tiny_checkpoint):
    srv = ServerProcess({
        "ALT_CHECKPOINT": str(tiny_checkpoint),
        "ALT_DECODE_WORKERS": "2",
        "ALT_MAX_IN_FLIGHT": "3",
        "ALT_REQUEST_TIMEOUT_S": "2.5",
        "ALT_BODY_TIMEOUT_S": "1",
        "ALT_MAX_UPLOAD_MB": "2",
        "ALT_MAX_LABELS": "100",
        "ALT_MAX_WAIT_MS": "0",
        "PYTHONPATH": str(FAULTS),
    })  # fmt: skip
    yield srv
    srv.stop()


def _post(srv, data: bytes, timeout: float = 60, **params) -> httpx.Response:
    return httpx.post(srv.url + "/recognize", content=data, params=params, timeout=timeout,
                      headers={"content-type": "application/octet-stream"})  # fmt: skip


def _rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _workers(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _ready(srv) -> dict:
    r = httpx.get(srv.url + "/readyz")
    return {"status_code": r.status_code, **r.json()}


def _wait_idle(srv, seconds: float = 10) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        state = _ready(srv)
        if state["in_flight"] == 0 and state["decoding"] == 0:
            return state
        time.sleep(0.05)
    return _ready(srv)


BOMBS = {
    # name: (file, statuses allowed)
    "8000x2 frames": (videos.wide_mkv, {200}),
    "static 4K frames, raw H.264 without duration": (videos.static_4k_h264, {200}),
    "header 160x120, frames 4096x2304": (videos.size_changing_h264, {413}),
    "frame size changes mid-stream": (
        lambda: videos.size_changing_h264(second=(96, 128)),
        {200},
    ),
    "65536x1 frames": (videos.needle_mkv, {200}),
    "2000x2 frames": (lambda: videos.wide_mkv(2000, 2), {200}),
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_small_bombs_get_a_bounded_answer(hostile, name):
    make, allowed = BOMBS[name]
    data = make()
    assert len(data) < 200_000
    resp = _post(hostile, data)
    assert resp.status_code in allowed, resp.text
    assert set(resp.json()) >= ({"actions"} if resp.status_code == 200 else {"error", "detail"})
    assert _wait_idle(hostile)["status_code"] == 200
    assert _rss_mb(hostile.proc.pid) < RSS_LIMIT_MB
    for pid in _workers(hostile.proc.pid):  # each worker's peak, whatever it decoded
        assert _rss_mb(pid, "VmHWM") < 1024, (pid, _rss_mb(pid, "VmHWM"))


def test_admission_is_decided_before_any_work(hostile, video_dir):
    good = (video_dir / "clip0.mp4").read_bytes()
    stuck = [threading.Thread(target=_post, args=(hostile, b"HANG" + good)) for _ in range(3)]
    for t in stuck:
        t.start()
    deadline = time.monotonic() + 5
    while _ready(hostile)["in_flight"] < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    state = _ready(hostile)
    assert state["status_code"] == 503 and state["status"] == "saturated"
    t0 = time.monotonic()
    refused = _post(hostile, good)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"] == "overloaded"
    assert time.monotonic() - t0 < 1.0  # at once: nothing was read or decoded for it
    for t in stuck:
        t.join()
    assert _wait_idle(hostile)["status_code"] == 200
    assert _post(hostile, good).status_code == 200


def test_the_request_timeout_covers_decoding(hostile, video_dir):
    good = (video_dir / "clip1.mp4").read_bytes()
    t0 = time.monotonic()
    resp = _post(hostile, b"HANG" + good)
    assert resp.status_code == 504 and "2.5 s" in resp.json()["detail"]
    assert time.monotonic() - t0 < 6
    assert _wait_idle(hostile)["decoding"] == 0  # the hung worker was killed and replaced
    assert _post(hostile, good).status_code == 200


def test_a_client_that_leaves_cancels_its_decode(hostile, video_dir):
    good = (video_dir / "clip2.mp4").read_bytes()
    with pytest.raises(httpx.ReadTimeout):
        _post(hostile, b"HANG" + good, timeout=0.5)
    t0 = time.monotonic()
    state = _wait_idle(hostile, 5)
    # Freed well before the 2.5 s request timeout would have freed it.
    assert state["decoding"] == 0 and state["in_flight"] == 0
    assert time.monotonic() - t0 < 1.5
    assert _post(hostile, good).status_code == 200


def test_a_stalled_upload_is_cut(hostile):
    with socket.create_connection(("127.0.0.1", hostile.port), timeout=10) as s:
        s.sendall(
            b"POST /recognize HTTP/1.1\r\nHost: x\r\nContent-Type: video/mp4\r\n"
            b"Content-Length: 100000\r\n\r\n" + b"\0" * 1000
        )
        t0 = time.monotonic()
        answer = b""
        while chunk := s.recv(4096):  # the server closes the connection after answering
            answer += chunk
        waited = time.monotonic() - t0
        answer = answer.decode()
    assert answer.startswith("HTTP/1.1 408") and '"request_timeout"' in answer
    assert waited < 5
    assert _wait_idle(hostile)["status_code"] == 200


def test_every_error_has_one_shape_and_is_documented(hostile, video_dir):
    good = (video_dir / "clip0.mp4").read_bytes()
    answers = {
        404: httpx.get(hostile.url + "/nowhere"),
        405: httpx.get(hostile.url + "/recognize"),
        422: _post(hostile, good, top_k=0),
        413: _post(hostile, b"\0" * (3 * 2**20)),
        415: _post(hostile, b"plain text, not a video"),
    }
    answers[422.1] = _post(hostile, good, explain="REGIONS")
    answers[404.1] = httpx.get(hostile.url + "/samples/none.mp4")
    for status, resp in answers.items():
        assert resp.status_code == int(status), resp.text
        body = resp.json()
        assert set(body) == {"error", "detail"} and body["detail"], body
    assert "top_k" in answers[422].json()["detail"]
    schema = httpx.get(hostile.url + "/openapi.json").json()
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            for code in ("404", "422", "429", "500"):
                ref = op["responses"][code]["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ErrorBody"), (path, method, code)
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_label_count_is_checked_before_anything_else(hostile, video_dir):
    good = (video_dir / "clip0.mp4").read_bytes()
    many = ",".join(f"l{i}" for i in range(101))
    resp = _post(hostile, good, labels=many)
    assert resp.status_code == 422 and "101 labels given; the limit is 100" in resp.text


def test_docs_work_offline(hostile):
    page = httpx.get(hostile.url + "/docs").text
    assert "/docs-assets/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    js = httpx.get(hostile.url + "/docs-assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000
    redoc = httpx.get(hostile.url + "/redoc").text
    assert "/docs-assets/redoc.standalone.js" in redoc and "fonts.googleapis" not in redoc


@pytest.mark.slow
def test_sigterm_ends_the_server_within_its_shutdown_budget(tiny_checkpoint, video_dir):
    srv = ServerProcess({
        "ALT_CHECKPOINT": str(tiny_checkpoint),
        "ALT_SHUTDOWN_TIMEOUT_S": "2",
        "PYTHONPATH": str(FAULTS),
    })  # fmt: skip
    good = (video_dir / "clip0.mp4").read_bytes()
    result = {}
    hung = threading.Thread(target=lambda: result.update(r=_post(srv, b"HANG" + good, timeout=30)))
    hung.start()
    time.sleep(1.0)
    workers = _workers(srv.proc.pid)
    assert len(workers) >= 1
    t0 = time.monotonic()
    srv.proc.terminate()
    srv.proc.wait(15)
    stopped = time.monotonic() - t0
    hung.join(15)
    assert stopped < 8, stopped
    # The request in flight was answered or its connection closed; never left hanging.
    assert not hung.is_alive()
    time.sleep(0.5)
    alive = [p for p in workers if os.path.exists(f"/proc/{p}") and _state(p) != "Z"]
    assert not alive, f"decode workers outlived the server: {alive}"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0]
    except OSError:
        return "gone"
