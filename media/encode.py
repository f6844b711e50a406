"""Writing videos: the generated world, samples and test files are encoded here."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np


def write_video(
    path: Path | io.BytesIO,
    frames: np.ndarray,
    fps: float = 25.0,
    crf: int = 23,
    fmt: str = "mp4",
    keyframe_every: int | None = None,
) -> None:
    """Encode uint8 frames `(N, H, W, 3)` as H.264 (even sizes; yuv420p).

    `keyframe_every`: the longest run of frames between keyframes (x264's default: 250).
    """
    n, h, w, _ = frames.shape
    assert h % 2 == 0 and w % 2 == 0, f"H.264 needs even frame sizes, got {w}x{h}"
    target = path if isinstance(path, io.BytesIO) else str(path)
    with av.open(target, mode="w", format=fmt) as container:
        stream = container.add_stream("libx264", rate=round(fps))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        if keyframe_every:
            stream.options |= {"g": str(keyframe_every)}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
