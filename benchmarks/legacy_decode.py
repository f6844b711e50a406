"""The decoder before `media/` (commit 8f3b2e1), kept only to be measured against it.

It decoded every frame up to the last one sampled (or sought once per sampled frame),
converted each kept frame to full-size RGB and resized with a float `F.interpolate`.
"""

from __future__ import annotations

import contextlib
import io
import math
import random
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


class VideoError(ValueError):
    """The input cannot be used as a video; the message says why."""


class NotAVideo(VideoError):
    """Not a media container we can open, or no video stream in it."""


class CorruptVideo(VideoError):
    """A video stream is there, but no frame of it decodes (truncated or damaged)."""


class VideoTooLarge(VideoError):
    """Within a readable file, the video exceeds a configured limit."""


@dataclass(frozen=True)
class Limits:
    max_pixels: int = 4096 * 2160  # width x height of one frame
    max_duration_s: float = 600.0
    max_frames: int = 100_000  # decoded frames when the container does not say how many


@dataclass(frozen=True)
class VideoInfo:
    duration_s: float
    fps: float
    width: int
    height: int
    num_frames: int  # frames in the stream (counted or as the container says)
    sampled: tuple[tuple[int, ...], ...]  # per temporal clip, the frame indices sampled
    seeked: bool  # decoded by seeking rather than sequentially

    def timestamps(self, clip: int = 0) -> list[float]:
        return [round(i / self.fps, 3) if self.fps else 0.0 for i in self.sampled[clip]]


def segment_indices(
    num_frames: int, frames: int, clip: int = 0, clips: int = 1, rng: random.Random | None = None
) -> list[int]:
    """TSN sampling: split the video into `frames` equal segments, take one frame of each.

    Test time (`rng` None): temporal clip `clip` of `clips` takes the point at
    `(clip + 0.5) / clips` of every segment (one clip: the segment centers). Training
    (`rng` given): a uniformly random point of every segment.
    """
    assert num_frames >= 1 and frames >= 1 and 0 <= clip < clips
    seg = num_frames / frames
    if rng is None:
        offsets = [(clip + 0.5) / clips] * frames
    else:
        offsets = [rng.random() for _ in range(frames)]
    return [min(num_frames - 1, int(math.floor((t + o) * seg))) for t, o in enumerate(offsets)]


def resize_crop(frames: Tensor, size: int, crops: int = 1) -> Tensor:
    """uint8 `(T, H, W, 3)` -> uint8 `(crops, T, 3, size, size)`.

    The short side is resized to `size`; one crop takes the center, three crops take
    both ends and the center of the long side (the usual 3-crop test protocol).
    """
    x = frames.permute(0, 3, 1, 2).float()  # (T, 3, H, W)
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    x = x.round().clamp(0, 255).to(torch.uint8)
    views = []
    for c in range(crops):
        frac = 0.5 if crops == 1 else c / (crops - 1)
        top, left = round((nh - size) * frac), round((nw - size) * frac)
        if nh >= nw:
            left = (nw - size) // 2
        else:
            top = (nh - size) // 2
        views.append(x[:, :, top : top + size, left : left + size])
    return torch.stack(views)


def _open(source: bytes | Path) -> av.container.InputContainer:
    try:
        return av.open(io.BytesIO(source) if isinstance(source, bytes | bytearray) else str(source))
    except (av.FFmpegError, UnicodeDecodeError, ValueError, OSError) as err:
        raise NotAVideo(f"not a readable video file ({err.__class__.__name__}: {err})") from None


def _stream_facts(container, stream, limits: Limits) -> tuple[float, float, int]:
    width, height = stream.codec_context.width, stream.codec_context.height
    if width <= 0 or height <= 0:
        raise NotAVideo("the video stream has no frame size")
    if width * height > limits.max_pixels:
        raise VideoTooLarge(
            f"frames of {width}x{height} exceed the limit of {limits.max_pixels} pixels"
        )
    fps = float(stream.average_rate or stream.guessed_rate or 0.0)
    duration = 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    if duration > limits.max_duration_s:
        raise VideoTooLarge(
            f"the video lasts {duration:.1f} s, over the limit of {limits.max_duration_s:.0f} s"
        )
    count = stream.frames or (round(duration * fps) if duration and fps else 0)
    return fps, duration, count


def _decode_sequential(
    container, stream, wanted: set[int], limits: Limits
) -> dict[int, np.ndarray]:
    """Decode in order, keep the wanted frames, stop after the last one (or the stream end)."""
    last = max(wanted) if wanted else limits.max_frames - 1
    kept: dict[int, np.ndarray] = {}
    try:
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted or not wanted:
                kept[i] = frame.to_ndarray(format="rgb24")
            if i >= last or i + 1 >= limits.max_frames:
                break
    except av.FFmpegError:
        if not kept:
            raise
        # A damaged or cut-off stream: keep what decoded before the damage.
    return kept


