"""POST /jobs, GET /jobs, GET /jobs/{id}, DELETE /jobs/{id}, GET /jobs/{id}/events."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from ...engine.errors import BadRequest, NotFound
from ...engine.labels import parse_labels
from ...jobs import JobList, JobRunner, JobStatus, job_status, status_json
from ...jobs.store import STATES
from ..deps import AdmissionDep, SettingsDep, app_part, require_key
from ..params import TimelineDep
from ..upload import spool_video
from .recognize import _BODY_DOC

router = APIRouter(tags=["jobs"], dependencies=[Depends(require_key)])
HEARTBEAT_S = 15.0


def get_jobs(request: Request) -> JobRunner:
    return app_part(request, "jobs")


JobsDep = Annotated[JobRunner, Depends(get_jobs)]


def _found(jobs: JobRunner, job_id: str):
    job = jobs.get(job_id)
    if job is None or (job.expires is not None and job.expires < time.time()):
        raise NotFound(f"no job {job_id!r} (finished jobs are deleted after ALT_JOB_TTL_S)")
    return job


def _json(body: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type="application/json", headers=headers)


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobStatus,
    response_model_exclude_none=True,
    openapi_extra=_BODY_DOC,
    summary="Start a timeline of a long video as a job",
)
async def submit(
    request: Request,
    jobs: JobsDep,
    admission: AdmissionDep,
    settings: SettingsDep,
    options: TimelineDep,
    labels: Annotated[list[str] | None, Query(description="label set, as for /recognize")] = None,
) -> Response:
    """Answers 202 at once with `Location: /jobs/{id}`; the upload is spooled to disk as it
    arrives. Poll `GET /jobs/{id}` or follow `GET /jobs/{id}/events`."""
    label_set = parse_labels(labels, settings.max_labels, settings.max_label_chars)
    jobs.admit()  # 429 before a byte is read when too many jobs wait
    async with admission.admit():
        job_id = jobs.new_id()
        path, size = await spool_video(request, settings, jobs.spool, job_id)
        try:
            jobs.admit()  # others may have been queued while this one uploaded
            job = jobs.submit(job_id, path, size, label_set, options)
        except BaseException:
            jobs.spool.discard(path)
            raise
    return _json(status_json(job, None), 202, {"Location": f"/jobs/{job.id}"})


@router.get("/jobs", response_model=JobList, response_model_exclude_none=True,
            summary="Recent jobs, newest first (without results)")  # fmt: skip
async def list_jobs(
    jobs: JobsDep,
    state: Annotated[str | None, Query(description=" | ".join(STATES))] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    if state is not None and state not in STATES:
        raise BadRequest(f"state must be one of {', '.join(STATES)}, not {state!r}")
    found = await asyncio.to_thread(jobs.store.recent, state, limit)
    items = [job_status(j, jobs.eta_s(j)).model_dump(mode="json", exclude_none=True)
             for j in found]  # fmt: skip
    return _json(json.dumps({"jobs": items}))


@router.get("/jobs/{job_id}", response_model=JobStatus, response_model_exclude_none=True,
            summary="A job's state, progress and, once done, its timeline")  # fmt: skip
async def get_job(job_id: str, jobs: JobsDep) -> Response:
    job = await asyncio.to_thread(_found, jobs, job_id)
    return _json(await asyncio.to_thread(status_json, job, jobs.eta_s(job)))


@router.delete("/jobs/{job_id}", response_model=JobStatus, response_model_exclude_none=True,
               responses={204: {"description": "the job had finished: it is deleted"}},
               summary="Cancel a job (its decode stops at once); a finished one is deleted")  # fmt: skip
async def delete_job(job_id: str, jobs: JobsDep) -> Response:
    job = _found(jobs, job_id)
    if job.finished_state:
        jobs.forget(job_id)
        return Response(status_code=204)
    job = await jobs.cancel(job_id) or job
    return _json(status_json(job, None, with_result=False))


@router.get(
    "/jobs/{job_id}/events",
    summary="Server-sent events: the job's status on every change, until it ends",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def job_events(job_id: str, jobs: JobsDep, request: Request) -> StreamingResponse:
    """Each event is `event: progress` (running), or `event: queued` / `succeeded` /
    `failed` / `cancelled`, with the status (no result) as data; the stream ends after a
    final state. A comment line every 15 s keeps proxies from closing it."""
    _found(jobs, job_id)
    queue = jobs.listen(job_id)

    async def stream():
        last = None
        quiet = 0.0
        try:
            while True:
                job = jobs.get(job_id)
                if job is None:
                    yield "event: deleted\ndata: {}\n\n"
                    return
                body = status_json(job, jobs.eta_s(job), with_result=False)
                if body != last:
                    kind = "progress" if job.state == "running" else job.state
                    yield f"event: {kind}\ndata: {body}\n\n"
                    last, quiet = body, 0.0
                if job.finished_state:
                    return
                try:
                    # Woken by this process's runner; the database is read again each
                    # second for jobs that another process runs.
                    await asyncio.wait_for(queue.get(), 1.0)
                except TimeoutError:
                    quiet += 1.0
                    if quiet >= HEARTBEAT_S:
                        yield ": keep-alive\n\n"
                        quiet = 0.0
                if await request.is_disconnected():
                    return
        finally:
            jobs.unlisten(job_id, queue)

    return StreamingResponse(
        stream(), media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )  # fmt: skip
