"""Live streams: windows cut as frames arrive, labels chosen online with a fixed lag,
events over SSE and webhooks, sources made by the test on loopback (MPEG-TS over UDP
pushed at real time, HLS over HTTP, files at their own rate), reconnection, restarts and
the URL rules."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from media.live import LiveJob, WindowCutter, watch
from server.engine.backends import ClipResult
from server.engine.errors import BadRequest
from server.engine.timeline import smooth
from server.streams.online import AlertRule, OnlineTimeline
from server.streams.safety import check_url, redact
from tests.conftest import DEFAULT_CHECKPOINT
from tests.live import Events, HttpFolder, RtspPush, UdpPush, write_hls
from training.generate import render_timeline

from .conftest import ServerProcess, free_port

# ---- windows and the online labelling ----------------------------------------------------


def test_windows_are_cut_as_frames_arrive_and_sample_segment_centres():
    cut = WindowCutter(window_s=4.0, stride_s=2.0, frames=4)
    scaled = []
    done = []
    for i in range(250):  # 10 s at 25 fps
        t = i / 25

        def scale(i=i):
            scaled.append(i)
            return np.full((3, 2, 2), i, np.uint8)

        for start, end, times, frames in cut.push(t, scale):
            done.append((start, end, times, frames[:, 0, 0, 0].tolist(), i))
    # Windows 0-4, 2-6, 4-8, 6-10; instants at 0.5, 1.5, 2.5, 3.5 s past the start, each
    # showing the latest frame at or before it; a window leaves with the first frame
    # after its last instant.
    assert [(s, e) for s, e, *_ in done] == [(0, 4), (2, 6), (4, 8), (6, 10)]
    assert done[0][2] == [0.48, 1.48, 2.48, 3.48] and done[0][3] == [12, 37, 62, 87]
    assert done[1][3] == [62, 87, 112, 137]
    assert [d[4] for d in done] == [88, 138, 188, 238]
    assert len(set(scaled)) == len(scaled) == 10  # only sampled frames, each once
    assert cut.pending <= 3


def _views(probs_row: np.ndarray, rng) -> list[ClipResult]:
    """A view whose embedding gives `probs_row` (as a softmax at scale 1 over one-hot labels)."""
    emb = np.log(probs_row)
    return [ClipResult(emb, np.array([0, 1]), np.array([0.7, 0.3], np.float32),
                       rng.integers(0, 2, (4, 3)), None)]  # fmt: skip


@pytest.mark.parametrize("seed", range(4))
def test_with_enough_lag_the_online_labels_are_the_offline_ones(seed):
    rng = np.random.default_rng(seed)
    n, k = 40, 4
    # Actions of a few windows each, noisy.
    truth = np.repeat(rng.integers(0, k, n // 5), 5)
    logits = rng.normal(0, 1.0, (n, k))
    logits[np.arange(n), truth] += 1.2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    offline = smooth(probs, 2.0)
    for lag, penalty in ((n, 2.0), (0, 0.0)):
        tl = OnlineTimeline([f"a{i}" for i in range(k)], np.eye(k), 1.0, ["e0", "e1"],
                            window_s=4.0, stride_s=2.0, smoothing=penalty, min_similarity=None, lag=lag)  # fmt: skip
        events = []
        for w in range(n):
            events += tl.push(2.0 * w, 2.0 * w + 4, [2.0 * w + 0.5 * j for j in range(4)],
                              _views(probs[w], rng))  # fmt: skip
        events += tl.flush()
        closed = [d for e, d in events if e == "segment" and d["end_s"] is not None]
        opened = [d for e, d in events if e == "segment" and d["end_s"] is None]
        labels = np.concatenate([[int(d["label"][1:])] * d["windows"] for d in closed])
        assert len(opened) == len(closed) and [d["label"] for d in opened] == [
            d["label"] for d in closed
        ]
        if lag:
            assert labels.tolist() == offline.tolist()
        else:  # no lag, no penalty: each window alone
            assert labels.tolist() == probs.argmax(1).tolist()
        # Segments tile the time: each starts where the previous ended.
        assert closed[0]["start_s"] == 0.0
        assert all(a["end_s"] == b["start_s"] for a, b in zip(closed, closed[1:]))


def test_an_alert_fires_once_per_segment_when_its_rule_is_met():
    rng = np.random.default_rng(0)
    probs = np.array([[0.9, 0.1]] * 6 + [[0.1, 0.9]] * 3 + [[0.9, 0.1]] * 4)
    tl = OnlineTimeline(["fall", "walk"], np.eye(2), 1.0, ["e0", "e1"], window_s=4.0,
                        stride_s=2.0, smoothing=1.0, min_similarity=None, lag=1,
                        alerts=[AlertRule("fall", min_score=0.8, min_duration_s=6.0),
                                AlertRule("walk", min_score=0.95)])  # fmt: skip
    events = []
    for w, p in enumerate(probs):
        events += [
            (w, e, d) for e, d in tl.push(2.0 * w, 2.0 * w + 4, [2.0 * w + 1], _views(p, rng))
        ]
    alerts = [(w, d["rule"], d["segment"]["start_s"]) for w, e, d in events if e == "alert"]
    # "fall" lasted 6 s after its third window (committed one window late); again in the
    # second stretch once it lasted 6 s; "walk" never scored 0.95.
    assert [a[1] for a in alerts] == [0, 0]
    assert alerts[0][0] == 3 and alerts[0][2] == 0.0


# ---- URLs -------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "ftp://example.com/x", "gopher://1.2.3.4/", "rtsp://127.0.0.1/cam",
    "http://10.0.0.7/live.m3u8", "rtsp://169.254.169.254/", "http://[::1]:8080/x",
    "udp://239.1.1.1:1234", "rtsp://localhost/cam", "http://0.0.0.0/", "rtsp:///nohost",
    "http://[::ffff:127.0.0.1]/", "rtsp://192.168.1.20:554/stream1",
])  # fmt: skip
def test_urls_into_the_servers_network_are_refused(url):
    with pytest.raises(BadRequest):
        check_url(url, allow_private=False)


def test_public_addresses_pass_and_private_ones_pass_when_allowed():
    check_url("rtsp://user:pw@93.184.216.34:554/stream", allow_private=False)
    check_url("rtsp://127.0.0.1/cam", allow_private=True)
    check_url("file:///tmp/x.mp4", allow_private=True)
    with pytest.raises(BadRequest):
        check_url("ftp://127.0.0.1/", allow_private=True)
    assert redact("rtsp://admin:secret@1.2.3.4:554/s") == "rtsp://admin:***@1.2.3.4:554/s"


# ---- the service, with sources on loopback -------------------------------------------------

ACTIONS = ["waving", "kicking a ball", "clapping"]


@pytest.fixture(scope="module")
def three_actions():
    labels = json.loads((DEFAULT_CHECKPOINT / "labels.json").read_text())
    assert set(ACTIONS) <= set(labels)
    return render_timeline(ACTIONS, 8.0, seed=4321)  # 24 s


@pytest.fixture(scope="module")
def watcher(tmp_path_factory):
    """One server for the tests that do not restart it."""
    srv = _server(tmp_path_factory.mktemp("stream-jobs"))
    yield srv
    srv.stop()


def _server(jobs_dir: Path, **env) -> ServerProcess:
    return ServerProcess({
        "ALT_JOBS_DIR": str(jobs_dir), "ALT_DECODE_WORKERS": "1",
        "ALT_STREAMS_ALLOW_PRIVATE": "1", "ALT_STREAM_TIMEOUT_S": "2", "ALT_MAX_STREAMS": "3",
        **env,
    })  # fmt: skip


def _metric(text: str, name: str) -> float:
    """A sample's value in Prometheus text (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def _label_at(t: float, spans) -> str | None:
    return next((lab for a, b, lab in spans if a <= t < b), None)


