"""Long videos, measured side by side in one run (shipped default model, CPU):

1. Decoding a video's windows in one forward pass against a seek-and-decode per window
   (each window opened, indexed and decoded on its own, keyframe seeks included), on a
   320x240 video with a keyframe every 2 s.
2. The timeline of the generated world's 2-minute videos of 12 actions (10 s each): the
   share of time labelled right and the segments found, by window, stride and smoothing.
3. A short request's latency alone and while a 10-minute job runs on the same model.

    python -m benchmarks.timeline [--videos 3]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from media import write_video
from media.windows import WindowedVideo
from server.engine import Explain, decode_pool
from server.engine.timeline import TimelineOptions
from server.settings import Settings
from training.generate import render_timeline

from .common import percentile, table


def encode(frames: np.ndarray, fps: int = 25, **kw) -> bytes:
    buf = io.BytesIO()
    write_video(buf, frames, fps=fps, **kw)
    return buf.getvalue()


def labelled_right(segments, truth) -> float:
    grid = np.arange(0, truth[-1][1], 0.1)

    def at(t, spans):
        return next((lab for a, b, lab in spans if a <= t < b), None)

    spans = [(s.start_s, s.end_s, s.label) for s in segments]
    return float(np.mean([at(t, spans) == at(t, truth) for t in grid]))


def one_pass_vs_per_window() -> list[list]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    frames = np.stack([np.roll(base, 4 * t, axis=1) for t in range(120 * 25)])  # 2 min, 25 fps
    data = encode(frames, keyframe_every=50)
    rows = []
    for window, stride in ((4.0, 2.0), (2.0, 1.0)):
        t = time.perf_counter()
        with WindowedVideo(data, 8, 224, window, stride, threads=1) as video:
            windows = video.info.windows
            n = sum(len(c.windows) for c in video.chunks(8))
            seeks = video.stats.seeks
        one = time.perf_counter() - t
        t = time.perf_counter()
        per_seeks = 0
        for w in windows:
            # Opened, indexed, sought and decoded for this window alone.
            with WindowedVideo(data, 8, 224, window, stride, threads=1) as video:
                video.info = replace(video.info, windows=(w,))
                for _ in video.chunks(1):
                    pass
                per_seeks += video.stats.seeks
        per = time.perf_counter() - t
        rows.append([f"{window:g} s / {stride:g} s", n, f"{one:.2f}", seeks, f"{per:.2f}",
                     per_seeks, f"{per / one:.1f}x"])  # fmt: skip
    return rows


async def smoothing_study(videos: int) -> list[list]:
    labels = json.loads(Path("checkpoints/default/labels.json").read_text())
    engine = Settings(decode_workers=1).in_process_engine()
    await engine.start()
    cases = [
        (w, s, k) for w, s in ((4.0, 2.0), (6.0, 2.0), (4.0, 1.0)) for k in (0.0, 2.0, 4.0, 6.0)
    ]
    scores: dict[tuple, list[tuple[float, int]]] = {c: [] for c in cases}
    timings = []
    try:
        for seed in range(videos):
            rng = np.random.default_rng(1234 + seed)
            acts = [str(a) for a in rng.choice(labels, 12, replace=False)]
            frames, truth = render_timeline(acts, 10.0, seed=1234 + seed)
            data = encode(frames)
            for w, s, k in cases:
                t = time.perf_counter()
                answer = await engine.timeline(data, None, TimelineOptions(w, s, k))
                timings.append((answer.video.windows, time.perf_counter() - t))
                scores[(w, s, k)].append(
                    (labelled_right(answer.timeline, truth), len(answer.timeline))
                )
    finally:
        await engine.stop()
    rows = []
    for (w, s, k), got in scores.items():
        rows.append([f"{w:g}", f"{s:g}", f"{k:g}", f"{statistics.mean(a for a, _ in got):.3f}",
                     " / ".join(str(n) for _, n in got)])  # fmt: skip
    per_window = sum(t for _, t in timings) / sum(n for n, _ in timings)
    rows.append(["", "", "", f"{1 / per_window:.0f} windows/s end to end", "truth: 12 per video"])
    return rows


async def short_requests_during_a_job() -> list[list]:
    labels = json.loads(Path("checkpoints/default/labels.json").read_text())
    settings = Settings(decode_workers=1)
    engine = settings.in_process_engine()
    await engine.start()
    job_pool = decode_pool(settings.decode_limits(), engine.job, 1)
    short = encode(render_timeline(labels[:1], 1.0, seed=3)[0])
    frames, _ = render_timeline([labels[i % len(labels)] for i in range(60)], 10.0, seed=9)
    long = encode(frames)  # 10 minutes

    async def shorts(n: int) -> list[float]:
        out = []
        for _ in range(n):
            t = time.perf_counter()
            await engine.recognize(short, None, 5, Explain.entities)
            out.append(time.perf_counter() - t)
        return out

    try:
        alone = await shorts(30)
        job = asyncio.create_task(engine.timeline(long, None, TimelineOptions(), decoder=job_pool,
                                                  max_duration_s=3600))  # fmt: skip
        await asyncio.sleep(0.5)
        during = await shorts(30)
        running = not job.done()
        t = time.perf_counter()
        answer = await job
        rest = time.perf_counter() - t
    finally:
        job_pool.close()
        await engine.stop()
    return [
        ["alone", f"{percentile(alone, 50) * 1000:.0f}", f"{percentile(alone, 95) * 1000:.0f}", "-"],
        ["while a 10-minute job runs" + ("" if running else " (job ended early)"),
         f"{percentile(during, 50) * 1000:.0f}", f"{percentile(during, 95) * 1000:.0f}",
         f"{answer.video.windows} windows, {rest:.1f} s after the shorts"],
    ]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=3)
    args = p.parse_args()
    print("1. Decoding a 2-minute 320x240 video's windows (8 frames at 224 px each)\n")
    print(table(["windows", "count", "one pass s", "seeks", "per window s", "seeks",
                 "per window / one pass"], one_pass_vs_per_window()))  # fmt: skip
    print(f"\n2. Timelines of {args.videos} generated 2-minute videos of 12 actions\n")
    print(table(["window s", "stride s", "smoothing", "time labelled right", "segments"],
                asyncio.run(smoothing_study(args.videos))))  # fmt: skip
    print("\n3. A short request (one clip) alone and while a job runs on the same model\n")
    print(table(["short requests", "p50 ms", "p95 ms", "job"],
                asyncio.run(short_requests_during_a_job())))  # fmt: skip


if __name__ == "__main__":
    main()