def _decode_seeking(container, stream, wanted: list[int], fps: float) -> dict[int, np.ndarray]:
    """Seek to the keyframe before each wanted frame and decode up to it."""
    kept: dict[int, np.ndarray] = {}
    base = stream.start_time or 0
    try:
        for index in sorted(set(wanted)):
            target = base + int(index / fps / stream.time_base)
            container.seek(target, stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.pts is None or frame.pts >= target:
                    kept[index] = frame.to_ndarray(format="rgb24")
                    break
    except av.FFmpegError:
        pass  # the caller falls back to sequential decoding
    return kept


def decode_clip(
    source: bytes | Path,
    frames: int,
    size: int,
    clips: int = 1,
    crops: int = 1,
    limits: Limits = Limits(),  # noqa: B008 - frozen
    rng: random.Random | None = None,
    seek_min_frames: int = 300,
) -> tuple[Tensor, VideoInfo]:
    """Decode the frames a model needs: uint8 `(clips * crops, frames, 3, size, size)`.

    Long seekable videos (at least `seek_min_frames` frames) are decoded by seeking;
    others sequentially, stopping after the last frame needed. A stream that ends early
    (a truncated file) is resampled over the frames it really has.
    """
    container = _open(source)
    try:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["nothing"]
            raise NotAVideo(f"no video stream in the file (it holds {', '.join(kinds)})")
        fmt = container.format.name
        if fmt.endswith("_pipe") or fmt in ("image2", "gif"):
            raise NotAVideo(f"this is a still image ({fmt.removesuffix('_pipe')}), not a video")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps, duration, count = _stream_facts(container, stream, limits)
        seeked, images = False, {}
        # Without a frame count (some streams), decode everything and sample afterwards.
        per_clip = (
            [segment_indices(count, frames, c, clips, rng) for c in range(clips)] if count else []
        )
        wanted = sorted({i for s in per_clip for i in s})
        try:
            if wanted and count >= seek_min_frames and fps > 0:
                images = _decode_seeking(container, stream, wanted, fps)
                seeked = len(images) == len(wanted)
                if not seeked:
                    container.seek(0, stream=stream)
                    images = {}
            if not images:
                images = _decode_sequential(container, stream, set(wanted), limits)
        except av.FFmpegError as err:
            if not images:
                raise CorruptVideo(
                    f"no frame of the video stream decodes; is the file truncated? ({err})"
                ) from None
        if not images:
            raise CorruptVideo("the video stream holds no decodable frame")
        if wanted and all(i in images for i in wanted):
            sampled = per_clip
        else:
            # The container lied or the file is cut short: sample what was decoded.
            if wanted:  # re-decode from the start to see every frame the stream has
                container.seek(0, stream=stream)
                with contextlib.suppress(av.FFmpegError):
                    images = _decode_sequential(container, stream, set(), limits)
            count = max(images) + 1
            sampled = [segment_indices(count, frames, c, clips, rng) for c in range(clips)]
            sampled = [[max(k for k in images if k <= i) for i in s] for s in sampled]
        views = []
        for s in sampled:
            stack = torch.from_numpy(np.stack([images[i] for i in s]))  # (T, H, W, 3)
            views.append(resize_crop(stack, size, crops))
        video = torch.cat(views)  # (clips * crops, T, 3, size, size)
        first = next(iter(images.values()))
        info = VideoInfo(
            duration_s=round(duration or (count / fps if fps else 0.0), 3),
            fps=round(fps, 3),
            width=int(first.shape[1]),
            height=int(first.shape[0]),
            num_frames=count,
            sampled=tuple(tuple(s) for s in sampled),
            seeked=seeked,
        )
        return video, info
    finally:
        container.close()


def write_video(
    path: Path | io.BytesIO, frames: np.ndarray, fps: float = 25.0, crf: int = 23, fmt: str = "mp4"
) -> None:
    """Encode uint8 frames `(N, H, W, 3)` as H.264 (even sizes; yuv420p)."""
    n, h, w, _ = frames.shape
    assert h % 2 == 0 and w % 2 == 0, f"H.264 needs even frame sizes, got {w}x{h}"
    target = path if isinstance(path, io.BytesIO) else str(path)
    with av.open(target, mode="w", format=fmt) as container:
        stream = container.add_stream("libx264", rate=round(fps))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def decode_frames(source: bytes | Path, size: int, limits: Limits = Limits()) -> Tensor:  # noqa: B008
    """Every frame, resized and center-cropped as `decode_clip` does: uint8 `(N, 3, size, size)`.

    Training caches these and samples with `segment_indices`, so a clip is preprocessed
    exactly as the server preprocesses it.
    """
    container = _open(source)
    try:
        if not container.streams.video:
            raise NotAVideo("no video stream in the file")
        stream = container.streams.video[0]
        _stream_facts(container, stream, limits)
        images = _decode_sequential(container, stream, set(), limits)
    finally:
        container.close()
    if not images:
        raise CorruptVideo("the video stream holds no decodable frame")
    stack = torch.from_numpy(np.stack([images[i] for i in sorted(images)]))
    return resize_crop(stack, size)[0]
