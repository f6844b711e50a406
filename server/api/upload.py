"""Reading the uploaded video under three bounds: its size (stop as soon as it is exceeded),
the bytes all uploads hold at once, and how long the client may stall between chunks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from ..engine.errors import BadRequest, PayloadTooLarge, RequestTimeout, UnsupportedMedia
from ..jobs import Spool
from ..settings import Settings
from .admission import Ticket

_MULTIPART_SLACK = 64 * 1024  # boundaries and part headers around the file


async def _bounded(
    stream: AsyncIterator[bytes], limit: int, stall_s: float, ticket: Ticket | None
) -> AsyncIterator[bytes]:
    """`ticket`: count the bytes as held in memory (None: they go to disk)."""
    seen = 0
    chunks = stream.__aiter__()
    while True:
        try:
            async with asyncio.timeout(stall_s):
                chunk = await chunks.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise RequestTimeout(
                f"the upload stalled: no bytes for {stall_s:g} s (ALT_BODY_TIMEOUT_S)",
                headers={"connection": "close"},
            ) from None
        seen += len(chunk)
        if seen > limit:
            raise PayloadTooLarge(
                f"the upload exceeds the limit of {limit / 2**20:.1f} MiB",
                headers={"connection": "close"},
            )
        if ticket is not None:
            ticket.hold_bytes(len(chunk))
        yield chunk


@asynccontextmanager
async def _video_chunks(
    request: Request, max_bytes: int, stall_s: float, ticket: Ticket | None, note: str = ""
) -> AsyncIterator[AsyncIterator[bytes]]:
    """The video's bytes as they arrive, from a multipart field `video` (through the
    parser's spooled part) or from a raw `video/*` body, under the three bounds. `note`
    follows the limit in the 413's message."""
    ctype = request.headers.get("content-type", "").lower()
    multipart = ctype.startswith("multipart/form-data")
    limit = max_bytes + (_MULTIPART_SLACK if multipart else 0)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"the upload ({int(declared) / 2**20:.1f} MiB) exceeds the limit of "
            f"{max_bytes / 2**20:.1f} MiB{note}",
            headers={"connection": "close"},
        )
    stream = _bounded(request.stream(), limit, stall_s, ticket)
    if multipart:
        try:
            form = await MultiPartParser(
                request.headers, stream, max_files=1, max_fields=16
            ).parse()
        except MultiPartException as err:
            raise BadRequest(f"malformed multipart body: {err.message}") from None
        try:  # spooled parts are closed here, whatever is raised, never left to the GC
            upload = form.get("video")
            if not isinstance(upload, UploadFile):
                raise BadRequest("the multipart body needs a file field named 'video'")

            async def parts():
                while chunk := await upload.read(1 << 20):
                    yield chunk

            yield parts()
        finally:
            await form.close()
    elif not ctype or ctype.startswith(("video/", "image/", "application/octet-stream")):
        yield stream
    else:
        raise UnsupportedMedia(
            f"send the video as a multipart field 'video' or as a video/*, image/gif or "
            f"application/octet-stream body, not {ctype!r}"
        )


async def read_video(request: Request, settings: Settings, ticket: Ticket) -> bytes:
    """The video bytes of the request, held in memory (and counted on `ticket`)."""
    max_bytes = settings.max_upload_bytes
    async with _video_chunks(request, max_bytes, settings.body_timeout_s, ticket) as chunks:
        data = b"".join([chunk async for chunk in chunks])
    if not data:
        raise BadRequest("the request holds no video bytes")
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"the video exceeds the limit of {max_bytes / 2**20:.1f} MiB")
    return data


async def spool_video(request: Request, settings: Settings, spool: Spool, job_id: str):
    """A job's upload, written to the spool as it arrives -> (path, size). Never held in
    memory."""
    note = " for a job (ALT_MAX_JOB_UPLOAD_MB)"
    async with _video_chunks(request, spool.max_bytes, settings.body_timeout_s, None,
                             note) as chunks:  # fmt: skip
        return await spool.write(job_id, chunks)
