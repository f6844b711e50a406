"""What the stream routes take and answer."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class AlertSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = Field(min_length=1, max_length=200)
    min_score: float | None = Field(None, ge=0, le=1, description="segment's mean probability")
    min_similarity: float | None = Field(None, ge=-1, le=1, description="segment's mean cosine")
    min_duration_s: float = Field(0.0, ge=0, le=86_400, description="how long it has lasted")


class WebhookSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048)
    events: list[Literal["segment", "alert", "status"]] = Field(
        ["alert"], description="which events are posted"
    )


class StreamSpec(BaseModel):
    """A stream to watch: where, which labels, how windows are cut and labelled."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048,
                     description="rtsp(s)://, rtmp(s)://, http(s):// (HLS, MPEG-TS), udp://, srt://")  # fmt: skip
    labels: list[str] | str | None = Field(
        None, description="labels, a comma-separated string, or a named set ('@kinetics400'); "
        "the model's own set when absent"
    )  # fmt: skip
    window_s: float = Field(4.0, gt=0, le=60)
    stride_s: float = Field(2.0, gt=0, le=60)
    smoothing: float = Field(4.0, ge=0, le=100, description="nats per change of label")
    min_similarity: float | None = Field(None, ge=-1, le=1,
                                         description="below it for every label: no action")  # fmt: skip
    lag_windows: int = Field(2, ge=0, le=30,
                             description="windows after a window arrives that its label is fixed")  # fmt: skip
    alerts: list[AlertSpec] = Field(default_factory=list, max_length=32)
    webhook: WebhookSpec | None = None
    transport: Literal["tcp", "udp"] | None = Field(None, description="RTSP transport (tcp)")
    listen: bool = Field(
        False, description="RTSP: receive a stream pushed to this address (needs "
        "ALT_STREAMS_ALLOW_PRIVATE: the server opens a port)"
    )  # fmt: skip
    realtime: bool = Field(True, description="file:// sources play at their own rate")

    @model_validator(mode="after")
    def _stride_within_window(self) -> StreamSpec:
        if self.stride_s > self.window_s:
            raise ValueError("stride_s must not exceed window_s")
        if self.listen and not self.url.lower().startswith(("rtsp://", "rtsps://")):
            raise ValueError("listen is for rtsp:// URLs")
        return self


class StreamCounts(BaseModel):
    frames: int = Field(description="frames decoded")
    windows: int = Field(description="windows labelled")
    windows_dropped: int = Field(description="windows dropped because the model was behind")
    reconnects: int
    events: int = Field(description="segment and alert events sent")


class StreamStatus(BaseModel):
    id: str
    url: str = Field(description="the source, its password hidden")
    state: str = Field(description="connecting | live | reconnecting | stopped | failed")
    created_at: datetime
    labels: list[str]
    params: dict
    lag_s: float = Field(description="a window's label is fixed this long after it arrives")
    delay_s: float | None = Field(
        None, description="seconds from the last labelled window's last frame to its label"
    )
    video: dict | None = Field(None, description="width, height, fps of the source")
    counts: StreamCounts
    current: dict | None = Field(None, description="the open segment")
    recent: list[dict] = Field(default_factory=list, description="closed segments, newest last")
    error: str | None = Field(None, description="why the last connection ended")
    webhook_secret: str | None = Field(
        None, description="HMAC-SHA256 key of the webhook's X-Alt-Signature (only in the 201)"
    )
    links: dict[str, str]


class StreamList(BaseModel):
    streams: list[StreamStatus]
