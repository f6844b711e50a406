"""Domain errors and the one table that maps them to HTTP answers."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from media import DecodeFailed, NotAVideo, VideoError, VideoTooLarge


class ServiceError(Exception):
    status = 500
    kind = "internal"

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(ServiceError):
    status, kind = 422, "bad_request"


class PayloadTooLarge(ServiceError):
    status, kind = 413, "too_large"


class UnsupportedMedia(ServiceError):
    status, kind = 415, "unsupported_media"


class Unauthorized(ServiceError):
    status, kind = 401, "unauthorized"


class Overloaded(ServiceError):
    status, kind = 429, "overloaded"


class TimedOut(ServiceError):
    status, kind = 504, "timeout"


class BatchFailed(ServiceError):
    status, kind = 500, "inference_failed"


class Undecodable(ServiceError):
    status, kind = 422, "decode_failed"


def from_video_error(err: VideoError) -> ServiceError:
    if isinstance(err, DecodeFailed):
        return Undecodable(str(err))
    if isinstance(err, NotAVideo):
        return UnsupportedMedia(str(err))
    if isinstance(err, VideoTooLarge):
        return PayloadTooLarge(str(err))
    return BadRequest(str(err))


def install_handlers(app: FastAPI, on_error) -> None:
    """`on_error(kind)` counts errors (metrics)."""

    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        on_error(exc.kind)
        return JSONResponse(
            {"error": exc.kind, "detail": exc.message}, status_code=exc.status, headers=exc.headers
        )

    async def video_error(request: Request, exc: VideoError) -> JSONResponse:
        return await service_error(request, from_video_error(exc))

    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(VideoError, video_error)