@pytest.mark.slow
def test_a_udp_stream_pushed_at_real_time_is_labelled_as_it_plays(watcher, three_actions):
    frames, truth = three_actions
    srv = watcher
    push = None
    try:
        port = free_port()
        r = httpx.post(srv.url + "/streams", json={
            "url": f"udp://127.0.0.1:{port}", "window_s": 4, "stride_s": 2,  # the model's 24 labels
            "lag_windows": 1, "alerts": [{"label": "kicking a ball", "min_score": 0.3}],
        })  # fmt: skip
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        assert r.headers["location"] == f"/streams/{sid}" and r.json()["state"] == "connecting"
        events = Events(srv.url + f"/streams/{sid}/events")
        time.sleep(1.0)  # the reader listens
        push = UdpPush(frames, port)
        push.thread.join(40)
        closed = events.wait(lambda g: g[1] == "segment" and g[2]["end_s"] is not None
                             and g[2]["end_s"] > 20, 15)  # fmt: skip
        assert closed
        segs = [d for _, e, d in events.got if e == "segment" and d["end_s"] is not None]
        spans = [(d["start_s"], d["end_s"], d["label"]) for d in segs]
        grid = np.arange(0, min(spans[-1][1], truth[-1][1]), 0.1)
        accuracy = float(np.mean([_label_at(t, spans) == _label_at(t, truth) for t in grid]))
        assert accuracy >= 0.7, (spans, truth)
        # A segment's event arrives at most window + stride + lag + 1 s (+1 s for the
        # reader to start decoding) after its action began.
        for t_arrive, e, d in events.got:
            if (
                e == "segment"
                and d["end_s"] is None
                and d["label"] == _label_at(d["start_s"] + 1, truth)
            ):
                begun = next(a for a, b, lab in truth if lab == d["label"])
                assert t_arrive - (push.started + begun) <= 4 + 2 + 2 + 1 + 1, d
        assert all(d["entities"] for d in segs)
        assert any(e == "alert" and d["label"] == "kicking a ball" for _, e, d in events.got)
        status = httpx.get(srv.url + f"/streams/{sid}").json()
        assert status["counts"]["frames"] >= 550 and status["counts"]["windows"] >= 10
        assert status["counts"]["windows_dropped"] == 0 and status["lag_s"] == 2.0
        assert status["video"] == {"width": 128, "height": 128, "fps": 25.0}
        # The same counts in the metrics; the stream counted in the state it is in.
        metrics = httpx.get(srv.url + "/metrics").text
        labelled = _metric(metrics, 'alt_stream_windows_total{result="labelled"}')
        assert labelled == httpx.get(srv.url + f"/streams/{sid}").json()["counts"]["windows"]
        state = httpx.get(srv.url + f"/streams/{sid}").json()["state"]
        assert _metric(metrics, f'alt_streams{{state="{state}"}}') == 1
        assert _metric(metrics, 'alt_stream_events_total{event="alert"}') >= 1
        assert httpx.delete(srv.url + f"/streams/{sid}").status_code == 204
        events.wait(lambda g: g[1] == "deleted", 5)
        assert httpx.get(srv.url + f"/streams/{sid}").status_code == 404
        gauges = [line for line in httpx.get(srv.url + "/metrics").text.splitlines()
                  if line.startswith("alt_streams{")]  # fmt: skip
        assert gauges and all(float(line.split()[-1]) == 0 for line in gauges), gauges
    finally:
        if push:
            push.stop()


