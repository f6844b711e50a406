"""Video in: index the stream, decode only the sampled frames, scale them in libswscale.

One implementation serves training, evaluation and the server, so a served clip is
sampled and preprocessed exactly as the model saw clips in training (docs/design.md §6):

1. Index: demux every packet of the video stream (no decoding) for the frames'
   presentation timestamps and the keyframes. The frame count, the duration and the fps
   come from what the stream holds, not from what the container claims.
2. Sample: TSN indices over that count (`segment_indices`).
3. Decode: seek to a keyframe only when one lies between the decoder's position and the
   next wanted frame, otherwise decode forward; frames no wanted frame depends on are
   skipped by the codec; stop after the last wanted frame.
4. Scale: each wanted frame goes from its native pixel format straight to RGB at the
   model's short side in libswscale (no full-size RGB copy), then is cropped.

Bounded by `Limits`: every decoded frame is checked against the pixel limit, the duration
limit applies to the indexed stream, and only the model-sized sampled frames are kept.
"""

from __future__ import annotations

import bisect
import io
import math
import random
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import av
import numpy as np

from .errors import CorruptVideo, NotAVideo, TooCostly, VideoTooLarge
from .sampling import segment_indices

# Formats and codecs of still images: one frame of these is a picture, not a video.
_IMAGE_FORMATS = {"image2", "gif", "webp", "apng"}
_IMAGE_CODECS = {"png", "mjpeg", "gif", "webp", "bmp", "tiff", "apng", "jpeg2000", "qoi"}
_SCALER = av.video.reformatter.Interpolation.BILINEAR


@dataclass(frozen=True)
class Limits:
    max_pixels: int = 3840 * 2160  # width x height of one decoded frame
    max_duration_s: float = 600.0  # of the frames the stream holds
    max_frames: int = 100_000  # frames (packets) in the video stream
    max_aspect: float = 4.0  # a longer side is center-cropped to this ratio before scaling
    # Pixels one decode may decode to reach its sampled frames (0: no bound): a file whose
    # keyframes are too far apart for the time limit is refused before any decoding.
    max_decoded_pixels: int = 0


@dataclass(frozen=True)
class VideoInfo:
    duration_s: float
    fps: float
    width: int  # as displayed (after rotation)
    height: int
    num_frames: int  # frames the stream holds
    sampled: tuple[tuple[int, ...], ...]  # per temporal clip, the frame indices sampled
    times_s: tuple[tuple[float, ...], ...]  # per temporal clip, their presentation times
    seeks: int  # keyframe seeks made (0: decoded forward from the start)
    rotation: int = 0  # degrees counterclockwise applied for display
    decoder: str = "cpu"  # "cuda" when the frames were decoded on a GPU (NVDEC)
    warnings: tuple[str, ...] = field(default=())

    def timestamps(self, clip: int = 0) -> list[float]:
        return list(self.times_s[clip])


# ---- opening and indexing ------------------------------------------------------------------


def _open(source: bytes | Path, hwaccel=None) -> av.container.InputContainer:
    try:
        data = io.BytesIO(source) if isinstance(source, bytes | bytearray) else str(source)
        return av.open(data, hwaccel=hwaccel) if hwaccel else av.open(data)
    except (av.FFmpegError, UnicodeDecodeError, ValueError, OSError) as err:
        raise NotAVideo(f"not a readable video file ({_why(err)})") from None


def _why(err: Exception) -> str:
    """FFmpeg's own words for an error, without its error number ("[Errno 1094995529]")."""
    text = getattr(err, "strerror", None) or str(err)
    return re.sub(r"\[Errno -?\d+\]\s*", "", text).strip().rstrip(":") or type(err).__name__


def _video_stream(container):
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["nothing"]
        raise NotAVideo(f"no video stream in the file (it holds {', '.join(kinds)})")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise NotAVideo(f"the video stream's codec ({stream.codec.name!r}) cannot be decoded")
    return stream


def _check_size(width: int, height: int, limits: Limits) -> None:
    if width * height > limits.max_pixels:
        raise VideoTooLarge(
            f"frames of {width}x{height} exceed the limit of {limits.max_pixels} pixels"
        )


