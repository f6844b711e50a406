"""Timelines of long videos: windows decoded in one pass, the smoothing solved exactly,
segments that tile the video, the shipped default following a 12-action video, and the
route's limits."""

from __future__ import annotations

import asyncio
import io
import itertools
import json

import numpy as np
import pytest

from media import decode_frames, write_video
from media.shots import find_cuts
from media.windows import WindowedVideo, plan_windows
from server.engine.timeline import TimelineOptions, smooth, window_bounds
from server.settings import Settings
from tests import videos
from tests.conftest import DEFAULT_CHECKPOINT
from training.generate import render_timeline

from .test_routes import InProcess, _settings


def encode(frames: np.ndarray, fps: int = 25, **kw) -> bytes:
    buf = io.BytesIO()
    write_video(buf, frames, fps=fps, **kw)
    return buf.getvalue()


# ---- the smoothing ---------------------------------------------------------------------


def brute_force(probs: np.ndarray, penalty: float) -> float:
    logp = np.log(probs)
    best = -np.inf
    for path in itertools.product(range(probs.shape[1]), repeat=probs.shape[0]):
        score = sum(logp[w, s] for w, s in enumerate(path))
        score -= penalty * sum(a != b for a, b in zip(path, path[1:]))
        best = max(best, score)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_the_smoothing_finds_the_best_path_exactly(seed):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(3) * 0.5, size=6)
    penalty = float(rng.uniform(0, 3))
    path = smooth(probs, penalty)
    logp = np.log(probs)
    got = sum(logp[w, s] for w, s in enumerate(path)) - penalty * int((path[1:] != path[:-1]).sum())
    assert got == pytest.approx(brute_force(probs, penalty))


def test_a_one_window_blip_is_absorbed_by_the_penalty_and_kept_without_it():
    probs = np.array([[0.8, 0.2]] * 4 + [[0.3, 0.7]] + [[0.8, 0.2]] * 4)
    assert smooth(probs, 0.0).tolist() == [0] * 4 + [1] + [0] * 4
    assert smooth(probs, 2.0).tolist() == [0] * 9
    # A real change, seen over several windows, survives the same penalty.
    long = np.array([[0.8, 0.2]] * 4 + [[0.2, 0.8]] * 4)
    assert smooth(long, 2.0).tolist() == [0] * 4 + [1] * 4


def test_windows_tile_the_video_and_never_straddle_a_cut():
    times = [i / 10 for i in range(300)]  # 30 s at 10 fps
    windows = plan_windows(times, 30.0, 4.0, 2.0, 8, cuts=[9.5, 20.0])
    for w in windows:
        assert not any(w.start_s < c < w.end_s for c in (9.5, 20.0)), w
        assert all(w.start_s - 1e-6 <= t < w.end_s for t in w.times_s), w
    bounds = window_bounds(windows, 30.0)
    assert bounds[0][0] == 0.0 and bounds[-1][1] == 30.0
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert 9.5 in [b[0] for b in bounds] and 20.0 in [b[0] for b in bounds]


# ---- decoding ----------------------------------------------------------------------------


def test_every_window_gets_the_pixels_of_its_frames_in_one_forward_pass():
    frames = videos.gradient_frames(300, 64, 96, seed=3)
    data = encode(frames, fps=25, keyframe_every=25)
    every = decode_frames(data, 32)
    with WindowedVideo(data, 8, 32, window_s=2.0, stride_s=1.0) as video:
        windows = video.info.windows
        chunks = list(video.chunks(3))
        seeks = video.stats.seeks
    assert [c.first for c in chunks] == list(range(0, len(windows), 3))
    assert sum(len(c.windows) for c in chunks) == len(windows) == 11
    for chunk in chunks:
        for k, w in enumerate(chunk.windows):
            np.testing.assert_array_equal(chunk.video[k], every[list(w.frames)])
    # Forward only: at most one seek per keyframe (12, and the first positioning counts as
    # one), never a seek-and-decode per window.
    assert 1 <= seeks <= 13


def test_cuts_are_found_where_the_scene_changes():
    a = np.zeros((50, 64, 64, 3), np.uint8)
    b = np.full((75, 64, 64, 3), 220, np.uint8)
    c = np.zeros((50, 64, 64, 3), np.uint8)
    c[..., 2] = 200
    cuts = find_cuts(encode(np.concatenate([a, b, c]), fps=25))
    assert cuts == [pytest.approx(2.0, abs=0.05), pytest.approx(5.0, abs=0.05)]


# ---- the shipped default on a long video ----------------------------------------------


@pytest.fixture(scope="module")
def twelve_actions():
    labels = json.loads((DEFAULT_CHECKPOINT / "labels.json").read_text())
    acts = [str(a) for a in np.random.default_rng(1234).choice(labels, 12, replace=False)]
    frames, truth = render_timeline(acts, 10.0, seed=1234)
    return encode(frames), truth


