"""POST /streams, GET /streams, GET /streams/{id}, DELETE /streams/{id},
GET /streams/{id}/events (server-sent events)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response, StreamingResponse

from ...streams import StreamList, StreamManager, StreamSpec, StreamStatus
from ..deps import app_part, require_key

router = APIRouter(tags=["streams"], dependencies=[Depends(require_key)])
HEARTBEAT_S = 15.0


def get_streams(request: Request) -> StreamManager:
    return app_part(request, "streams")


StreamsDep = Annotated[StreamManager, Depends(get_streams)]


def _json(body: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type="application/json", headers=headers)


@router.post("/streams", status_code=201, response_model=StreamStatus,
             response_model_exclude_none=True, summary="Watch a live source")  # fmt: skip
async def create_stream(spec: StreamSpec, streams: StreamsDep) -> Response:
    """Answers 201 with `Location: /streams/{id}` once the definition is stored; the
    source is then opened (state `connecting`, then `live`). The webhook's signing secret
    is in this answer only."""
    watch = await streams.create(spec)
    body = watch.status(with_secret=True).model_dump_json(exclude_none=True)
    return _json(body, 201, {"Location": f"/streams/{watch.id}"})


@router.get("/streams", response_model=StreamList, response_model_exclude_none=True,
            summary="Every stream watched")  # fmt: skip
async def list_streams(streams: StreamsDep) -> Response:
    items = [w.status().model_dump(mode="json", exclude_none=True)
             for w in streams.watches.values()]  # fmt: skip
    return _json(json.dumps({"streams": items}))


@router.get("/streams/{stream_id}", response_model=StreamStatus,
            response_model_exclude_none=True,
            summary="A stream's state, counts, open segment and recent segments")  # fmt: skip
async def get_stream(stream_id: str, streams: StreamsDep) -> Response:
    return _json(streams.get(stream_id).status().model_dump_json(exclude_none=True))


@router.delete("/streams/{stream_id}", status_code=204, summary="Stop watching and forget it")
async def delete_stream(stream_id: str, streams: StreamsDep) -> Response:
    await streams.delete(stream_id)
    return Response(status_code=204)


@router.get(
    "/streams/{stream_id}/events",
    summary="Server-sent events: segments as they open and close, alerts, status changes",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_events(
    stream_id: str,
    streams: StreamsDep,
    request: Request,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """`event: status` first (the state now), then `segment` (data: label, start_s,
    end_s — null while the segment is open —, score, similarity, windows, entities),
    `alert` (rule, label, segment) and `status` as they happen; each with an `id:`, so a
    client reconnecting with `Last-Event-ID` gets the events it missed (the last 256).
    A comment line every 15 s keeps proxies from closing it; the stream ends when the
    stream is deleted."""
    watch = streams.get(stream_id)
    queue: asyncio.Queue = asyncio.Queue(1024)
    watch.listeners.add(queue)
    since = int(last_event_id) if last_event_id and last_event_id.isdigit() else None

    def line(eid: int, event: str, data: dict) -> str:
        return f"id: {eid}\nevent: {event}\ndata: {json.dumps(data)}\n\n"

    async def stream():
        try:
            state = {"state": watch.state} | ({"error": watch.error} if watch.error else {})
            yield f"event: status\ndata: {json.dumps(state)}\n\n"
            if since is not None:
                for eid, event, data in list(watch.history):
                    if eid > since:
                        yield line(eid, event, data)
            while True:
                try:
                    eid, event, data = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
                    if event == "deleted":
                        yield "event: deleted\ndata: {}\n\n"
                        return
                    yield line(eid, event, data)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                if streams.watches.get(stream_id) is not watch:
                    yield "event: deleted\ndata: {}\n\n"
                    return
                if await request.is_disconnected():
                    return
        finally:
            watch.listeners.discard(queue)

    return StreamingResponse(
        stream(), media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )  # fmt: skip
