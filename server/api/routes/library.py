"""The video library: POST /videos (index a video once), GET /videos, GET /videos/{id},
DELETE /videos/{id}, GET /videos/{id}/timeline (any label set, no decoding),
GET /videos/{id}/media, GET /search (moments by text)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response

from ...engine.errors import BadRequest, Conflict, NotFound, Unavailable
from ...engine.labels import parse_labels
from ...engine.schemas import TimelineRecognition
from ...engine.timeline import TimelineOptions
from ...jobs import JobRunner
from ...library import Library, VideoRow, check_id, relabel_options, search_moments, stored_timeline
from ...library.schemas import SearchAnswer, VideoList, VideoStatus, video_status
from ..deps import AdmissionDep, EngineDep, SettingsDep, require_key
from ..params import TimelineDep
from ..upload import spool_video
from .jobs import JobsDep
from .recognize import _BODY_DOC

router = APIRouter(tags=["library"], dependencies=[Depends(require_key)])
MAX_QUERIES = 16


def get_library(request: Request) -> Library:
    """The served library, opened at the first request that needs it (a sync dependency:
    FastAPI calls it in a thread, off the event loop)."""
    opener = getattr(request.app.state, "library", None)
    if opener is None:
        raise Unavailable("the library is unavailable: the server is starting")
    return opener()


LibraryDep = Annotated[Library, Depends(get_library)]


def _json(body: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _video(library: Library, video_id: str) -> VideoRow:
    video = library.video(video_id)
    if video is None:
        raise NotFound(f"no video {video_id!r} in the library")
    return video


def _status(jobs: JobRunner | None, video: VideoRow) -> VideoStatus:
    """The library's row, with the state and progress of its indexing job while it has one."""
    job = jobs.get(video.id) if jobs is not None else None
    if job is not None and job.kind == "index" and job.state != "succeeded":
        return video_status(video, job.state, job.done, job.total, job.error)
    return video_status(video, video.state, 0, 0)


def _jobs_or_none(request: Request) -> JobRunner | None:
    return getattr(request.app.state, "jobs", None)


@router.post(
    "/videos",
    status_code=202,
    response_model=VideoStatus,
    response_model_exclude_none=True,
    openapi_extra=_BODY_DOC,
    summary="Index a video into the library (a job: its windows embedded once)",
)
async def add_video(
    request: Request,
    jobs: JobsDep,
    library: LibraryDep,
    admission: AdmissionDep,
    settings: SettingsDep,
    options: TimelineDep,
    name: Annotated[str | None, Query(max_length=200, description="a name to list it by")] = None,
) -> Response:
    """Answers 202 at once with `Location: /videos/{id}`; the upload is spooled to disk and
    indexed as a durable job (`GET /jobs/{id}/events` follows it). The windows' options
    (`window_s`, `stride_s`, `shots`) are fixed here; labels, smoothing and floors are
    chosen per question later."""
    jobs.admit()
    async with admission.admit():
        video_id = jobs.new_id()
        path, size = await spool_video(request, settings, jobs.spool, video_id)
        try:
            jobs.admit()
            row = VideoRow(video_id, name or f"upload {video_id[:8]}", "", "queued", time.time(),
                           {"window_s": options.window_s, "stride_s": options.stride_s,
                            "shots": options.shots})  # fmt: skip
            await asyncio.to_thread(library.add_video, row)
            jobs.submit(video_id, path, size, None, options, kind="index")
        except BaseException:
            jobs.spool.discard(path)
            raise
    body = _status(jobs, row).model_dump_json(exclude_none=True)
    return _json(body, 202, {"Location": f"/videos/{video_id}"})


@router.get("/videos", response_model=VideoList, response_model_exclude_none=True,
            summary="The library's videos, oldest first, a page at a time")  # fmt: skip
