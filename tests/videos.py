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
        for img in gradient_frames(frames, h, w):
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


def gradient_frames(frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Moving gradients with noise: every frame differs, and compression keeps B-frames."""
    rng = np.random.default_rng(seed)
    base = (np.add.outer(np.arange(height), np.arange(width)) % 256).astype(np.uint8)
    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        out[t, ..., 0] = np.roll(base, 3 * t, axis=1)
        out[t, ..., 1] = np.roll(base, 2 * t, axis=0)
        out[t, ..., 2] = rng.integers(0, 40, (height, width), dtype=np.uint8)
    return out


def keyframed_mp4(frames: int = 120, keyframe_every: int = 10, size=(64, 96)) -> bytes:
    buf = io.BytesIO()
    write_video(buf, gradient_frames(frames, *size), keyframe_every=keyframe_every)
    return buf.getvalue()


def animated_gif(frames: int = 6, size: tuple[int, int] = (48, 64)) -> bytes:
    h, w = size
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="gif") as c:
        s = c.add_stream("gif", rate=10)
        s.width, s.height, s.pix_fmt = w, h, "rgb8"
        for t in range(frames):
            img = np.full((h, w, 3), (t * 40) % 256, np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="rgb8")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return buf.getvalue()


def rotated_mp4(degrees: int, size: tuple[int, int] = (32, 64), frames: int = 10) -> bytes:
    """A landscape stream with a white marker in its top-left corner, shown turned by
    `degrees` counterclockwise (the display matrix phones write)."""
    h, w = size
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.set_display_rotation(degrees)
        for _ in range(frames):
            img = np.zeros((h, w, 3), np.uint8)
            img[:8, :8] = 255
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return buf.getvalue()


def sized_mp4(width: int, height: int, frames: int = 4) -> bytes:
    buf = io.BytesIO()
    write_video(buf, np.full((frames, height, width, 3), 90, np.uint8), crf=51)
    return buf.getvalue()


# ---- small files that are expensive to decode naively ("bombs") -------------------------


def _encode(fmt: str, codec: str, frames, pix_fmt: str = "yuv420p", **options) -> bytes:
    """Encode `frames` (an iterable of uint8 `(H, W, 3)`) into container `fmt`."""
    buf = io.BytesIO()
    frames = iter(frames)
    first = next(frames)
    with av.open(buf, mode="w", format=fmt) as c:
        s = c.add_stream(codec, rate=25)
        s.height, s.width = first.shape[:2]
        s.pix_fmt = pix_fmt
        if options:
            s.options = {k: str(v) for k, v in options.items()}
        for img in (first, *frames):
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return buf.getvalue()


def _flat(h: int, w: int, n: int, step: int = 7):
    return (np.full((h, w, 3), (40 + step * t) % 256, np.uint8) for t in range(n))


def wide_mkv(width: int = 8000, height: int = 2, frames: int = 30) -> bytes:
    """A frame 4000 times wider than tall: scaled whole to the model's short side, it
    would be millions of pixels wide."""
    return _encode("matroska", "libx264", _flat(height, width, frames), crf=51, preset="ultrafast")


def static_4k_h264(frames: int = 12) -> bytes:
    """Raw H.264 (no container duration, no frame count) of static 3840x2160 frames."""
    return _encode("h264", "libx264", _flat(2160, 3840, frames, 0), crf=51, preset="ultrafast")


def size_changing_h264(first=(120, 160), second=(2304, 4096), frames=(6, 3)) -> bytes:
    """Two raw H.264 streams back to back: the header says the first size, frames of the
    second follow (by default over the 3840x2160 pixel limit)."""
    a = _encode("h264", "libx264", _flat(*first, frames[0]), crf=51, preset="ultrafast")
    b = _encode("h264", "libx264", _flat(*second, frames[1]), crf=51, preset="ultrafast")
    return a + b


def needle_mkv(width: int = 65536, frames: int = 3) -> bytes:
    """Frames of width x 1 pixels (lossless FFV1 in Matroska)."""
    return _encode("matroska", "ffv1", _flat(1, width, frames), pix_fmt="yuv444p")


# ---- mutants: real videos damaged the ways files get damaged --------------------------


def seed_files() -> dict[str, bytes]:
    """Small real videos in the containers and codecs uploads come in."""
    frames = gradient_frames(24, 48, 64)
    out = {}
    for fmt in ("mp4", "matroska", "h264"):
        buf = io.BytesIO()
        write_video(buf, frames, fmt=fmt, keyframe_every=8)
        out[fmt] = buf.getvalue()
    out["mp4 faststart"] = faststart_mp4(frames=20, size=(48, 64))
    out["gif"] = animated_gif(frames=5)
    return out


def mutate(data: bytes, rng: np.random.Generator, others: list[bytes]) -> tuple[str, bytes]:
    """One mutant of `data`: bit flips, a truncation, a corrupted header, a concatenation,
    a duplicated or deleted chunk. Returns (kind, bytes)."""
    kind = rng.choice(["flip", "truncate", "header", "concat", "splice", "delete"])
    b = bytearray(data)
    n = len(b)
    if kind == "flip":
        for i in rng.integers(0, n, int(rng.integers(1, 64))):
            b[i] ^= 1 << int(rng.integers(0, 8))
    elif kind == "truncate":
        b = b[: int(rng.integers(1, n))]
    elif kind == "header":
        end = min(n, int(rng.integers(8, 512)))
        start = int(rng.integers(0, end))
        b[start:end] = rng.integers(0, 256, end - start, dtype=np.uint8).tobytes()
    elif kind == "concat":
        b += others[int(rng.integers(0, len(others)))]
    elif kind == "splice":
        i, j = sorted(rng.integers(0, n, 2))
        b[i:i] = b[i:j]
    else:
        i, j = sorted(rng.integers(0, n, 2))
        del b[i:j]
    return str(kind), bytes(b)


def mutants(count: int, seed: int = 0):
    """`count` (name, kind, bytes) mutants of `seed_files()`, the same for the same seed."""
    rng = np.random.default_rng(seed)
    files = seed_files()
    names = sorted(files)
    others = [files[k] for k in names]
    for i in range(count):
        name = names[i % len(names)]
        kind, data = mutate(files[name], rng, others)
        yield name, kind, data
