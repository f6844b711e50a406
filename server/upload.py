"""Reading the uploaded video with a hard size cap: stop reading as soon as it is exceeded."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from .errors import BadRequest, PayloadTooLarge, UnsupportedMedia

_MULTIPART_SLACK = 64 * 1024  # boundaries and part headers around the file


async def _capped(stream: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    seen = 0
    async for chunk in stream:
        seen += len(chunk)
        if seen > limit:
            raise PayloadTooLarge(f"the upload exceeds the limit of {limit / 2**20:.1f} MiB")
        yield chunk


async def read_video(request: Request, max_bytes: int) -> bytes:
    """The video bytes from a multipart field `video` or from a raw `video/*` body."""
    ctype = request.headers.get("content-type", "").lower()
    multipart = ctype.startswith("multipart/form-data")
    limit = max_bytes + (_MULTIPART_SLACK if multipart else 0)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"the upload ({int(declared) / 2**20:.1f} MiB) exceeds the limit of {max_bytes / 2**20:.1f} MiB"
        )
    stream = _capped(request.stream(), limit)
    if multipart:
        try:
            form = await MultiPartParser(
                request.headers, stream, max_files=1, max_fields=16
            ).parse()
        except MultiPartException as err:
            raise BadRequest(f"malformed multipart body: {err.message}") from None
        upload = form.get("video")
        if not isinstance(upload, UploadFile):
            raise BadRequest("the multipart body needs a file field named 'video'")
        data = await upload.read()
        await form.close()
    elif not ctype or ctype.startswith(("video/", "image/", "application/octet-stream")):
        data = b"".join([chunk async for chunk in stream])
    else:
        raise UnsupportedMedia(
            f"send the video as a multipart field 'video' or as a video/*, image/gif or "
            f"application/octet-stream body, not {ctype!r}"
        )
    if not data:
        raise BadRequest("the request holds no video bytes")
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"the video exceeds the limit of {max_bytes / 2**20:.1f} MiB")
    return data
