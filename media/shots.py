"""Shot boundaries: FFmpeg's scene-change score (the `select` filter's `scene` variable, the
sum of absolute differences between consecutive frames, normalized and corrected for a
global brightness change) on frames scaled down to 64x36, through PyAV's filter graph.

This decodes every frame of the video (a cut can fall on any of them), so it costs a full
decode pass at the codec's speed; the scaling to 64x36 keeps the rest cheap.
"""

from __future__ import annotations

from pathlib import Path

import av

from .decode import Limits, _check_size, _open, _video_stream, _why
from .errors import CorruptVideo

SCENE_THRESHOLD = 0.3  # FFmpeg's documented starting point for `select='gt(scene,0.3)'`
MIN_SHOT_S = 1.0  # a cut closer than this to the previous one is dropped (flashes, noise)


def find_cuts(
    source: bytes | Path,
    limits: Limits = Limits(),  # noqa: B008 - frozen
    threshold: float = SCENE_THRESHOLD,
    min_shot_s: float = MIN_SHOT_S,
) -> list[float]:
    """Times (seconds from the first frame) at which a new shot starts; the first shot's
    start (0) is not listed."""
    container = _open(source)
    try:
        stream = _video_stream(container)
        stream.thread_type = "AUTO"
        graph = av.filter.Graph()
        head = graph.add_buffer(template=stream)
        chain = [
            head,
            graph.add("scale", "64:36"),
            graph.add("select", f"gt(scene\\,{threshold})"),
            graph.add("buffersink"),
        ]
        for a, b in zip(chain, chain[1:]):
            a.link_to(b)
        graph.configure()
        tb = float(stream.time_base) if stream.time_base else 0.0
        start: float | None = None
        cuts: list[float] = []
        frames = 0
        try:
            for frame in container.decode(stream):
                _check_size(frame.width, frame.height, limits)
                frames += 1
                if frames > limits.max_frames:
                    break
                if frame.pts is None or not tb:
                    continue
                t = frame.pts * tb
                start = t if start is None else start
                graph.push(frame)
                while True:
                    try:
                        out = graph.pull()
                    except (av.BlockingIOError, av.EOFError):
                        break
                    at = float(out.pts * tb) - start
                    if at >= min_shot_s and (not cuts or at - cuts[-1] >= min_shot_s):
                        cuts.append(round(at, 3))
        except av.FFmpegError as err:
            if not frames:
                raise CorruptVideo(f"the video stream does not decode ({_why(err)})") from None
        return cuts
    finally:
        container.close()
