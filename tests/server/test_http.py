"""The HTTP contract against a real uvicorn process on loopback, with real mp4 files."""

from __future__ import annotations

import asyncio
import re

import httpx

from tests import videos
from tests.fixtures import ENTITIES, LABELS


def post(client, data: bytes, params=None, ctype="video/mp4"):
    return client.post("/recognize", content=data, params=params, headers={"content-type": ctype})


def test_health_ready_labels_entities(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["model"] == "tiny"
    assert client.get("/labels").json()["labels"] == LABELS
    assert client.get("/entities").json()["entities"] == ENTITIES


def test_multipart_and_raw_body_give_the_same_answer(client, video_dir):
    data = (video_dir / "clip0.mp4").read_bytes()
    a = client.post("/recognize", files={"video": ("clip0.mp4", data, "video/mp4")})
    b = post(client, data)
    assert a.status_code == 200 and b.status_code == 200, (a.text, b.text)
    ja, jb = a.json(), b.json()
    assert ja["actions"] == jb["actions"] and ja["entities"] == jb["entities"]
    everything = post(client, data, params={"top_k": 100}).json()["actions"]
    assert len(everything) == len(LABELS) and everything[:5] == ja["actions"]
    assert len(ja["actions"]) == 5 and all(x["label"] in LABELS for x in ja["actions"])
    scores = [x["score"] for x in ja["actions"]]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0 + 1e-6
    video = ja["video"]
    assert (video["width"], video["height"], video["fps"]) == (128, 96, 25.0)
    assert len(video["frames_sampled"]) == 4 and video["crop"] == {
        "x": 16,
        "y": 0,
        "width": 96,
        "height": 96,
    }
    assert set(ja["timings"]) == {"decode_ms", "queue_ms", "inference_ms", "total_ms"}
    assert ja["model"]["name"] == "tiny" and ja["model"]["backend"] == "torch"
    assert ja["entities"] and all(e["name"] in ENTITIES and e["frames"] for e in ja["entities"])


def test_open_vocabulary_labels_both_syntaxes(client, video_dir):
    data = (video_dir / "clip1.mp4").read_bytes()
    repeated = post(
        client,
        data,
        params=[("labels", "surfing"), ("labels", "baking a cake"), ("labels", "juggling")],
    )
    commas = post(client, data, params={"labels": "surfing, baking a cake,juggling"})
    assert repeated.status_code == 200 and commas.status_code == 200
    assert repeated.json()["actions"] == commas.json()["actions"]
    got = {a["label"] for a in repeated.json()["actions"]}
    assert got == {"surfing", "baking a cake", "juggling"}
    assert abs(sum(a["score"] for a in repeated.json()["actions"]) - 1.0) < 1e-4
    top1 = post(client, data, params={"labels": "surfing,juggling", "top_k": 1}).json()["actions"]
    assert len(top1) == 1


def test_explain_levels(client, video_dir):
    data = (video_dir / "clip2.mp4").read_bytes()
    none = post(client, data, params={"explain": "none"}).json()
    assert "entities" not in none and "regions" not in none
    regions = post(client, data, params={"explain": "regions"}).json()
    entities = regions["entities"]
    assert len(regions["regions"]) == 4
    for frame in regions["regions"]:
        grid = frame["grid"]
        assert len(grid) == 8 and all(len(row) == 8 for row in grid)
        assert all(-1 <= v < len(entities) for row in grid for v in row)
    # An entity's frames are exactly the frames where its index shows in the region map.
    for i, e in enumerate(entities):
        shown = [f["frame"] for f in regions["regions"] if any(i in row for row in f["grid"])]
        assert shown == e["frames"]


def test_bad_inputs_get_clear_4xx_and_the_server_stays_healthy(client, server, video_dir):
    good = (video_dir / "clip0.mp4").read_bytes()
    cases = {
        "random bytes": (post(client, bytes(range(256)) * 40), 415, "not a readable video"),
        "text as video": (post(client, b"hello\n" * 200), 415, "not a readable video"),
        "text content type": (post(client, good, ctype="text/plain"), 415, "multipart field"),
        "image": (post(client, videos.png_image(), ctype="image/png"), 415, None),
        "png as octet-stream": (
            post(client, videos.png_image(), ctype="application/octet-stream"),
            415,
            "still image",
        ),
        "audio only": (post(client, videos.audio_only_m4a()), 415, "no video stream"),
        "truncated mp4": (post(client, good[: len(good) // 3]), 415, "not a readable video"),
        "truncated faststart": (post(client, videos.faststart_mp4()[:1500]), 422, "no frame"),
        "huge resolution": (post(client, videos.huge_frame_mp4()), 413, "4096x4096"),
        "too long": (post(client, videos.long_video_mp4(40)), 413, "40.0 s"),
        "too big": (post(client, b"\0" * (2 * 2**20)), 413, "limit"),
        "empty body": (post(client, b""), 422, "no video bytes"),
        "too many labels": (
            post(client, good, params={"labels": ",".join(f"l{i}" for i in range(51))}),
            422,
            "limit is 50",
        ),
        "empty label": (post(client, good, params={"labels": "a,,b"}), 422, "empty"),
        "long label": (post(client, good, params={"labels": "x" * 61}), 422, "longer than 60"),
        "no video field": (
            client.post("/recognize", files={"clip": ("a.mp4", good, "video/mp4")}),
            422,
            "'video'",
        ),
        "bad top_k": (post(client, good, params={"top_k": 0}), 422, None),
        "bad explain": (post(client, good, params={"explain": "all"}), 422, None),
    }
    for name, (resp, status, words) in cases.items():
        assert resp.status_code == status, f"{name}: {resp.status_code} {resp.text}"
        if words:
            assert words in resp.json()["detail"], f"{name}: {resp.text}"
    assert server.alive
    assert client.get("/healthz").status_code == 200
    assert post(client, good).status_code == 200


def test_chunked_upload_over_the_limit_stops_early(client):
    sent = 0

    def body():
        nonlocal sent
        for _ in range(64):  # 4 MiB offered in 64 KiB chunks, no content-length
            sent += 1
            yield b"\0" * 65536

    resp = client.post("/recognize", content=body(), headers={"content-type": "video/mp4"})
    assert resp.status_code == 413


def test_truncated_long_stream_uses_the_frames_it_has(client, tmp_path):
    path = videos.moving_square_video(tmp_path / "noisy.mp4", frames=50, seed=7)
    data = path.read_bytes()
    fs = videos.faststart_mp4(frames=60)
    resp = post(client, fs[: int(len(fs) * 0.8)])
    assert resp.status_code == 200, resp.text
    assert max(resp.json()["video"]["frames_sampled"]) < 60
    assert post(client, data).status_code == 200


def test_32_concurrent_requests_batch_and_agree(client, server, video_dir):
    files = [(video_dir / f"clip{i % 4}.mp4").read_bytes() for i in range(32)]
    expected = {i: post(client, files[i]).json()["actions"] for i in range(4)}

    async def run():
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as ac:
            return await asyncio.gather(*[
                ac.post("/recognize", content=f, headers={"content-type": "video/mp4"}) for f in files
            ])  # fmt: skip

    responses = asyncio.run(run())
    assert all(r.status_code == 200 for r in responses)
    for i, r in enumerate(responses):
        got, want = r.json()["actions"], expected[i % 4]
        assert [a["label"] for a in got] == [a["label"] for a in want]
        assert all(abs(a["score"] - b["score"]) < 1e-4 for a, b in zip(got, want))
    metrics = client.get("/metrics").text
    total = float(re.search(r"^alt_batch_clips_count (\S+)", metrics, re.M).group(1))
    single = float(re.search(r'^alt_batch_clips_bucket\{le="1.0"\} (\S+)', metrics, re.M).group(1))
    assert total > single, "no batch held more than one clip"


def test_metrics_count_requests_errors_and_label_cache(client, video_dir):
    data = (video_dir / "clip3.mp4").read_bytes()
    post(client, data, params={"labels": "unique label set,for metrics"})
    post(client, data, params={"labels": "unique label set,for metrics"})
    post(client, b"junk")
    text = client.get("/metrics").text
    assert re.search(r'^alt_label_cache_total\{result="hit"\} [1-9]', text, re.M)
    assert re.search(r'^alt_label_cache_total\{result="miss"\} [1-9]', text, re.M)
    assert re.search(r'^alt_errors_total\{kind="unsupported_media"\} [1-9]', text, re.M)
    assert re.search(r'^alt_requests_total\{route="/recognize",status="200"\} [1-9]', text, re.M)
    for stage in ("decode", "queue", "inference", "total"):
        assert f'alt_stage_seconds_count{{stage="{stage}"}}' in text
    assert "alt_queue_depth" in text
