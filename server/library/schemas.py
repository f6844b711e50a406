"""What the library routes answer."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field

from ..engine.schemas import ErrorBody, SegmentEntity
from .store import VideoRow


class IndexProgress(BaseModel):
    windows_done: int
    windows_total: int = Field(description="0 until the video's index is read")
    fraction: float


class StoredVideoFacts(BaseModel):
    duration_s: float
    fps: float
    width: int = Field(description="as displayed (after rotation)")
    height: int
    frames: int
    rotation: int
    windows: int


class VideoParams(BaseModel):
    window_s: float
    stride_s: float
    shots: bool


class VideoStatus(BaseModel):
    id: str
    name: str
    state: str = Field(description="queued | running | succeeded | failed | cancelled")
    created_at: datetime
    progress: IndexProgress
    video: StoredVideoFacts | None = Field(None, description="once the video's index is read")
    params: VideoParams = Field(description="the windows it was indexed with")
    error: ErrorBody | None = None
    links: dict[str, str]


class VideoList(BaseModel):
    videos: list[VideoStatus]
    total: int = Field(description="videos in the library")
    next_offset: int | None = Field(None, description="the next page's offset, if any")


class Moment(BaseModel):
    query: str
    video_id: str
    name: str
    start_s: float
    end_s: float
    score: float = Field(
        description="probability of the query against the model's own labels, at the "
        "moment's best window (how much more it looks like the query than like any action "
        "the model knows)"
    )
    similarity: float = Field(description="cosine with the query at the best window")
    windows: int = Field(description="neighbouring windows merged into this moment")
    entities: list[SegmentEntity]


class SearchTimings(BaseModel):
    encode_ms: float = Field(description="the queries through the text tower (0 when cached)")
    search_ms: float
    total_ms: float


class SearchAnswer(BaseModel):
    results: list[Moment] = Field(description="per query in the order asked, best first")
    timings: SearchTimings


def _facts(facts: dict) -> StoredVideoFacts | None:
    if not facts:
        return None
    turned = facts.get("rotation", 0) % 180
    width, height = facts["coded_width"], facts["coded_height"]
    return StoredVideoFacts(
        duration_s=facts["duration_s"], fps=facts["fps"],
        width=height if turned else width, height=width if turned else height,
        frames=facts["frames"], rotation=facts.get("rotation", 0), windows=facts["windows"],
    )  # fmt: skip


def video_status(
    video: VideoRow, state: str, done: int, total: int, error: dict | None = None
) -> VideoStatus:
    """`state`, `done`, `total`, `error`: the indexing job's while it has one."""
    total = total or video.facts.get("windows", 0)
    error = error or video.error
    if state == "succeeded":
        done = total
    links = {"self": f"/videos/{video.id}", "events": f"/jobs/{video.id}/events"}
    if state == "succeeded":
        links["timeline"] = f"/videos/{video.id}/timeline"
        if video.media:
            links["media"] = f"/videos/{video.id}/media"
    return VideoStatus(
        id=video.id,
        name=video.name,
        state=state,
        created_at=datetime.fromtimestamp(video.created, UTC),
        progress=IndexProgress(
            windows_done=done,
            windows_total=total,
            fraction=round(done / total, 4) if total else 0.0,
        ),  # fmt: skip
        video=_facts(video.facts),
        params=VideoParams(
            window_s=video.options["window_s"],
            stride_s=video.options["stride_s"],
            shots=video.options["shots"],
        ),  # fmt: skip
        error=ErrorBody(**error) if error else None,
        links=links,
    )