@pytest.mark.slow
def test_a_lost_source_is_reconnected_and_a_restarted_server_watches_again(tmp_path, three_actions):
    frames, _ = three_actions
    port = free_port()
    jobs_dir = tmp_path / "jobs"
    srv = _server(jobs_dir)
    push = None
    try:
        sid = httpx.post(srv.url + "/streams", json={"url": f"udp://127.0.0.1:{port}",
                                                     "labels": "@kinetics400"}).json()["id"]  # fmt: skip
        events = Events(srv.url + f"/streams/{sid}/events")
        time.sleep(1.0)
        push = UdpPush(frames[:125], port, loops=0)
        events.wait(lambda g: g[1] == "status" and g[2]["state"] == "live", 10)
        push.stop()  # the source dies: silent for the stream timeout (2 s)
        lost = events.wait(lambda g: g[1] == "status" and g[2]["state"] == "reconnecting", 10)
        assert "sent nothing for 2 s" in lost[0][2]["error"]
        push = UdpPush(frames[:125], port, loops=0)
        events.wait(lambda g: g[1] == "status" and g[2]["state"] == "live"
                    and g[0] > lost[0][0], 15)  # fmt: skip
        assert httpx.get(srv.url + f"/streams/{sid}").json()["counts"]["reconnects"] >= 1
        srv.stop()
        srv = _server(jobs_dir)  # the same jobs folder: the stream is watched again
        listed = httpx.get(srv.url + "/streams").json()["streams"]
        assert [s["id"] for s in listed] == [sid] and len(listed[0]["labels"]) == 400
        again = Events(srv.url + f"/streams/{sid}/events")
        again.wait(lambda g: g[1] == "status" and g[2]["state"] == "live", 15)
        assert httpx.delete(srv.url + f"/streams/{sid}").status_code == 204
    finally:
        if push:
            push.stop()
        srv.stop()


