"""POST /recognize."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from ...engine import Explain, Recognition
from ...engine.errors import ClientGone
from ...engine.labels import parse_labels
from ...engine.schemas import TimelineRecognition
from ..deps import AdmissionDep, EngineDep, SettingsDep, require_key
from ..params import TimelineDep
from ..upload import read_video

router = APIRouter(tags=["recognition"], dependencies=[Depends(require_key)])

_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"video": {"type": "string", "format": "binary"}},
                    "required": ["video"],
                }
            },
            "video/*": {"schema": {"type": "string", "format": "binary"}},
            "image/gif": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post(
    "/recognize",
    response_model=Recognition | TimelineRecognition,
    response_model_exclude_none=True,
    openapi_extra=_BODY_DOC,
    summary="Recognize the actions in a video and explain them",
)
async def recognize(
    request: Request,
    engine: EngineDep,
    admission: AdmissionDep,
    settings: SettingsDep,
    options: TimelineDep,
    labels: Annotated[
        list[str] | None,
        Query(
            description="label set: repeat (labels=a&labels=b), comma-separate, or name a shipped set (labels=@kinetics400, see /label-sets); default: the model's"
        ),
    ] = None,
    explain: Annotated[Explain, Query(description="none | entities | regions")] = Explain.entities,
    timeline: Annotated[
        bool,
        Query(
            description="answer with a timeline of actions over windows of the video "
            "(videos up to max_sync_duration_s; longer ones: POST /jobs)"
        ),
    ] = False,
) -> Response:
    """Admission comes first: beyond the server's capacity the answer is 429 at once.

    With `timeline=true` the answer is a `TimelineRecognition`: segments with their label,
    score and entities, a summary by time on screen, and (on request) every window's
    scores and the shots."""
    label_set = parse_labels(labels, settings.max_labels, settings.max_label_chars)
    async with admission.admit() as ticket:  # 429 here, before any upload byte is read
        data = await read_video(request, settings, ticket)
        work = (
            engine.timeline(data, label_set, options)
            if timeline
            else engine.recognize(data, label_set, options.top_k, explain)
        )
        answer = await until_disconnected(request, work)
    # Validated when the engine built it; rendered off the event loop.
    body = await asyncio.to_thread(answer.model_dump_json, exclude_none=True)
    return Response(body, media_type="application/json")


async def until_disconnected(request: Request, work):
    """Run `work`; if the client goes away first, cancel it (its decode is killed and its
    clips never reach the model) and answer nobody."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_disconnect(request))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        raise ClientGone("the client closed the connection")
    return task.result()


async def _disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
