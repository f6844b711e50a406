"""Domain errors and the one table that maps them, and every other failure, to HTTP answers.

Every answer that is not a 2xx has the body `{"error": kind, "detail": message}`: our own
errors, FastAPI's validation errors, Starlette's 404/405, and unexpected exceptions (a
counted 500 that never shows a stack trace).
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from media import DecodeFailed, NotAVideo, VideoError, VideoTooLarge

log = logging.getLogger(__name__)


class ServiceError(Exception):
    status = 500
    kind = "internal"

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}

    def __reduce__(self):  # keeps the headers when the error crosses processes (Ray)
        return type(self), (self.message, self.headers)


class BadRequest(ServiceError):
    status, kind = 422, "bad_request"


class NotFound(ServiceError):
    status, kind = 404, "not_found"


class RequestTimeout(ServiceError):
    status, kind = 408, "request_timeout"


class PayloadTooLarge(ServiceError):
    status, kind = 413, "too_large"


class UnsupportedMedia(ServiceError):
    status, kind = 415, "unsupported_media"


class Undecodable(ServiceError):
    status, kind = 422, "decode_failed"


class Unauthorized(ServiceError):
    status, kind = 401, "unauthorized"


class Overloaded(ServiceError):
    status, kind = 429, "overloaded"


class Unavailable(ServiceError):
    status, kind = 503, "unavailable"


class ClientGone(ServiceError):
    status, kind = 499, "client_gone"  # nobody reads it: the connection is closed


class TimedOut(ServiceError):
    status, kind = 504, "timeout"


class BatchFailed(ServiceError):
    status, kind = 500, "inference_failed"


# Starlette's own HTTP errors (unknown path, wrong method, a malformed request line).
_HTTP_KINDS = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}

# The statuses every route may answer with, for the OpenAPI document.
ERROR_STATUSES = (400, 401, 404, 405, 408, 413, 415, 422, 429, 500, 503, 504)


def from_batch_error(err: Exception) -> ServiceError:
    """The batcher's refusals and failures as answers."""
    from .batcher import QueueFull, QueueTimeout

    if isinstance(err, QueueFull):
        return Overloaded(str(err), headers={"Retry-After": "1"})
    if isinstance(err, QueueTimeout):
        return TimedOut(str(err))
    return BatchFailed(f"inference failed: {err}")


def from_video_error(err: VideoError) -> ServiceError:
    if isinstance(err, DecodeFailed):
        return Undecodable(str(err))
    if isinstance(err, NotAVideo):
        return UnsupportedMedia(str(err))
    if isinstance(err, VideoTooLarge):
        return PayloadTooLarge(str(err))
    return BadRequest(str(err))


def _body(kind: str, detail: str, status: int, headers=None) -> JSONResponse:
    return JSONResponse({"error": kind, "detail": detail}, status_code=status, headers=headers)


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors():
        where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("query", "body", "path"))
        parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else e.get("msg", "invalid"))
    return "; ".join(parts) or "invalid request"


def internal_error(exc: BaseException) -> JSONResponse:
    """The answer to an exception nothing else handled; the caller counts it."""
    log.error("unhandled %s", type(exc).__name__, exc_info=exc)
    return _body(
        "internal",
        f"the server failed on this request ({type(exc).__name__}); it goes on serving",
        500,
        {"connection": "close"},
    )


def install_handlers(app: FastAPI, on_error) -> None:
    """`on_error(kind)` counts errors (metrics)."""

    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        on_error(exc.kind)
        return _body(exc.kind, exc.message, exc.status, exc.headers)

    async def video_error(request: Request, exc: VideoError) -> JSONResponse:
        return await service_error(request, from_video_error(exc))

    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        on_error("bad_request")
        return _body("bad_request", _validation_detail(exc), 422)

    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        kind = _HTTP_KINDS.get(exc.status_code, HTTPStatus(exc.status_code).phrase.lower())
        on_error(kind)
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return _body(kind.replace(" ", "_"), detail, exc.status_code, exc.headers)

    async def batch_error(request: Request, exc: Exception) -> JSONResponse:
        return await service_error(request, from_batch_error(exc))

    from .batcher import BatchError, QueueFull, QueueTimeout

    for kind in (QueueFull, QueueTimeout, BatchError):
        app.add_exception_handler(kind, batch_error)
    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(VideoError, video_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