class _Receiver(http.server.BaseHTTPRequestHandler):
    got: list = []

    def do_POST(self):  # noqa: N802 - the handler's name
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).got.append((dict(self.headers), body))
        self.send_response(500 if len(type(self).got) == 1 else 204)  # the first one retried
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.slow
def test_hls_and_files_bad_definitions_limits_and_signed_webhooks(watcher, three_actions, tmp_path):
    frames, _ = three_actions
    hls = HttpFolder(Path(write_hls(frames[:200], tmp_path).parent))
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    srv = watcher
    try:
        hook = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
        r = httpx.post(srv.url + "/streams", json={
            "url": hls.url + "/live.m3u8", "labels": ACTIONS,
            "alerts": [{"label": "waving"}], "webhook": {"url": hook, "events": ["segment", "alert"]},
        })  # fmt: skip
        assert r.status_code == 201, r.text
        secret = r.json()["webhook_secret"]
        assert len(secret) == 64
        assert "webhook_secret" not in httpx.get(srv.url + r.headers["location"]).json()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(_Receiver.got) < 3:
            time.sleep(0.2)
        assert len(_Receiver.got) >= 3
        headers, body = _Receiver.got[0]
        retried = [b for _, b in _Receiver.got].count(body)
        assert retried == 2  # the 500 was retried, same delivery id
        for headers, body in _Receiver.got:
            want = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            assert headers["X-Alt-Signature"] == want
            assert json.loads(body)["stream"] == r.json()["id"]

        # RTSP pushed to the server (FFmpeg's listen mode): live, then a segment.
        port = free_port()
        rtsp = httpx.post(srv.url + "/streams", json={"url": f"rtsp://127.0.0.1:{port}/live",
                                                      "listen": True, "labels": ACTIONS}).json()  # fmt: skip
        ev = Events(srv.url + f"/streams/{rtsp['id']}/events")
        pushed = RtspPush(frames[:150], port)
        ev.wait(lambda g: g[1] == "segment", 20)
        pushed.stop()
        assert (
            pushed.error is None
            and httpx.delete(srv.url + f"/streams/{rtsp['id']}").status_code == 204
        )

        # A file at its own rate; it ends: the stream stops.
        video = tmp_path / "clip.mp4"
        from media import write_video

        write_video(video, frames[:100])
        f = httpx.post(
            srv.url + "/streams", json={"url": f"file://{video}", "labels": ACTIONS}
        ).json()
        ev = Events(srv.url + f"/streams/{f['id']}/events")
        ev.wait(lambda g: g[1] == "status" and g[2]["state"] == "stopped", 15)

        # The limit (3): the HLS and file streams and one more, then 429.
        extra = httpx.post(srv.url + "/streams", json={"url": f"udp://127.0.0.1:{free_port()}"})
        assert extra.status_code == 201
        over = httpx.post(srv.url + "/streams", json={"url": f"udp://127.0.0.1:{free_port()}"})
        assert over.status_code == 429 and over.json()["error"] == "overloaded"
        assert httpx.delete(srv.url + f"/streams/{extra.json()['id']}").status_code == 204
        for bad in ({"url": "ftp://x/y"}, {"url": "udp://127.0.0.1:1", "window_s": 2, "stride_s": 3},
                    {"url": "udp://127.0.0.1:1", "labels": "a,b", "alerts": [{"label": "c"}]},
                    {"url": "udp://127.0.0.1:1", "window_s": -1}, {"url": "udp://127.0.0.1:1", "extra": 1},
                    {"url": "udp://127.0.0.1:1", "labels": "@nope"}, {"nourl": 1}, [1, 2],
                    {"url": "udp://127.0.0.1:1", "listen": True}):  # fmt: skip
            got = httpx.post(srv.url + "/streams", json=bad)
            assert got.status_code == 422 and set(got.json()) == {"error", "detail"}, (
                bad,
                got.text,
            )
        assert len(httpx.get(srv.url + "/streams").json()["streams"]) == 2
        assert httpx.get(srv.url + "/streams/nope").status_code == 404
        assert httpx.get(srv.url + "/readyz").status_code == 200
    finally:
        for s in httpx.get(srv.url + "/streams").json()["streams"]:
            httpx.delete(srv.url + f"/streams/{s['id']}")
        hls.stop()
        receiver.shutdown()


def test_private_sources_are_refused_by_default(server):
    r = httpx.post(server.url + "/streams", json={"url": "rtsp://127.0.0.1:8554/cam"})
    assert r.status_code == 422 and "ALT_STREAMS_ALLOW_PRIVATE" in r.json()["detail"]
    hook = httpx.post(server.url + "/streams", json={"url": "rtsp://93.184.216.34/cam",
                                                     "webhook": {"url": "http://10.0.0.1/x"}})  # fmt: skip
    assert hook.status_code == 422 and hook.json()["detail"].startswith("webhook.url")
    listen = httpx.post(
        server.url + "/streams", json={"url": "rtsp://93.184.216.34/cam", "listen": True}
    )
    assert listen.status_code == 422 and "ALT_STREAMS_ALLOW_PRIVATE" in listen.json()["detail"]


def test_the_reader_reports_a_source_that_never_opens(tmp_path):
    got = []
    job = LiveJob(
        f"udp://127.0.0.1:{free_port()}", 4, 32, 4.0, 2.0, open_timeout_s=1, read_timeout_s=1
    )
    watch(job, got.append, lambda b: None)
    assert got == [("failed", "the source did not open within 1 s")]
    got.clear()
    watch(LiveJob(str(tmp_path / "missing.mp4"), 4, 32, 4.0, 2.0), got.append, lambda b: None)
    assert got[0][0] == "failed" and "cannot be opened" in got[0][1]
