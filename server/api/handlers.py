"""The one table that maps every failure to an HTTP answer.

Every answer that is not a 2xx has the body `{"error": kind, "detail": message}`: the
engine's errors, FastAPI's validation errors, Starlette's 404/405, and unexpected
exceptions (a counted 500 that never shows a stack trace).
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from media import VideoError

from ..engine.batcher import BatchError, QueueFull, QueueTimeout
from ..engine.errors import ServiceError, as_service_error

log = logging.getLogger(__name__)

# The statuses every route may answer with, for the OpenAPI document.
ERROR_STATUSES = (400, 401, 404, 405, 408, 409, 413, 415, 422, 429, 500, 503, 504)

# Starlette's own HTTP errors (unknown path, wrong method, a malformed request line).
_HTTP_KINDS = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}


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

    async def domain_error(request: Request, exc: Exception) -> JSONResponse:
        return await service_error(request, as_service_error(exc))

    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        on_error("bad_request")
        return _body("bad_request", _validation_detail(exc), 422)

    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        kind = _HTTP_KINDS.get(exc.status_code, HTTPStatus(exc.status_code).phrase.lower())
        on_error(kind)
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return _body(kind.replace(" ", "_"), detail, exc.status_code, exc.headers)

    for kind in (QueueFull, QueueTimeout, BatchError, VideoError):
        app.add_exception_handler(kind, domain_error)
    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
