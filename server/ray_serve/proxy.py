"""What Serve's HTTP proxies answer when the replica holding a request is lost.

A proxy hands each request to an Ingress replica. When that replica's process or node is
lost before it answered, Ray Serve's proxy (2.x) sends nothing, and its HTTP server then
writes a bare `500 Internal Server Error` in plain text: an answer that says neither what
happened nor that the request may be sent again. The middleware here, loaded by every
proxy (`RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH` names `middlewares`; `alt serve --ray`
sets it for the proxies it starts), answers such a request in the one error shape: 503
`unavailable` with `Retry-After`, as for any other loss the service outlives.
"""

from __future__ import annotations

import logging

from starlette.middleware import Middleware

from ..api.transport import send_error

log = logging.getLogger(__name__)

CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
CALLBACK = f"{__name__}:middlewares"

LOST = (
    "the replica answering this request was lost before it answered (its process or node "
    "stopped); the service runs on without it: retry"
)


class AnswerLostRequests:
    """An ASGI middleware: an HTTP request the wrapped app ended without answering is
    answered 503 `unavailable`, `Retry-After: 1`."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = gone = False

        async def watched(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        async def listened():
            nonlocal gone
            message = await receive()
            gone = gone or message["type"] == "http.disconnect"
            return message

        await self.app(scope, listened, watched)
        if started or gone:  # answered, or the client left (the proxy cancelled the request)
            return
        log.warning("a request to %s was lost with its replica; answered 503", scope.get("path"))
        await send_error(send, 503, "unavailable", LOST, extra=((b"retry-after", b"1"),))


def middlewares() -> list[Middleware]:
    """The proxies' middlewares (the callback `CALLBACK_ENV` names)."""
    return [Middleware(AnswerLostRequests)]