async def list_videos(
    request: Request,
    library: LibraryDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    rows, total = await asyncio.to_thread(
        lambda: (library.videos(offset, limit), library.count_videos())
    )
    jobs = _jobs_or_none(request)
    items = [_status(jobs, v).model_dump(mode="json", exclude_none=True) for v in rows]
    nxt = offset + len(rows) if offset + len(rows) < total else None
    return _json(json.dumps({"videos": items, "total": total, "next_offset": nxt}))


@router.get("/videos/{video_id}", response_model=VideoStatus, response_model_exclude_none=True,
            summary="A video's indexing state, progress and facts")  # fmt: skip
async def get_video(video_id: str, request: Request, library: LibraryDep) -> Response:
    video = await asyncio.to_thread(_video, library, video_id)
    return _json(_status(_jobs_or_none(request), video).model_dump_json(exclude_none=True))


@router.delete("/videos/{video_id}", status_code=204,
               summary="Delete a video: its windows, its row and its file (indexing stops)")  # fmt: skip
async def delete_video(video_id: str, request: Request, library: LibraryDep) -> Response:
    await asyncio.to_thread(_video, library, video_id)
    jobs = _jobs_or_none(request)
    if jobs is not None:
        job = jobs.get(video_id)
        if job is not None and not job.finished_state:
            await jobs.cancel(video_id)
    await asyncio.to_thread(library.delete_video, video_id)
    return Response(status_code=204)


@router.get("/videos/{video_id}/timeline", response_model=TimelineRecognition,
            response_model_exclude_none=True,
            summary="A stored video's timeline for any label set, without decoding")  # fmt: skip
async def video_timeline(
    video_id: str,
    request: Request,
    library: LibraryDep,
    engine: EngineDep,
    settings: SettingsDep,
    labels: Annotated[list[str] | None, Query(description="label set, as for /recognize")] = None,
    smoothing: Annotated[float, Query(ge=0, le=1000)] = TimelineOptions.smoothing,
    min_similarity: Annotated[float | None, Query(ge=-1, le=1)] = None,
    windows: Annotated[bool, Query(description="include every window's scores")] = False,
    top_k: Annotated[int, Query(ge=1, le=1000)] = 5,
) -> Response:
    """The answer of a job's timeline, from the stored windows: the same schema, the same
    numbers for the same labels and options. Decoding and the image tower are not run;
    a new label set costs its text encoding."""
    t0 = time.perf_counter()
    label_set = parse_labels(labels, settings.max_labels, settings.max_label_chars)
    label_set = label_set or list(engine.info.default_labels)
    label_emb = await engine.model.label_embeddings(label_set)
    jobs = _jobs_or_none(request)

    def answer() -> str:  # one hop to a thread: the row, the windows, the timeline
        video = _video(library, video_id)
        state = _status(jobs, video)
        if state.state != "succeeded":
            raise Conflict(
                f"video {video_id!r} is {state.state} ({state.progress.windows_done} of "
                f"{state.progress.windows_total} windows indexed); its timeline is answered "
                "once it has succeeded"
            )
        stored = library.windows(video_id, video.created)
        options = relabel_options(video, smoothing, min_similarity, windows, top_k)
        timeline = stored_timeline(engine.info, video, stored, label_set, label_emb, options, 0.0)
        timeline.timings.total_ms = round((time.perf_counter() - t0) * 1000, 2)  # all of it
        return timeline.model_dump_json(exclude_none=True)

    return _json(await asyncio.to_thread(answer))


@router.get("/videos/{video_id}/media", summary="The video file, for playing a moment",
            responses={200: {"content": {"video/mp4": {}}}})  # fmt: skip
async def video_media(video_id: str, library: LibraryDep) -> Response:
    video = await asyncio.to_thread(_video, library, video_id)
    if not video.media:
        raise NotFound(f"the library keeps no file of video {video_id!r}")
    return FileResponse(video.media, media_type="video/mp4")


@router.get("/search", response_model=SearchAnswer, response_model_exclude_none=True,
            summary="Moments of the library's videos that match a text, with their entities")  # fmt: skip
async def search(
    library: LibraryDep,
    engine: EngineDep,
    settings: SettingsDep,
    q: Annotated[list[str], Query(description="what to find; repeat for several queries")],
    k: Annotated[
        int | None,
        Query(ge=1, description="moments per query (default 10, at most ALT_MAX_SEARCH_K)"),
    ] = None,
    video: Annotated[str | None, Query(description="search this video only")] = None,
    min_similarity: Annotated[float | None, Query(ge=-1, le=1)] = None,
) -> Response:
    """Each query is encoded as a label is (the model's templates), compared with every
    stored window (exactly, or through the ANN index on a large library), and the best
    windows are merged into moments: neighbouring windows of one video that match become
    one moment spanning them, ranked by its best window."""
    t0 = time.perf_counter()
    queries = [" ".join(text.split()) for text in q]
    if len(queries) > MAX_QUERIES:
        raise BadRequest(f"{len(queries)} queries given; the limit is {MAX_QUERIES}")
    if any(not text for text in queries):
        raise BadRequest("q must not be empty")
    if any(len(text) > settings.max_query_chars for text in queries):
        raise BadRequest(f"q is longer than {settings.max_query_chars} characters "
                         "(ALT_MAX_QUERY_CHARS)")  # fmt: skip
    k = min(10, settings.max_search_k) if k is None else k
    if k > settings.max_search_k:
        raise BadRequest(f"k={k} is over the limit of {settings.max_search_k} (ALT_MAX_SEARCH_K)")
    if video is not None:
        try:
            check_id(video)
        except KeyError:
            raise NotFound(f"no video {video!r} in the library") from None
        await asyncio.to_thread(_video, library, video)
    info = engine.info
    t1 = time.perf_counter()
    emb = await engine.model.label_embeddings(queries)
    own = await engine.model.label_embeddings(list(info.default_labels))
    t2 = time.perf_counter()
    found = await asyncio.to_thread(
        search_moments, library, info, queries, emb, own, k, video, min_similarity
    )
    t3 = time.perf_counter()
    body = {
        "results": found,
        "timings": {"encode_ms": round((t2 - t1) * 1000, 2), "search_ms": round((t3 - t2) * 1000, 2),
                    "total_ms": round((t3 - t0) * 1000, 2)},
    }  # fmt: skip
    return _json(json.dumps(body))
