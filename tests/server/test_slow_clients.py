"""Slow and greedy clients over real sockets against `alt serve`: stalled request heads are
answered 408 and closed within the header timeout, one address cannot take every place,
and the answers written before the app runs keep the one error shape."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx
import pytest

from .conftest import ServerProcess

HEADER_TIMEOUT_S = 2.0
PER_CLIENT = 300
HALF_HEAD = b"POST /recognize HTTP/1.1\r\nHost: test\r\nContent-Ty"


def _second_loopback_works() -> bool:
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.2", 0))
        return True
    except OSError:
        return False


needs_127_0_0_2 = pytest.mark.skipif(
    not _second_loopback_works(), reason="this host cannot bind 127.0.0.2 (a second client)"
)


@pytest.fixture(scope="module")
def edge():
    srv = ServerProcess({
        "ALT_BACKEND": "fake",
        "ALT_DECODE_WORKERS": "1",
        "ALT_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "ALT_MAX_CONNECTIONS_PER_CLIENT": str(PER_CLIENT),
        "ALT_MAX_HEAD_KB": "16",
    })  # fmt: skip
    yield srv
    srv.stop()


def answer(raw: bytes) -> tuple[int, dict[str, str], dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, json.loads(body)


async def stall(port: int, source: str = "127.0.0.1", hold_s: float = 10.0):
    """Half a head, then wait for the server: (seconds until closed or None, raw answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    t = time.perf_counter()
    writer.write(HALF_HEAD)
    await writer.drain()
    try:
        data = await asyncio.wait_for(reader.read(), hold_s)
        return time.perf_counter() - t, data
    except TimeoutError:
        return None, b""
    finally:
        writer.close()


def normal_requests(url: str, n: int, source: str = "127.0.0.2") -> list[int]:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=url, timeout=10, transport=transport) as c:
        return [c.get("/healthz").status_code for _ in range(n)]


def closed_reasons(url: str) -> dict[str, float]:
    text = httpx.get(url + "/metrics", timeout=10).text
    out = {}
    for line in text.splitlines():
        if line.startswith("alt_http_connections_closed_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            out[reason] = float(line.rsplit(" ", 1)[1])
    return out


@needs_127_0_0_2
def test_stalled_heads_are_answered_408_and_closed_while_a_normal_client_is_served(edge):
    before = closed_reasons(edge.url).get("header_timeout", 0)

    async def scenario():
        stalled = [asyncio.create_task(stall(edge.port)) for _ in range(300)]
        await asyncio.sleep(0.5)
        assert not any(t.done() for t in stalled), "stalled connections closed before the timeout"
        served = await asyncio.to_thread(normal_requests, edge.url, 10)
        still_open = sum(not t.done() for t in stalled)
        return served, still_open, await asyncio.gather(*stalled)

    served, still_open, closes = asyncio.run(scenario())
    assert served == [200] * 10
    assert still_open == 300  # the normal client was served while all 300 stalled
    times = [t for t, _ in closes]
    assert None not in times, "a stalled connection was never closed"
    assert max(times) <= HEADER_TIMEOUT_S + 1.0
    for _, raw in closes:
        status, headers, body = answer(raw)
        assert status == 408 and headers["connection"] == "close"
        assert body["error"] == "timeout" and "head" in body["detail"]
    assert closed_reasons(edge.url)["header_timeout"] - before == 300
    assert edge.alive


@needs_127_0_0_2
def test_the_connection_over_the_per_address_limit_is_refused_while_another_address_gets_in(edge):
    async def scenario():
        held = [asyncio.create_task(stall(edge.port)) for _ in range(PER_CLIENT)]
        await asyncio.sleep(0.5)
        over = await stall(edge.port, hold_s=5)
        other = await asyncio.to_thread(normal_requests, edge.url, 3)
        open_then = sum(not t.done() for t in held)
        await asyncio.gather(*held)  # the header timeout closes them and frees their places
        again = await asyncio.to_thread(normal_requests, edge.url, 1, "127.0.0.1")
        return over, other, open_then, again

    (t_over, raw), other, open_then, again = asyncio.run(scenario())
    assert open_then == PER_CLIENT
    status, headers, body = answer(raw)
    assert status == 503 and headers["retry-after"] == "1"
    assert body["error"] == "too_many_connections" and str(PER_CLIENT) in body["detail"]
    assert t_over < HEADER_TIMEOUT_S  # refused on arrival, not left to time out
    assert other == [200, 200, 200]
    assert again == [200]
    assert closed_reasons(edge.url)["client_limit"] >= 1


def send_raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /recognize HTTP/1.1\r\nHost: t\r\nContent-Length: ten\r\n\r\n",
        b"POST /recognize HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"GARBAGE\x00 / HTTP/1.1\r\n\r\n",
    ],
    ids=["non-numeric", "conflicting", "bad-request-line"],
)
def test_a_request_the_server_cannot_parse_gets_the_one_error_shape(edge, request_bytes):
    status, headers, body = answer(send_raw(edge.port, request_bytes))
    assert status == 400 and headers["content-type"] == "application/json"
    assert body["error"] == "bad_request" and body["detail"].startswith("malformed HTTP request")
    assert edge.alive


def test_a_head_over_the_bound_is_431(edge):
    big = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Pad: " + b"a" * 20_000 + b"\r\n\r\n"
    status, _, body = answer(send_raw(edge.port, big))
    assert status == 431 and body["error"] == "head_too_large" and "16384" in body["detail"]
    # A head under the bound is served as before.
    ok = (
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Pad: "
        + b"a" * 10_000
        + b"\r\nConnection: close\r\n\r\n"
    )
    assert send_raw(edge.port, ok).startswith(b"HTTP/1.1 200")


def test_a_keep_alive_connection_gets_the_header_timeout_on_its_next_request(edge):
    with socket.create_connection(("127.0.0.1", edge.port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        first = s.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        t = time.perf_counter()
        s.sendall(b"GET /healthz HTTP/1.1\r\nHo")
        rest = b""
        while chunk := s.recv(65536):
            rest += chunk
        elapsed = time.perf_counter() - t
    assert answer(rest)[0] == 408
    assert elapsed <= HEADER_TIMEOUT_S + 1.0


def test_the_answer_over_the_connection_limit_has_the_one_shape():
    srv = ServerProcess(
        {"ALT_BACKEND": "fake", "ALT_DECODE_WORKERS": "1", "ALT_MAX_CONNECTIONS": "3"}
    )
    try:
        idle = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(3)]
        try:
            status, headers, body = answer(
                send_raw(srv.port, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            )
        finally:
            for s in idle:
                s.close()
        assert status == 503 and headers["retry-after"] == "1" and body["error"] == "overloaded"
    finally:
        srv.stop()
