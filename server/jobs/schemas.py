"""What the job routes answer."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field

from ..engine.schemas import ErrorBody, TimelineRecognition
from .store import Job


class JobProgress(BaseModel):
    windows_done: int
    windows_total: int = Field(description="0 until the video's index is read")
    fraction: float
    eta_s: float | None = Field(None, description="estimated seconds left, while running")


class JobStatus(BaseModel):
    id: str
    state: str = Field(description="queued | running | succeeded | failed | cancelled")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    expires_at: datetime | None = Field(None, description="when a finished job is deleted")
    progress: JobProgress
    attempts: int = Field(description="runs started (a run the server's stop interrupted counts)")
    video_bytes: int
    labels: list[str] | None = None
    params: dict
    result: TimelineRecognition | None = None
    error: ErrorBody | None = None
    links: dict[str, str]


class JobList(BaseModel):
    jobs: list[JobStatus]


def _when(t: float | None) -> datetime | None:
    return datetime.fromtimestamp(t, UTC) if t is not None else None


def job_status(job: Job, eta_s: float | None) -> JobStatus:
    """Without the result: routes splice the stored JSON in as it is (`result_json`)."""
    total = job.total
    done = job.total if job.state == "succeeded" else job.done
    return JobStatus(
        id=job.id,
        state=job.state,
        created_at=datetime.fromtimestamp(job.created, UTC),
        started_at=_when(job.started),
        finished_at=_when(job.finished),
        expires_at=_when(job.expires),
        progress=JobProgress(
            windows_done=done,
            windows_total=total,
            fraction=round(done / total, 4) if total else 0.0,
            eta_s=eta_s,
        ),  # fmt: skip
        attempts=job.attempts,
        video_bytes=job.video_bytes,
        labels=job.labels,
        params=job.options,
        error=ErrorBody(**job.error) if job.error else None,
        links={"self": f"/jobs/{job.id}", "events": f"/jobs/{job.id}/events"},
    )


def status_json(job: Job, eta_s: float | None, with_result: bool = True) -> str:
    """The status as JSON, the stored result spliced in unparsed."""
    body = job_status(job, eta_s).model_dump_json(exclude_none=True)
    if with_result and job.result:
        body = body[:-1] + ',"result":' + job.result + "}"
    return body
