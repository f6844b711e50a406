"""The connection edge of `alt serve`: what happens before the app runs.

uvicorn's httptools protocol, extended with what the servers users trust already bound
(nginx `client_header_timeout` and `large_client_header_buffers`, Apache `mod_reqtimeout`):

- a **header-read timeout**: a connection that has not delivered a complete request head
  within `header_timeout_s` of opening (or of the first byte of its next request on a
  keep-alive connection) is answered 408 and closed; the app never sees it. Idle
  keep-alive connections keep uvicorn's own `timeout_keep_alive`.
- a **head size bound**: a request line plus headers over `max_head_bytes` is answered 431
  (httptools itself has none).
- a **per-client-address connection limit**: the connection over the limit is answered
  503 with `Retry-After` and closed as soon as it opens.
- the answers uvicorn writes itself (400 for a request it cannot parse, 503 over
  `limit_concurrency`) in the one error shape, `{"error": kind, "detail": message}`.

Every close is counted in `alt_http_connections_closed_total{reason}`.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from http import HTTPStatus

from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..engine import Metrics


def raw_error(status: int, kind: str, detail: str, extra: tuple[tuple[bytes, bytes], ...] = ()):
    """A complete HTTP/1.1 error answer in the one error shape, closing the connection."""
    body = json.dumps({"error": kind, "detail": detail}).encode()
    head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}".encode()]
    headers = (
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *extra,
    )
    head += [name + b": " + value for name, value in headers]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


# How long a refused connection is read and dropped before it is closed (see _refuse).
LINGER_S = 1.0


class _HeadTooLarge(Exception):
    pass


class ConnectionGuard:
    """The bounds every connection of one server shares, and the count of connections
    open per client address."""

    def __init__(
        self,
        header_timeout_s: float,
        max_head_bytes: int,
        max_per_client: int,
        metrics: Metrics,
    ) -> None:
        self.header_timeout_s = header_timeout_s
        self.max_head_bytes = max_head_bytes
        self.max_per_client = max_per_client  # 0: no per-address limit
        self.metrics = metrics
        self.open: Counter[str] = Counter()

    def admit(self, host: str) -> bool:
        if self.max_per_client and self.open[host] >= self.max_per_client:
            return False
        self.open[host] += 1
        return True

    def release(self, host: str) -> None:
        self.open[host] -= 1
        if self.open[host] <= 0:
            del self.open[host]

    def closed(self, reason: str) -> None:
        self.metrics.connections_closed.labels(reason).inc()

    def protocol(self) -> type[asyncio.Protocol]:
        """The protocol class to hand uvicorn (`http=`), bound to this guard."""
        return type("GuardedHttpProtocol", (GuardedHttpProtocol,), {"guard": self})


async def send_error(send, status: int, kind: str, detail: str, extra=()) -> None:
    """An ASGI answer in the one error shape, with `extra` headers."""
    body = json.dumps({"error": kind, "detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               *extra]  # fmt: skip
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _over_capacity(scope, receive, send) -> None:
    """uvicorn's answer over `limit_concurrency`, in the one error shape."""
    await send_error(send, 503, "overloaded",
                     "the server holds its most connections; retry shortly",
                     extra=((b"retry-after", b"1"), (b"connection", b"close")))  # fmt: skip


class GuardedHttpProtocol(HttpToolsProtocol):
    guard: ConnectionGuard

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._host = self.client[0] if self.client else ""
        self._admitted = self.guard.admit(self._host)
        if not self._admitted:
            self.guard.closed("client_limit")
            self._refuse(
                503,
                "too_many_connections",
                f"this address holds {self.guard.max_per_client} connections, the most one "
                "client may; reuse them or retry shortly",
                ((b"retry-after", b"1"),),
            )
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        if getattr(self, "_admitted", False):
            self._admitted = False
            self.guard.release(self._host)
        super().connection_lost(exc)

    # The head: from the connection (or the next request's first byte) to its last header.
    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_bytes = 0
            self._head_timer = self.loop.call_later(
                self.guard.header_timeout_s, self._head_timed_out
            )

    def _disarm_head_timer(self) -> None:
        if getattr(self, "_head_timer", None) is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        self.guard.closed("header_timeout")
        if self.cycle is None or self.cycle.response_complete:
            self._refuse(
                408,
                "timeout",
                f"the request head did not arrive within {self.guard.header_timeout_s:g} s",
            )
        else:  # a pipelined head behind an answer still being written: no room for another
            self.transport.close()

    def _refuse(self, status: int, kind: str, detail: str, extra=()) -> None:
        """Answer and close, lingering: the client may still be sending, and closing a
        socket with unread bytes resets it, which can discard the answer before the
        client reads it. So: answer, end our side, read and drop what comes for up to
        LINGER_S, then close."""
        self._refused = True
        self.transport.write(raw_error(status, kind, detail, extra))
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if getattr(self, "_refused", False) or self.transport.is_closing():
            return  # lingering after an answer: drop
        super().data_received(data)

    def eof_received(self) -> bool | None:
        if getattr(self, "_refused", False):
            self.transport.close()  # the client read the answer and hung up
        return super().eof_received()

    def on_message_begin(self) -> None:
        self._arm_head_timer()
        super().on_message_begin()

    def _count_head(self, n: int) -> None:
        self._head_bytes += n
        if self._head_bytes > self.guard.max_head_bytes:
            raise _HeadTooLarge  # httptools turns it into HttpParserError: see send_400_response

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm_head_timer()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        self._disarm_head_timer()
        if self._head_bytes > self.guard.max_head_bytes:
            self.guard.closed("head_too_large")
            self._refuse(
                431,
                "head_too_large",
                f"the request line and headers exceed {self.guard.max_head_bytes} bytes",
            )
        else:
            self.guard.closed("bad_request")
            self._refuse(400, "bad_request", f"malformed HTTP request: {msg}")

    def _start_asgi_task(self, cycle, app) -> None:
        if app is service_unavailable:
            self.guard.closed("server_limit")
            app = _over_capacity
        super()._start_asgi_task(cycle, app)
