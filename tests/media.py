"""Real media files for tests, encoded with PyAV."""

from __future__ import annotations

import io
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from media import write_video


def moving_square_video(
    path: Path, frames: int = 40, size: tuple[int, int] = (96, 128), fps: float = 25, seed: int = 0
) -> Path:
    rng = np.random.default_rng(seed)
    h, w = size
    video = np.zeros((frames, h, w, 3), np.uint8)
    video[:] = rng.integers(0, 255, 3, dtype=np.uint8)
    color = rng.integers(0, 255, 3, dtype=np.uint8)
    for t in range(frames):
        x = int((w - 24) * t / max(1, frames - 1))
        video[t, h // 2 - 12 : h // 2 + 12, x : x + 24] = color
    write_video(path, video, fps=fps)
    return path


def faststart_mp4(frames: int = 40, size: tuple[int, int] = (96, 128)) -> bytes:
    """An mp4 with its index first, so a truncated copy still opens."""
    h, w = size
    with tempfile.TemporaryDirectory() as d:  # faststart rewrites the file: needs a real path
        return _faststart(Path(d) / "v.mp4", frames, h, w)


def _faststart(path: Path, frames: int, h: int, w: int) -> bytes:
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for t in range(frames):
            img = np.full((h, w, 3), (t * 6) % 255, np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path.read_bytes()


def audio_only_m4a() -> bytes:
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as c:
        s = c.add_stream("aac", rate=16000)
        s.layout = "mono"
        for i in range(20):
            samples = (np.sin(np.arange(1024) / 10.0) * 0.3).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 16000, i * 1024, Fraction(1, 16000)
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return buf.getvalue()


def png_image() -> bytes:
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="image2pipe") as c:
        s = c.add_stream("png", rate=1)
        s.width, s.height, s.pix_fmt = 32, 32, "rgb24"
        for p in s.encode(
            av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
        ):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    return buf.getvalue()


def huge_frame_mp4(side: int = 4096) -> bytes:
    buf = io.BytesIO()
    write_video(buf, np.zeros((1, side, side, 3), np.uint8), fps=1, crf=51)
    return buf.getvalue()


def long_video_mp4(seconds: int = 40) -> bytes:
    """Long in time, cheap in bytes: 1 fps, 64x64."""
    buf = io.BytesIO()
    write_video(buf, np.zeros((seconds, 64, 64, 3), np.uint8), fps=1)
    return buf.getvalue()
