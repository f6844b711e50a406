"""Webhooks: each event POSTed as JSON, signed, retried with backoff, never blocking the
stream (a bounded queue; the oldest event is dropped, and counted, when it is full).

The signature is `X-Alt-Signature: sha256=<hex HMAC-SHA256 of the body>` with the stream's
secret; `X-Alt-Event` names the event and `X-Alt-Delivery` is unique per event (retries
repeat it, so a receiver can drop duplicates)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
import uuid

log = logging.getLogger(__name__)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is not followed: it could point into the server's own network."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    """-> the status (0 when the receiver could not be reached)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as err:
        return err.code
    except (urllib.error.URLError, OSError, ValueError) as err:
        log.info("webhook %s: %s", url, err)
        return 0


class Webhook:
    def __init__(self, url: str, secret: str, events: set[str], stream_id: str,
                 attempts: int = 5, backoff_s: float = 1.0, queue: int = 256) -> None:  # fmt: skip
        self.url, self.secret, self.events, self.stream_id = url, secret, events, stream_id
        self.attempts, self.backoff_s = attempts, backoff_s
        self._queue: asyncio.Queue[tuple[str, bytes, str]] = asyncio.Queue(queue)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="alt-webhook")

    def send(self, event: str, data: dict) -> None:
        if event not in self.events:
            return
        body = json.dumps({"stream": self.stream_id, "event": event, "data": data}).encode()
        if self._queue.full():  # the receiver is behind: the oldest event goes
            self._queue.get_nowait()
        self._queue.put_nowait((event, body, uuid.uuid4().hex))

    async def _run(self) -> None:
        while True:
            event, body, delivery = await self._queue.get()
            headers = {"content-type": "application/json", "x-alt-event": event,
                       "x-alt-delivery": delivery,
                       "x-alt-signature": signature(self.secret, body)}  # fmt: skip
            for attempt in range(self.attempts):
                status = await asyncio.to_thread(_post, self.url, body, headers)
                if status and status < 500 and status != 429:  # answered: done either way
                    break
                if attempt + 1 < self.attempts:
                    await asyncio.sleep(self.backoff_s * 2**attempt)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