@dataclass
class _Index:
    """What the demuxer found: one entry per frame, no pixel decoded."""

    pts: list[int]  # presentation timestamps, sorted; empty for an untimed stream
    keys: list[int]  # presentation timestamps of keyframes, sorted
    count: int  # frames in the stream
    cut: bool  # the demuxer stopped on damage before the end


def _index(container, stream, limits: Limits) -> _Index:
    pts, keys, untimed, cut = [], [], 0, False
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # the demuxer's end-of-stream marker
            if packet.pts is None:
                untimed += 1
            else:
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
            if len(pts) + untimed > limits.max_frames:
                raise VideoTooLarge(f"the video holds over {limits.max_frames} frames")
    except av.FFmpegError:
        cut = True
    if untimed:  # a raw stream without timestamps: frames are known by their order only
        return _Index([], [], untimed + len(pts), cut)
    pts = sorted(set(pts))
    return _Index(pts, sorted(set(keys)), len(pts), cut)


def _rate(stream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and 0 < float(rate) <= 1000:
            return float(rate)
    return 0.0


def _timing(stream, index: _Index) -> tuple[float, float]:
    """(fps, duration in seconds) of the frames the stream holds, sanitized."""
    fps = _rate(stream)
    tb = float(stream.time_base) if stream.time_base else 0.0
    if len(index.pts) >= 2 and tb > 0:
        span = (index.pts[-1] - index.pts[0]) * tb
        if span > 0:
            if not fps:
                fps = min(1000.0, (len(index.pts) - 1) / span)
            return fps, span + 1.0 / fps
    return fps, (index.count / fps if fps else 0.0)


def _announced(container, stream, fps: float) -> int:
    """Frames the container says the stream holds (0 when it does not say)."""
    if stream.frames and stream.frames > 0:
        return int(stream.frames)
    seconds = 0.0
    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        seconds = container.duration / av.time_base
    return round(seconds * fps) if seconds > 0 and fps and math.isfinite(seconds) else 0


# ---- one frame to the model's size ---------------------------------------------------------


def _rotation(frame) -> int:
    """Quarter turns counterclockwise that display the frame upright (display matrix)."""
    try:
        degrees = frame.rotation
    except (AttributeError, ValueError):
        return 0
    if not degrees or not math.isfinite(degrees) or round(degrees) % 90:
        return 0
    return (round(degrees) // 90) % 4


def _crop_offsets(length: int, size: int, crops: int) -> list[int]:
    """Where the crops start along one side: the center, or both ends and the center."""
    if crops == 1:
        return [(length - size) // 2]
    return [round((length - size) * c / (crops - 1)) for c in range(crops)]


def scale_frame(frame: av.VideoFrame, size: int, crops: int, limits: Limits) -> np.ndarray:
    """One decoded frame -> uint8 `(crops, 3, size, size)`.

    The short side is scaled to `size` (in libswscale, from the frame's own pixel format)
    and `crops` squares are cut along the long side: the center, or both ends and the
    center (the usual 3-crop test protocol). A side longer than `max_aspect` times the
    other is center-cropped to that ratio first, so no frame shape can make the scaled
    image large.
    """
    _check_size(frame.width, frame.height, limits)
    turns = _rotation(frame)
    w, h = frame.width, frame.height
    short, long = min(w, h), max(w, h)
    if long > limits.max_aspect * short:
        keep = max(1, int(limits.max_aspect * short))
        rgb = frame.to_ndarray(format="rgb24")  # (h, w, 3), bounded by the pixel limit
        start = (long - keep) // 2
        rgb = rgb[:, start : start + keep] if w > h else rgb[start : start + keep]
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        w, h = frame.width, frame.height
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    image = frame.reformat(width=nw, height=nh, format="rgb24", interpolation=_SCALER)
    rgb = image.to_ndarray()  # (nh, nw, 3)
    if turns:
        rgb = np.rot90(rgb, turns)
        nh, nw = rgb.shape[:2]
    views = np.empty((crops, 3, size, size), np.uint8)
    for c, offset in enumerate(_crop_offsets(max(nh, nw), size, crops)):
        if nh >= nw:
            left = (nw - size) // 2
            view = rgb[offset : offset + size, left : left + size]
        else:
            top = (nh - size) // 2
            view = rgb[top : top + size, offset : offset + size]
        views[c] = view.transpose(2, 0, 1)
    return views


# ---- decoding the wanted frames ------------------------------------------------------------


class _Decoder:
    """Decodes frames of one stream forward from a keyframe, skipping what nobody needs."""

    def __init__(self, container, stream, wanted: set[int], limits: Limits) -> None:
        self.container, self.stream, self.wanted = container, stream, wanted
        self.limits = limits
        self.errors = 0  # packets the codec rejected (damage)

    def frames_from(self, key: int | None):
        """Frames in presentation order, from the keyframe shown at `key` (None: no seek).

        Seeking backward to a keyframe's presentation time lands on it whether the demuxer
        searches its index by presentation or by decoding time (its decoding time may lie
        before the previous keyframe's presentation time, and mp4 searches by that).
        """
        if key is not None:
            self.container.seek(key, stream=self.stream, backward=True, any_frame=False)
        ctx = self.stream.codec_context
        packets = self.container.demux(self.stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.FFmpegError:  # the file ends mid-packet: flush what the codec holds
                ctx.skip_frame = "DEFAULT"
                try:
                    yield from ctx.decode(None)
                except av.FFmpegError:
                    self.errors += 1
                return
            # Frames nothing refers to are not decoded unless they are wanted; reference
            # frames always are, so every wanted frame decodes as it would in full.
            needed = packet.pts is None or packet.pts in self.wanted or not self.wanted
            ctx.skip_frame = "DEFAULT" if needed else "NONREF"
            try:
                frames = packet.decode()
            except av.FFmpegError:
                self.errors += 1
                if self.errors > 16:
                    return
                continue
            for frame in frames:
                # A stream may change size mid-way, whatever its header said: check them all.
                _check_size(frame.width, frame.height, self.limits)
                yield frame


class _Stats:
    """What a decode cost and met: keyframe seeks, damaged packets."""

    def __init__(self) -> None:
        self.seeks = 0
        self.errors = 0


def _timed_frames(container, stream, index: _Index, wanted: list[int], convert, limits, stats):
    """(pts, converted frame) for the wanted pts (sorted), in order, in one pass: the
    keyframe index plans the seeks, which only ever go forward."""
    decoder = _Decoder(container, stream, set(wanted), limits)
    frames, position, done = None, None, set()
    try:
        for target in wanted:
            if target in done:
                continue
            key = (
                index.keys[max(0, bisect.bisect_right(index.keys, target) - 1)]
                if index.keys
                else None
            )
            # Seek when a keyframe lies between where the decoder is and the wanted frame.
            if frames is None or (key is not None and position is not None and key > position):
                frames = decoder.frames_from(key if key is not None else index.pts[0])
                stats.seeks += 1
            for frame in frames:
                if frame.pts is None:
                    continue
                position = frame.pts
                if frame.pts in decoder.wanted and frame.pts not in done:
                    done.add(frame.pts)
                    yield frame.pts, convert(frame)
                if frame.pts >= target:
                    break
    finally:
        stats.errors += decoder.errors


def _untimed_frames(container, stream, wanted: set[int], convert, limits, stats):
    """(frame order, converted frame) for the wanted orders, decoding forward from the start
    (a stream without timestamps)."""
    last = max(wanted)
    decoder = _Decoder(container, stream, set(), limits)
    try:
        for i, frame in enumerate(decoder.frames_from(None)):
            if i in wanted:
                yield i, convert(frame)
            if i >= last:
                break
    finally:
        stats.errors += decoder.errors


def _nearest(available: list[int], key: int) -> int:
    """The available key at or before `key` (or the first after it)."""
    i = bisect.bisect_right(available, key)
    return available[i - 1] if i else available[0]


def _indexed(container, limits: Limits, threads: int):
    """The video stream of an open container, indexed and checked against `limits`:
    -> (stream, index, fps, duration)."""
    stream = _video_stream(container)
    ctx = stream.codec_context
    if ctx.width > 0 and ctx.height > 0:
        _check_size(ctx.width, ctx.height, limits)
    if threads != 1:
        stream.thread_type = "AUTO"
    ctx.thread_count = threads
    index = _index(container, stream, limits)
    _refuse_still(container, stream, index)
    if index.count == 0:
        raise CorruptVideo("the video stream holds no frame; is the file truncated?")
    fps, duration = _timing(stream, index)
    if duration > limits.max_duration_s:
        raise VideoTooLarge(
            f"the video lasts {duration:.1f} s, over the limit of {limits.max_duration_s:.0f} s"
        )
    return stream, index, fps, duration


def planned_frames(index: _Index, wanted: list[int]) -> int:
    """Frames the decoder decodes to reach the `wanted` presentation timestamps (sorted),
    as `_timed_frames` goes: from the keyframe before a wanted frame when one lies past
    the decoder's position, else onward from where it is."""
    position = {pts: i for i, pts in enumerate(index.pts)}
    decoded, at = 0, -1  # at: the position of the last frame decoded
    for target in wanted:
        t = position[target]
        if t <= at:
            continue
        k = bisect.bisect_right(index.keys, target) - 1
        start = position.get(index.keys[k], 0) if k >= 0 else 0
        decoded += t - start + 1 if start > at or at < 0 else t - at
        at = t
    return decoded


def _check_plan(index: _Index, wanted: list[int], width: int, height: int, duration: float,
                limits: Limits) -> None:  # fmt: skip
    """Refuse a decode that cannot finish in time, from the index alone (a seek bomb: a
    long video with one keyframe, or keyframes far apart, at a large size)."""
    if not limits.max_decoded_pixels or width <= 0 or height <= 0:
        return
    # A stream without timestamps decodes from its start.
    need = planned_frames(index, [index.pts[i] for i in wanted]) if index.pts else max(wanted) + 1
    if need * width * height > limits.max_decoded_pixels:
        keys = len(index.keys)
        raise TooCostly(
            f"{'a single keyframe' if keys == 1 else f'{keys} keyframes'} in {duration:.0f} s: "
            f"sampling {len(wanted)} frames needs {need:,} decoded {width}x{height} frames, "
            f"more than a decode reaches within its time limit "
            f"({limits.max_decoded_pixels // (width * height):,}; ALT_DECODE_TIMEOUT_S, "
            "ALT_DECODE_RATE_MPX)"
        )


def decode_clip(
    source: bytes | Path,
    frames: int,
    size: int,
    clips: int = 1,
    crops: int = 1,
    limits: Limits = Limits(),  # noqa: B008 - frozen
    rng: random.Random | None = None,
    threads: int = 0,
    hwaccel=None,
) -> tuple[np.ndarray, VideoInfo]:
    """Decode the frames a model needs: uint8 `(clips * crops, frames, 3, size, size)`.

    `threads`: codec threads (0: FFmpeg's choice). `hwaccel`: a PyAV `HWAccel` for CUDA, to
    decode on the GPU (NVDEC; frames come back to host memory for scaling).
    """
    container = _open(source, hwaccel)
    try:
        stream, index, fps, duration = _indexed(container, limits, threads)
        per_clip = [segment_indices(index.count, frames, c, clips, rng) for c in range(clips)]
        wanted = sorted({i for s in per_clip for i in s})
        ctx = stream.codec_context
        _check_plan(index, wanted, ctx.width, ctx.height, duration, limits)

        turns: list[int] = []  # quarter turns of the first decoded frame, for the answer

        def convert(frame):
            if not turns:
                turns.append(_rotation(frame))
            return scale_frame(frame, size, crops, limits)

        stats = _Stats()
        try:
            if index.pts:
                keyed = [index.pts[i] for i in wanted]
                got = dict(_timed_frames(container, stream, index, keyed, convert, limits, stats))
                by_index = {i: got[p] for i, p in zip(wanted, keyed) if p in got}
            else:
                container.close()  # rewind by reopening: untimed streams may not seek
                container = _open(source, hwaccel)
                stream = _video_stream(container)
                stream.codec_context.thread_count = threads
                by_index = dict(
                    _untimed_frames(container, stream, set(wanted), convert, limits, stats)
                )
        except av.FFmpegError as err:
            raise CorruptVideo(f"the video stream does not decode ({_why(err)})") from None
        if not by_index:
            raise CorruptVideo("no frame of the video stream decodes; is the file damaged?")
        available = sorted(by_index)
        lost = sum(i not in by_index for i in wanted)
        video = np.empty((clips * crops, frames, 3, size, size), np.uint8)
        for c, picks in enumerate(per_clip):
            for t, i in enumerate(picks):
                video[c * crops : (c + 1) * crops, t] = by_index[_nearest(available, i)]
        warnings = _warnings(container, stream, index, fps, lost, len(wanted), stats.errors)
        info = _info(stream, index, fps, duration, per_clip, stats.seeks, turns[0], warnings)
        if hwaccel is not None and stream.codec_context.is_hwaccel:
            info = replace(info, decoder="cuda")
        return video, info
    finally:
        container.close()


def _refuse_still(container, stream, index: _Index) -> None:
    fmt = container.format.name
    image = fmt.endswith("_pipe") or bool(set(fmt.split(",")) & _IMAGE_FORMATS)
    if index.count < 2 and (image or stream.codec_context.name in _IMAGE_CODECS):
        raise NotAVideo(
            f"this is a still image ({fmt.removesuffix('_pipe')}), not a video; "
            "an animated GIF or any video with two or more frames works"
        )


def _warnings(container, stream, index: _Index, fps, lost, wanted, errors) -> tuple[str, ...]:
    out = []
    announced = _announced(container, stream, fps)
    if index.cut:
        out.append(
            f"the stream is cut short or damaged: {index.count} frames could be read"
            + (f" of the {announced} the container announces" if announced > index.count else "")
            + "; the answer is sampled from those"
        )
    elif announced > 1.05 * index.count + 1:
        out.append(
            f"the container announces {announced} frames but the stream holds "
            f"{index.count}; the answer is sampled from those"
        )
    if lost:
        out.append(
            f"{lost} of the {wanted} sampled frames did not decode; the nearest decoded frames "
            "stand in for them"
        )
    elif errors:
        out.append(f"{errors} damaged packets were skipped")
    return tuple(out)


def _info(stream, index, fps, duration, per_clip, seeks, turns, warnings) -> VideoInfo:
    width, height = stream.codec_context.width, stream.codec_context.height
    if turns % 2:
        width, height = height, width
    tb = float(stream.time_base) if stream.time_base else 0.0
    start = index.pts[0] if index.pts else 0

    def time_of(i: int) -> float:
        if index.pts and tb:
            return round((index.pts[i] - start) * tb, 3)
        return round(i / fps, 3) if fps else 0.0

    return VideoInfo(
        duration_s=round(duration, 3),
        fps=round(fps, 3),
        width=int(width),
        height=int(height),
        num_frames=index.count,
        sampled=tuple(tuple(s) for s in per_clip),
        times_s=tuple(tuple(time_of(i) for i in s) for s in per_clip),
        seeks=seeks,
        rotation=turns * 90,
        warnings=warnings,
    )


def decode_frames(source: bytes | Path, size: int, limits: Limits = Limits()) -> np.ndarray:  # noqa: B008
    """Every frame, scaled and center-cropped as `decode_clip` does: uint8 `(N, 3, size, size)`.

    Training caches these and samples with `segment_indices`, so a clip is preprocessed
    exactly as the server preprocesses it.
    """
    container = _open(source)
    try:
        stream = _video_stream(container)
        stream.thread_type = "AUTO"
        out = []
        decoder = _Decoder(container, stream, set(), limits)
        for frame in decoder.frames_from(None):
            out.append(scale_frame(frame, size, 1, limits)[0])
            if len(out) >= limits.max_frames:
                break
    finally:
        container.close()
    if not out:
        raise CorruptVideo("the video stream holds no decodable frame")
    return np.stack(out)
