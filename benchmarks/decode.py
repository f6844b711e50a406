"""Decoding: time to get a model's frames out of 10-second H.264 videos at 480p, 720p and
1080p, seeking vs sequential decoding.

    python -m benchmarks.decode [--frames 8 --size 224] [--model-ms 1400]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from model.video import decode_clip, write_video

from .common import median_seconds, table

SIZES = {"480p": (480, 854), "720p": (720, 1280), "1080p": (1080, 1920)}


def make_video(path: Path, height: int, width: int, seconds: float, fps: int = 25) -> Path:
    """Moving gradients with noise: compresses like camera footage more than flat color does."""
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(seconds * fps)
    rng = np.random.default_rng(0)
    base = (np.add.outer(np.arange(height), np.arange(width)) % 256).astype(np.uint8)
    frames = np.empty((n, height, width, 3), np.uint8)
    for t in range(n):
        frames[t, ..., 0] = np.roll(base, 3 * t, axis=1)
        frames[t, ..., 1] = np.roll(base, 2 * t, axis=0)
        frames[t, ..., 2] = rng.integers(0, 40, (height, width), dtype=np.uint8)
    write_video(path, frames, fps=fps, crf=28)
    return path


def run(
    folder: Path, frames: int, size: int, seconds: float, reps: int, model_ms: float | None, names
) -> str:
    rows = []
    for name in names:
        h, w = SIZES[name]
        data = make_video(folder / f"{name}-{seconds:g}s.mp4", h, w, seconds).read_bytes()
        seek = median_seconds(
            lambda d=data: decode_clip(d, frames, size, seek_min_frames=1), reps=reps
        )
        seq = median_seconds(
            lambda d=data: decode_clip(d, frames, size, seek_min_frames=10**9), reps=reps
        )
        share = (
            f"{100 * min(seek, seq) * 1000 / (min(seek, seq) * 1000 + model_ms):.1f}%"
            if model_ms
            else "-"
        )
        rows.append(
            [name, f"{len(data) / 2**20:.1f} MB", 1000 * seek, 1000 * seq, seq / seek, share]
        )
    head = f"{frames} frames at {size}px from {seconds:g} s videos, median of {reps}"
    return (
        head
        + "\n\n"
        + table(
            ["video", "size", "seek ms", "sequential ms", "seek speed-up", "share of clip time"],
            rows,
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--folder", type=Path, default=Path("runs/bench-videos"))
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument(
        "--model-ms", type=float, default=None, help="per-clip model time, for the share column"
    )
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    a = p.parse_args()
    print(run(a.folder, a.frames, a.size, a.seconds, a.reps, a.model_ms, a.sizes))


if __name__ == "__main__":
    main()