def time_accuracy(segments, truth) -> float:
    grid = np.arange(0, truth[-1][1], 0.1)

    def at(t, spans):
        return next((lab for a, b, lab in spans if a <= t < b), None)

    spans = [(s.start_s, s.end_s, s.label) for s in segments]
    return float(np.mean([at(t, spans) == at(t, truth) for t in grid]))


@pytest.mark.slow
def test_the_default_model_follows_twelve_actions_in_two_minutes(twelve_actions):
    data, truth = twelve_actions

    async def main():
        engine = Settings(decode_workers=1).in_process_engine()
        await engine.start()
        try:
            # Windows of 6 s, as each action lasts 10 s (the model saw whole clips in training).
            smooth_ = await engine.timeline(data, None, TimelineOptions(6.0, 2.0, windows=True))
            raw = await engine.timeline(data, None, TimelineOptions(6.0, 2.0, smoothing=0.0))
            floor = await engine.timeline(data, None, TimelineOptions(min_similarity=1.0))
        finally:
            await engine.stop()
        return smooth_, raw, floor

    answer, raw, floor = asyncio.run(main())
    assert answer.video.duration_s == pytest.approx(120.0, abs=0.1)
    assert answer.video.windows == len(answer.windows) == 58
    # One label per action, not one per video: most of the time labelled right (0.78 when
    # measured), and the smoothing does better than labelling each window alone (0.70).
    assert time_accuracy(answer.timeline, truth) >= 0.72
    assert time_accuracy(answer.timeline, truth) > time_accuracy(raw.timeline, truth)
    found = {s.label for s in answer.timeline}
    assert len(found & {lab for _, _, lab in truth}) >= 9
    assert answer.timeline[0].start_s == 0.0 and answer.timeline[-1].end_s == 120.0
    assert all(s.entities for s in answer.timeline)
    assert answer.summary[0].seconds >= answer.summary[-1].seconds
    assert sum(s.seconds for s in answer.summary) == pytest.approx(120.0, abs=0.01)
    # A floor no cosine reaches: the whole video is "none of these".
    assert [s.label for s in floor.timeline] == [None] and floor.summary == []


# ---- the route -------------------------------------------------------------------------


def test_a_timeline_in_the_request_and_its_limits():
    long = videos.long_video_mp4(40)

    async def main():
        async with InProcess(_settings(max_sync_duration_s=30)) as c:
            too_long = await c.post("/recognize?timeline=true", content=long,
                                    headers={"content-type": "video/mp4"})  # fmt: skip
            short = encode(videos.gradient_frames(150, 32, 32), fps=25)
            ok = await c.post("/recognize?timeline=true&window_s=2&windows=true&shots=true",
                              content=short, headers={"content-type": "video/mp4"})  # fmt: skip
            bad = await c.post("/recognize?timeline=true&window_s=2&stride_s=3", content=short,
                               headers={"content-type": "video/mp4"})  # fmt: skip
            plain = await c.post("/recognize", content=short,
                                 headers={"content-type": "video/mp4"})  # fmt: skip
            health = await c.get("/healthz")
        return too_long, ok, bad, plain, health

    too_long, ok, bad, plain, health = asyncio.run(main())
    assert too_long.status_code == 413
    assert "/jobs" in too_long.json()["detail"] and "40.0 s" in too_long.json()["detail"]
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["video"]["windows"] == len(body["windows"]) == 5  # 6 s in 2 s windows, 1 s apart
    assert body["params"] == {"window_s": 2.0, "stride_s": 1.0, "smoothing": 4.0, "shots": True}
    assert body["shots"] == [{"start_s": 0.0, "end_s": 6.0}]
    assert body["timeline"][0]["start_s"] == 0 and body["timeline"][-1]["end_s"] == 6.0
    assert bad.status_code == 422 and bad.json()["error"] == "bad_request"
    assert "timeline" not in plain.json() and plain.json()["actions"]
    assert health.status_code == 200


def test_a_timeline_cancelled_mid_way_stops_decoding_and_the_pool_serves_on():
    """Cancelled after its first chunk (as when the client leaves or a job is deleted), a
    timeline decodes no further: its worker is killed and replaced, and serves the next."""
    seen: list[tuple[int, int]] = []

    async def main():
        engine = _settings(max_sync_duration_s=600).in_process_engine()
        await engine.start()
        try:
            data = encode(videos.gradient_frames(2500, 32, 32), fps=25)  # 100 s, 49 windows

            async def progress(done: int, total: int) -> None:
                seen.append((done, total))
                if done:
                    task.cancel()

            task = asyncio.create_task(
                engine.timeline(data, None, TimelineOptions(), progress=progress)
            )
            with pytest.raises(asyncio.CancelledError):
                await task
            again = await engine.timeline(
                encode(videos.gradient_frames(100, 32, 32)), None, TimelineOptions()
            )
        finally:
            await engine.stop()
        return again

    again = asyncio.run(main())
    assert seen == [(0, 49), (8, 49)]  # one chunk of 8 windows, then nothing
    assert again.video.windows == 1
