"""Response models: the API contract, also what /docs shows."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class Explain(StrEnum):
    none = "none"
    entities = "entities"
    regions = "regions"


class Action(BaseModel):
    label: str
    score: float = Field(description="probability over the label set, averaged over views")
    similarity: float = Field(
        description="cosine between the video and the label embedding, averaged over views: "
        "not calibrated, but comparable across label sets and requests of one model, so a "
        "client can set a floor below which none of the labels fits"
    )


class AlignedEntity(BaseModel):
    name: str
    score: float = Field(description="share of the clip's image area aligned to this entity")
    frames: list[int] = Field(description="sampled frames (0-based) in which it was aligned")


class RegionMap(BaseModel):
    frame: int
    time_s: float
    grid: list[list[int]] = Field(
        description="patch grid (rows of columns): index into `entities`, -1 for none of them"
    )


class Crop(BaseModel):
    x: int
    y: int
    width: int
    height: int


class VideoFacts(BaseModel):
    duration_s: float
    fps: float
    width: int = Field(description="as displayed (after rotation)")
    height: int
    frames: int = Field(description="frames the video stream holds")
    rotation: int = Field(0, description="degrees counterclockwise turned for display")
    frames_sampled: list[int] = Field(description="frame indices of the first temporal view")
    times_s: list[float]
    crop: Crop = Field(description="the square of the original frame the model saw (center crop)")


class Timings(BaseModel):
    decode_ms: float
    queue_ms: float
    inference_ms: float
    total_ms: float


class ModelFacts(BaseModel):
    name: str
    version: str
    backend: str


class Recognition(BaseModel):
    actions: list[Action]
    entities: list[AlignedEntity] | None = None
    regions: list[RegionMap] | None = None
    video: VideoFacts
    timings: Timings
    model: ModelFacts
    warnings: list[str] = Field(
        default_factory=list,
        description="what degraded the answer, e.g. a stream cut short: the frames decoded, "
        "out of those the container announced",
    )


class ErrorBody(BaseModel):
    error: str
    detail: str


class LabelsAnswer(BaseModel):
    labels: list[str] = Field(description="the model's default label set")
    templates: list[str] = Field(description="prompt templates averaged per label")
    domain: str = Field(description="what the model knows")


class LabelSetSummary(BaseModel):
    name: str
    title: str
    labels: int = Field(description="how many labels the set has")


class LabelSets(BaseModel):
    label_sets: list[LabelSetSummary]


class LabelSetAnswer(BaseModel):
    name: str
    labels: list[str]


class ModelAnswer(BaseModel):
    name: str
    version: str
    backend: str
    device: str
    dtype: str
    frames: int = Field(description="frames sampled per view")
    image_size: int
    views: int = Field(description="views (temporal clips x spatial crops) per video")
    domain: str
    card: dict = Field(description="the checkpoint's card: its domain and sources")
    default_labels: int
    entities: int
    label_templates: list[str]


class EntitiesAnswer(BaseModel):
    entities: list[str]


class Alive(BaseModel):
    status: str


class Samples(BaseModel):
    samples: list[str] = Field(description="file names under /samples/{name}")


# ---- timelines (long videos) -----------------------------------------------------------


class SegmentEntity(BaseModel):
    name: str
    score: float = Field(description="share of the segment's image area aligned to it")
    times_s: list[float] = Field(description="times of the sampled frames in which it was aligned")


class Segment(BaseModel):
    start_s: float
    end_s: float
    label: str | None = Field(
        description="the action of this stretch; null: none of the labels fits (every "
        "similarity under `min_similarity`)"
    )
    score: float = Field(description="probability of the label, averaged over the windows")
    similarity: float = Field(description="cosine to the label, averaged over the windows")
    windows: int = Field(description="windows merged into this segment")
    entities: list[SegmentEntity] = Field(default_factory=list)


class LabelTime(BaseModel):
    label: str
    seconds: float = Field(description="time on screen: the length of its segments")
    share: float = Field(description="of the video's duration")
    segments: int


class WindowScores(BaseModel):
    start_s: float
    end_s: float
    actions: list[Action]


class Shot(BaseModel):
    start_s: float
    end_s: float


class TimelineParams(BaseModel):
    window_s: float
    stride_s: float
    smoothing: float = Field(description="the switch penalty (nats) of the smoothing")
    min_similarity: float | None
    shots: bool


class TimelineVideo(BaseModel):
    duration_s: float
    fps: float
    width: int = Field(description="as displayed (after rotation)")
    height: int
    frames: int = Field(description="frames the video stream holds")
    rotation: int = 0
    windows: int = Field(description="windows the video was cut into")
    crop: Crop


class TimelineRecognition(BaseModel):
    actions: list[Action] = Field(description="the labels ranked over the whole video")
    entities: list[SegmentEntity] | None = Field(
        None, description="the entities aligned most over the whole video"
    )
    timeline: list[Segment]
    summary: list[LabelTime] = Field(description="labels ranked by their time on screen")
    windows: list[WindowScores] | None = Field(None, description="with windows=true")
    shots: list[Shot] | None = Field(None, description="with shots=true")
    params: TimelineParams
    video: TimelineVideo
    timings: Timings
    model: ModelFacts
    warnings: list[str] = Field(default_factory=list)
