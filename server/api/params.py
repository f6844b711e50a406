"""Query parameters shared by `POST /recognize?timeline=true` and `POST /jobs`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from ..engine.errors import BadRequest
from ..engine.timeline import TimelineOptions


def timeline_options(
    window_s: Annotated[
        float, Query(gt=0, le=600, description="timeline: seconds of video per window")
    ] = TimelineOptions.window_s,
    stride_s: Annotated[
        float | None,
        Query(
            ge=0.25,
            le=600,
            description="timeline: seconds between window starts (default: half a window)",
        ),
    ] = None,
    smoothing: Annotated[
        float,
        Query(
            ge=0,
            le=1000,
            description="timeline: the switch penalty, in nats; 0 labels each window alone",
        ),
    ] = TimelineOptions.smoothing,
    min_similarity: Annotated[
        float | None,
        Query(
            ge=-1,
            le=1,
            description="timeline: below this cosine for every label, a stretch is null (none of these)",
        ),
    ] = None,
    shots: Annotated[
        bool,
        Query(description="timeline: detect cuts; no window straddles one, segments end at them"),
    ] = False,
    windows: Annotated[bool, Query(description="timeline: include every window's scores")] = False,
    top_k: Annotated[int, Query(ge=1, le=1000, description="actions to return")] = 5,
) -> TimelineOptions:
    stride = window_s / 2 if stride_s is None else stride_s
    if stride > window_s:
        raise BadRequest(f"stride_s ({stride:g}) must not exceed window_s ({window_s:g})")
    return TimelineOptions(window_s, max(stride, 0.25), smoothing, min_similarity, shots, windows,
                           top_k)  # fmt: skip


TimelineDep = Annotated[TimelineOptions, Depends(timeline_options)]
