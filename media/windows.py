"""A long video as a sequence of windows, decoded in one pass.

A window is a span of the video (`window_s` long, one every `stride_s`) sampled as one clip
is (`segment_indices` over the frames inside it, the model's frames per window). Every
window's frames are planned from the demuxed index before any pixel is decoded; all of them
are then decoded in one forward pass through the stream (seeking only forward, to a
keyframe that lies between the decoder and the next wanted frame), and handed out a few
windows at a time, as soon as each is complete, so memory holds a chunk of windows and not
the video.

With `cuts` (shot boundaries, seconds), windows never straddle a cut: each shot is planned
on its own, and a shot shorter than a window is one window.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from .decode import (
    Limits,
    _indexed,
    _open,
    _rotation,
    _Stats,
    _timed_frames,
    _untimed_frames,
    _video_stream,
    _why,
    scale_frame,
)
from .errors import CorruptVideo
from .sampling import segment_indices


@dataclass(frozen=True)
class Window:
    start_s: float
    end_s: float
    frames: tuple[int, ...]  # the frame indices sampled
    times_s: tuple[float, ...]  # their presentation times


@dataclass(frozen=True)
class WindowedInfo:
    """What the index says of the video, before any pixel is decoded."""

    duration_s: float
    fps: float
    width: int  # coded size (the first decoded frame tells the rotation)
    height: int
    num_frames: int
    windows: tuple[Window, ...]
    shots: tuple[tuple[float, float], ...] = ()  # (start_s, end_s) of each shot, when cut
    warnings: tuple[str, ...] = field(default=())


@dataclass
class WindowChunk:
    first: int  # index of its first window
    video: np.ndarray  # uint8 (windows * crops, frames, 3, size, size)
    windows: tuple[Window, ...]
    rotation: int = 0  # degrees counterclockwise applied for display


def plan_windows(
    times: Sequence[float],
    duration_s: float,
    window_s: float,
    stride_s: float,
    frames: int,
    cuts: Sequence[float] = (),
) -> list[Window]:
    """Windows over frames presented at `times` (seconds from the first frame, sorted)."""
    assert window_s > 0 and stride_s > 0 and frames >= 1 and len(times) >= 1
    bounds = [0.0, *sorted(c for c in cuts if 0 < c < duration_s), duration_s]
    windows = []
    for lo, hi in zip(bounds, bounds[1:]):
        span = hi - lo
        count = 1 if span <= window_s else math.ceil((span - window_s) / stride_s - 1e-9) + 1
        for k in range(count):
            start = lo + min(k * stride_s, max(0.0, span - window_s))
            end = min(hi, start + window_s)
            a = bisect.bisect_left(times, start - 1e-6)
            b = bisect.bisect_left(times, end - 1e-6)
            if b <= a:  # no frame starts inside: the frame shown at `start`
                a = max(0, min(len(times) - 1, bisect.bisect_right(times, start) - 1))
                b = a + 1
            picks = tuple(a + i for i in segment_indices(b - a, frames))
            windows.append(
                Window(round(start, 3), round(end, 3), picks, tuple(times[i] for i in picks))
            )
    return windows


class WindowedVideo:
    """Open and index once (`info`), then `chunks(n)` decodes every window in one pass."""

    def __init__(
        self,
        source: bytes | Path,
        frames: int,
        size: int,
        window_s: float,
        stride_s: float,
        crops: int = 1,
        limits: Limits = Limits(),  # noqa: B008 - frozen
        threads: int = 0,
        cuts: Sequence[float] = (),
        hwaccel=None,
    ) -> None:
        self.source, self.frames, self.size, self.crops = source, frames, size, crops
        self.limits, self.threads, self.hwaccel = limits, threads, hwaccel
        self.stats = _Stats()
        self.container = _open(source, hwaccel)
        try:
            self.stream, self.index, fps, duration = _indexed(self.container, limits, threads)
            ctx = self.stream.codec_context
            self.times = self._times(fps)
            windows = plan_windows(self.times, duration, window_s, stride_s, frames, cuts)
            bounds = [0.0, *sorted(c for c in cuts if 0 < c < duration), duration]
            shots = tuple(zip(bounds, bounds[1:])) if cuts else ()
            warnings = ("the stream is cut short or damaged; windows cover the frames read",)
            self.info = WindowedInfo(
                duration_s=round(duration, 3),
                fps=round(fps, 3),
                width=int(ctx.width),
                height=int(ctx.height),
                num_frames=self.index.count,
                windows=tuple(windows),
                shots=tuple((round(a, 3), round(b, 3)) for a, b in shots),
                warnings=warnings if self.index.cut else (),
            )
        except BaseException:
            self.container.close()
            raise

    def _times(self, fps: float) -> list[float]:
        tb = float(self.stream.time_base) if self.stream.time_base else 0.0
        if self.index.pts and tb:
            start = self.index.pts[0]
            return [round((p - start) * tb, 3) for p in self.index.pts]
        return [round(i / fps, 3) if fps else float(i) for i in range(self.index.count)]

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> WindowedVideo:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _frames(self, wanted: list[int], convert) -> Iterator[tuple[int, np.ndarray]]:
        """(frame index, converted frame) in increasing index order."""
        if self.index.pts:
            order = {self.index.pts[i]: i for i in wanted}
            keyed = [self.index.pts[i] for i in wanted]
            for pts, frame in _timed_frames(
                self.container, self.stream, self.index, keyed, convert, self.limits, self.stats
            ):
                yield order[pts], frame
        else:
            self.container.close()  # rewind by reopening: untimed streams may not seek
            self.container = _open(self.source, self.hwaccel)
            self.stream = _video_stream(self.container)
            self.stream.codec_context.thread_count = self.threads
            yield from _untimed_frames(
                self.container, self.stream, set(wanted), convert, self.limits, self.stats
            )

    def chunks(self, per_chunk: int, first: int = 0) -> Iterator[WindowChunk]:
        """Every window from `first` on, `per_chunk` at a time, in order; memory holds the
        frames of the windows not yet handed out, never the video. Windows before `first`
        are not decoded (a resumed job has them already)."""
        windows = self.info.windows
        if first >= len(windows):
            return
        wanted = sorted({i for w in windows[first:] for i in w.frames})
        turns: list[int] = []

        def convert(frame):
            if not turns:
                turns.append(_rotation(frame))
            return scale_frame(frame, self.size, self.crops, self.limits)

        have: dict[int, np.ndarray] = {}
        last: list[np.ndarray] = []  # the latest decoded frame, standing in for lost ones
        ready: list[int] = []
        nxt = first

        def build() -> WindowChunk:
            picked = [windows[w] for w in ready]
            video = np.empty(
                (len(picked) * self.crops, self.frames, 3, self.size, self.size), np.uint8
            )
            available = sorted(have)
            for k, w in enumerate(picked):
                for t, i in enumerate(w.frames):
                    if i in have:
                        frame = have[i]
                    elif available:  # lost to damage: the nearest decoded frame
                        j = bisect.bisect_right(available, i)
                        frame = have[available[j - 1] if j else available[0]]
                    else:
                        frame = last[0]
                    video[k * self.crops : (k + 1) * self.crops, t] = frame
            chunk = WindowChunk(ready[0], video, tuple(picked), turns[0] * 90 if turns else 0)
            ready.clear()
            # Frames no window still to come needs are dropped (the newest is kept).
            keep_from = min(windows[nxt].frames) if nxt < len(windows) else math.inf
            for i in [i for i in have if i < keep_from]:
                last[:] = [have.pop(i)]
            return chunk

        try:
            for i, frame in self._frames(wanted, convert):
                have[i] = frame
                while nxt < len(windows) and max(windows[nxt].frames) <= i:
                    ready.append(nxt)
                    nxt += 1
                    if len(ready) == per_chunk:
                        yield build()
        except av.FFmpegError as err:
            raise CorruptVideo(f"the video stream does not decode ({_why(err)})") from None
        if not have and not last:
            raise CorruptVideo("no frame of the video stream decodes; is the file damaged?")
        while nxt < len(windows):  # the stream ended early: the nearest frames stand in
            ready.append(nxt)
            nxt += 1
            if len(ready) == per_chunk:
                yield build()
        if ready:
            yield build()
