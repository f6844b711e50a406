"""Live streams watched continuously: each a task that reads its source through a reader
process, sends every window through the model's shared batcher (one window of a stream in
the model at a time, so streams and requests take turns), labels windows online and
sends events to listeners and a webhook. A lost or stalled source is reconnected with
backoff; definitions live in SQLite, so a restart watches them again."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from media import Limits
from media.live import LiveJob

from ..engine import Engine, ServiceError
from ..engine.errors import BadRequest, NotFound, Overloaded
from ..engine.labels import parse_labels
from .online import AlertRule, OnlineTimeline
from .reader import Reader
from .safety import HOOK_SCHEMES, check_url, redact
from .schemas import StreamCounts, StreamSpec, StreamStatus
from .store import StreamStore
from .webhooks import Webhook

log = logging.getLogger(__name__)
HISTORY = 256  # events kept per stream for listeners that reconnect (Last-Event-ID)
BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


@dataclass(frozen=True)
class StreamLimits:
    max_streams: int = 8
    allow_private: bool = False
    timeout_s: float = 10.0
    max_pixels: int = Limits.max_pixels
    max_labels: int = 1000
    max_label_chars: int = 200
    nice: int = 0
    memory_mb: int = 0
    buffer_windows: int = 2  # windows waiting for the model before the oldest is dropped


class Watch:
    """One stream: its definition, its state, its events."""

    def __init__(self, manager: StreamManager, stream_id: str, created: float,
                 spec: StreamSpec, labels: list[str], secret: str) -> None:  # fmt: skip
        self.manager, self.id, self.created, self.spec = manager, stream_id, created, spec
        self.labels, self.secret = labels, secret
        self.state = "connecting"
        self.error: str | None = None
        self.video: dict | None = None
        self.frames = self.windows = self.dropped = self.reconnects = self.sent = 0
        self.delay_s: float | None = None
        self.timeline: OnlineTimeline | None = None
        self.history: collections.deque[tuple[int, str, dict]] = collections.deque(maxlen=HISTORY)
        self._next_event = 1
        self.listeners: set[asyncio.Queue] = set()
        self.hook = (
            Webhook(spec.webhook.url, secret, set(spec.webhook.events), stream_id)
            if spec.webhook is not None else None
        )  # fmt: skip
        manager.metrics.streams.labels(self.state).inc()
        self.task = asyncio.get_running_loop().create_task(
            self._guarded(), name=f"stream-{stream_id}"
        )

    # ---- events ---------------------------------------------------------------------------

    def emit(self, event: str, data: dict) -> None:
        eid = self._next_event
        self._next_event += 1
        self.history.append((eid, event, data))
        if event != "status":
            self.sent += 1
            self.manager.metrics.stream_events.labels(event).inc()
        for q in list(self.listeners):
            _offer(q, (eid, event, data))
        if self.hook is not None:
            self.hook.send(event, data)

    def _set_state(self, state: str, error: str | None = None) -> None:
        gauge = self.manager.metrics.streams
        gauge.labels(self.state).dec()
        gauge.labels(state).inc()
        self.state, self.error = state, error if error is not None else self.error
        body: dict = {"state": state}
        if error:
            body["error"] = error
        self.emit("status", body)

    # ---- the watch ------------------------------------------------------------------------

    def _job(self) -> LiveJob:
        engine = self.manager.engine
        assert engine.job is not None
        limits = self.manager.limits
        return LiveJob(
            url=self.spec.url, frames=engine.job.frames, size=engine.job.size,
            window_s=float(self.spec.window_s), stride_s=float(self.spec.stride_s),
            limits=Limits(max_pixels=limits.max_pixels), transport=self.spec.transport,
            listen=self.spec.listen,
            open_timeout_s=limits.timeout_s, read_timeout_s=limits.timeout_s,
            realtime=self.spec.realtime,
        )  # fmt: skip

    async def _guarded(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - a stream's failure is its own, reported
            log.exception("stream %s failed", self.id)
            self._set_state("failed", f"{type(err).__name__}: {err}")

    async def _run(self) -> None:
        engine = self.manager.engine
        info = engine.info
        spec = self.spec
        try:
            emb = await engine.model.label_embeddings(self.labels)
        except ServiceError as err:
            self._set_state("failed", f"the labels could not be encoded: {err.message}")
            return
        self.timeline = OnlineTimeline(
            self.labels, emb, info.logit_scale, info.entity_names,
            window_s=spec.window_s, stride_s=spec.stride_s, smoothing=spec.smoothing,
            min_similarity=spec.min_similarity, lag=spec.lag_windows,
            alerts=[AlertRule(**a.model_dump()) for a in spec.alerts],
        )  # fmt: skip
        is_file = spec.url.startswith("file:")
        t0: float | None = None  # the monotonic time of the stream's first frame
        failures = 0
        frames_before = 0
        while True:
            try:
                await asyncio.to_thread(check_url, spec.url, self.manager.limits.allow_private)
            except ServiceError as err:  # the name now resolves elsewhere
                self._set_state("failed", err.message)
                return
            reader = Reader(self._job(), self.manager.limits.buffer_windows,
                            self.manager.limits.nice, self.manager.limits.memory_mb)  # fmt: skip
            offset = 0.0
            why, ended = "the source ended", True
            try:
                while True:
                    msg = await reader.next()
                    kind = msg[0]
                    if kind == "live":
                        now = time.monotonic()
                        t0 = now if t0 is None else t0
                        offset = now - t0
                        self.video = {"width": msg[1], "height": msg[2], "fps": msg[3]}
                        failures = 0
                        self._set_state("live")
                    elif kind == "window":
                        await self._window(msg, offset, t0)
                    elif kind == "frames":
                        self.frames = frames_before + msg[1]
                    else:  # "ended" or "failed"
                        why, ended = msg[1], kind == "ended"
                        break
            finally:
                reader.close()
                self._dropped(reader.dropped)
                frames_before = self.frames
            for event, data in self.timeline.flush():  # the open segment ends with its source
                self.emit(event, data)
            if is_file and ended:
                self._set_state("stopped", why)
                return
            failures += 1
            self.reconnects += 1
            self.manager.metrics.stream_reconnects.inc()
            wait = BACKOFF_S[min(failures, len(BACKOFF_S)) - 1]
            self._set_state("reconnecting", f"{why}; reconnecting in {wait:g} s")
            await asyncio.sleep(wait)

    async def _window(self, msg, offset: float, t0: float | None) -> None:
        _, start, end, times, frames = msg
        try:
            run = await self.manager.engine.model.infer(frames[None], False)
        except ServiceError as err:  # the model's queue is full, or it failed: dropped
            self._dropped(1)
            if not isinstance(err, Overloaded):
                self.error = err.message
            return
        assert self.timeline is not None
        self.windows += 1
        self.manager.metrics.stream_windows.labels("labelled").inc()
        events = self.timeline.push(
            round(start + offset, 3), round(end + offset, 3),
            [round(t + offset, 3) for t in times], run.views,
        )  # fmt: skip
        if t0 is not None:  # from the window's last sampled frame to its label
            self.delay_s = round(time.monotonic() - t0 - (times[-1] + offset), 3)
            self.manager.metrics.stream_delay.observe(max(0.0, self.delay_s))
        for event, data in events:
            self.emit(event, data)

    def _dropped(self, n: int) -> None:
        self.dropped += n
        self.manager.metrics.stream_windows.labels("dropped").inc(n)

    # ---- what the routes show -------------------------------------------------------------

    def status(self, with_secret: bool = False) -> StreamStatus:
        tl = self.timeline
        hook = self.spec.webhook
        params = self.spec.model_dump(exclude={"url", "labels", "webhook"}, exclude_none=True)
        if hook is not None:
            params["webhook"] = {"url": redact(hook.url), "events": hook.events}
        return StreamStatus(
            id=self.id,
            url=redact(self.spec.url),
            state=self.state,
            created_at=datetime.fromtimestamp(self.created, UTC),
            labels=self.labels,
            params=params,
            lag_s=self.spec.lag_windows * self.spec.stride_s,
            delay_s=self.delay_s,
            video=self.video,
            counts=StreamCounts(
                frames=self.frames,
                windows=self.windows,
                windows_dropped=self.dropped,
                reconnects=self.reconnects,
                events=self.sent,
            ),  # fmt: skip
            current=tl.current() if tl else None,
            recent=list(tl.recent) if tl else [],
            error=self.error,
            webhook_secret=self.secret if with_secret and hook is not None else None,
            links={"self": f"/streams/{self.id}", "events": f"/streams/{self.id}/events"},
        )

    async def stop(self, deleted: bool = False) -> None:
        if deleted:
            for q in list(self.listeners):
                _offer(q, (0, "deleted", {}))
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self.manager.metrics.streams.labels(self.state).dec()
        if self.hook is not None:
            await self.hook.close()


def _offer(q: asyncio.Queue, item) -> None:
    """Put without waiting: a listener that does not read loses its oldest events."""
    if q.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            q.get_nowait()
    q.put_nowait(item)


class StreamManager:
    def __init__(self, engine: Engine, store: StreamStore, limits: StreamLimits) -> None:
        self.engine, self.store, self.limits = engine, store, limits
        self.metrics = engine.metrics
        self.watches: dict[str, Watch] = {}

    async def start(self) -> None:
        """Watch again every stream that was being watched."""
        for stream_id, created, raw, secret in await asyncio.to_thread(self.store.all):
            try:
                spec = StreamSpec.model_validate(raw)
                labels = self._labels(spec)
            except (ValueError, ServiceError) as err:
                log.error("stream %s is not watched again: %s", stream_id, err)
                continue
            self.watches[stream_id] = Watch(self, stream_id, created, spec, labels, secret)

    async def stop(self) -> None:
        """Stop watching (the definitions stay: the next start watches them again)."""
        await asyncio.gather(*(w.stop() for w in self.watches.values()))
        self.watches.clear()
        self.store.close()

    def _labels(self, spec: StreamSpec) -> list[str]:
        raw = spec.labels
        given = [raw] if isinstance(raw, str) else raw
        labels = parse_labels(given, self.limits.max_labels, self.limits.max_label_chars)
        return labels or list(self.engine.info.default_labels)

    async def create(self, spec: StreamSpec) -> Watch:
        if len(self.watches) >= self.limits.max_streams:
            raise Overloaded(
                f"{self.limits.max_streams} streams are watched already (ALT_MAX_STREAMS); "
                "delete one first", headers={"Retry-After": "60"},
            )  # fmt: skip
        labels = self._labels(spec)
        for alert in spec.alerts:
            if alert.label not in labels:
                raise BadRequest(
                    f"the alert's label {alert.label!r} is not one of the stream's labels"
                )
        if spec.listen and not self.limits.allow_private:
            raise BadRequest(
                "listen opens a port on the server: it needs ALT_STREAMS_ALLOW_PRIVATE=1"
            )
        await asyncio.to_thread(check_url, spec.url, self.limits.allow_private)
        if spec.webhook is not None:
            await asyncio.to_thread(check_url, spec.webhook.url, self.limits.allow_private,
                                    HOOK_SCHEMES, "webhook.url")  # fmt: skip
        stream_id = uuid.uuid4().hex[:16]
        secret = secrets.token_hex(32)
        created = await asyncio.to_thread(
            self.store.add, stream_id, spec.model_dump(mode="json"), secret
        )
        watch = self.watches[stream_id] = Watch(self, stream_id, created, spec, labels, secret)
        return watch

    def get(self, stream_id: str) -> Watch:
        watch = self.watches.get(stream_id)
        if watch is None:
            raise NotFound(f"no stream {stream_id!r}")
        return watch

    async def delete(self, stream_id: str) -> None:
        watch = self.get(stream_id)
        del self.watches[stream_id]
        await asyncio.to_thread(self.store.remove, stream_id)
        await watch.stop(deleted=True)
