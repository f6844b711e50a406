"""Jobs: long videos answered as timelines in the background, durable in SQLite.

`submit` records a queued job whose upload is already spooled; `job_workers` tasks claim
queued jobs oldest first and run them through the engine's timeline on a decode pool of
their own (so jobs never take the workers of `/recognize`); the model is shared, a chunk
of windows at a time. Progress goes to the database and to listeners (server-sent
events). A job cancelled (`cancel`) stops decoding at once: its task is cancelled, which
kills its decode worker. A job left "running" by a crash (its lease, renewed every
`BEAT_S` while it runs, lapsed `LEASE_S` ago) is queued again (it resumes from its first
window) unless it has been tried `MAX_ATTEMPTS` times, then it fails with that reason.
Finished jobs are deleted `ttl_s` after they end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from media import VideoError

from ..engine import Decoder, Engine
from ..engine.errors import Overloaded, ServiceError, as_service_error
from ..engine.timeline import TimelineOptions
from ..library import Indexer, LibraryOpener
from .spool import Spool
from .store import TERMINAL, Job, JobStore

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3
SWEEP_S = 60.0
LEASE_S = 10.0  # a running job whose lease is older belongs to a process that is gone
BEAT_S = 2.0  # how often a runner renews the leases of its jobs and looks for lapsed ones


@dataclass(frozen=True)
class JobLimits:
    workers: int = 1
    max_jobs: int = 100
    max_duration_s: float = 14400.0
    ttl_s: float = 86400.0


class JobRunner:
    def __init__(
        self,
        engine: Engine,
        store: JobStore,
        spool: Spool,
        decoder: Decoder,
        limits: JobLimits,
        indexer: Indexer | None = None,
    ) -> None:
        self.engine, self.store, self.spool, self.decoder = engine, store, spool, decoder
        self.limits = limits
        self.indexer = indexer or Indexer(engine, LibraryOpener.none("no library is configured"))
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._running: dict[str, asyncio.Task] = {}
        self._cancelled: set[str] = set()
        self._listeners: dict[str, set[asyncio.Queue]] = {}
        self._pending: set[asyncio.Task] = set()

    # ---- life ------------------------------------------------------------------------------

    async def start(self) -> None:
        self.recover()
        self.sweep()
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self.limits.workers)]
        self._tasks.append(asyncio.create_task(self._sweeper()))
        self._tasks.append(asyncio.create_task(self._leases()))

    async def stop(self) -> None:
        """Running jobs go back to the queue (they resume at the next start)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.decoder.close()
        self.store.close()

    def recover(self) -> None:
        """Jobs a crash left running (their lease lapsed): queued again, or failed after
        MAX_ATTEMPTS. Jobs another live process runs on the same database are left alone."""
        for job in self.store.running(stale_before=time.time() - LEASE_S):
            if job.id in self._running:
                continue
            error = None
            if job.attempts >= MAX_ATTEMPTS:
                error = {"error": "interrupted",
                         "detail": f"the server stopped during this job {job.attempts} times; "
                                   "it is not tried again"}  # fmt: skip
            elif not Path(job.video_path).is_file():
                error = {
                    "error": "interrupted",
                    "detail": "the server stopped during this job and its upload is gone",
                }
            if error is not None:
                self.store.finish(job.id, "failed", self.limits.ttl_s, error=error)
                self.spool.discard(job.video_path)
                if job.kind == "index":
                    self._later(self.indexer.finish(job.id, "failed", error, None))
            else:
                # A timeline starts over; an index resumes after its last stored window.
                log.warning("job %s was interrupted; it runs again", job.id)
                self.store.requeue(job.id)

    def _later(self, work) -> None:
        """Library bookkeeping from synchronous code: run on the loop when there is one."""
        try:
            task = asyncio.get_running_loop().create_task(work)
        except RuntimeError:
            work.close()
            return
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def sweep(self) -> None:
        """Delete jobs past their TTL, and spooled files no unfinished job refers to."""
        for job in self.store.expired(time.time()):
            self.store.delete(job.id)
            self.spool.discard(job.video_path)
        wanted = self.store.video_paths()
        for path in self.spool.folder.iterdir():
            if path.suffix == ".video" and str(path) not in wanted and self._idle(path):
                self.spool.discard(path)

    def _idle(self, path: Path) -> bool:
        """Not an upload being written right now."""
        try:
            return time.time() - path.stat().st_mtime > 2 * SWEEP_S
        except OSError:
            return False

    async def _leases(self) -> None:
        while True:
            await asyncio.sleep(BEAT_S)
            try:
                self.store.beat(list(self._running))
                self.recover()
            except Exception:  # noqa: BLE001 - must outlive a busy database
                log.exception("job lease renewal failed")

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 - the sweeper must outlive a bad row
                log.exception("job sweep failed")

    # ---- the API's side --------------------------------------------------------------------

    def new_id(self) -> str:
        return uuid.uuid4().hex

    def admit(self) -> None:
        if self.store.active() >= self.limits.max_jobs:
            raise Overloaded(
                f"{self.limits.max_jobs} jobs are queued or running (ALT_MAX_JOBS); retry later",
                headers={"Retry-After": "30"},
            )

    def submit(
        self,
        job_id: str,
        path: Path,
        size: int,
        labels: list[str] | None,
        options: TimelineOptions,
        kind: str = "timeline",
    ) -> Job:
        job = Job(job_id, "queued", time.time(), asdict(options), str(path), size, labels,
                  kind=kind)  # fmt: skip
        self.store.add(job)
        self._wake.set()
        self._publish(job.id)
        return job

    def get(self, job_id: str) -> Job | None:
        return self.store.get(job_id)

    def eta_s(self, job: Job) -> float | None:
        if job.state != "running" or not job.total:
            return None
        # This run started at `started` from window 0 (a resumed job starts over).
        rate = job.done / max(1e-6, time.time() - (job.started or time.time()))
        return round((job.total - job.done) / rate, 1) if rate > 0 else None

    async def cancel(self, job_id: str) -> Job | None:
        """Queued or running -> cancelled (its decode stops now); a finished job is left."""
        job = self.store.get(job_id)
        if job is None or job.finished_state:
            return job
        self._cancelled.add(job_id)
        if self.store.finish(job_id, "cancelled", self.limits.ttl_s):
            self.spool.discard(job.video_path)
            if job.kind == "index":
                await self.indexer.finish(job_id, "cancelled", None, None)
        task = self._running.get(job_id)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(task), 2.0)
        self._publish(job_id)
        return self.store.get(job_id)

    def forget(self, job_id: str) -> bool:
        job = self.store.get(job_id)
        if job is None or not job.finished_state:
            return False
        self.spool.discard(job.video_path)
        self._publish(job_id)
        return self.store.delete(job_id)

    def listen(self, job_id: str) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=64)
        self._listeners.setdefault(job_id, set()).add(queue)
        return queue

    def unlisten(self, job_id: str, queue: asyncio.Queue) -> None:
        listeners = self._listeners.get(job_id, set())
        listeners.discard(queue)
        if not listeners:
            self._listeners.pop(job_id, None)

    def _publish(self, job_id: str) -> None:
        for queue in self._listeners.get(job_id, ()):
            with contextlib.suppress(asyncio.QueueFull):  # a slow listener reads the latest
                queue.put_nowait(job_id)

    # ---- the workers ----------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            job = self.store.claim()
            if job is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    # Another process sharing the database may queue jobs: look again soon.
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                continue
            task = asyncio.create_task(self._run(job))
            self._running[job.id] = task
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.done():  # the server stops: the job goes back to the queue
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                    self.store.requeue(job.id)
                    raise
            finally:
                self._running.pop(job.id, None)

    async def _run(self, job: Job) -> None:
        self._publish(job.id)

        async def progress(done: int, total: int) -> None:
            state = await asyncio.to_thread(self.store.progress, job.id, done, total)
            self._publish(job.id)
            if state != "running":  # cancelled, here or by another process
                raise asyncio.CancelledError

        error = None
        try:
            options = TimelineOptions(**job.options)
            if job.kind == "index":
                stored = await self.indexer.index(
                    job.id, Path(job.video_path), options, self.decoder, progress,
                    self.limits.max_duration_s,
                )  # fmt: skip
                if self.indexer.keeps_uploads:
                    self.spool.hand_over(job.video_path)  # moved into the library below
                await self.indexer.finish(job.id, "succeeded", None, Path(job.video_path))
                body = json.dumps({"video_id": job.id, "windows": stored})
            else:
                answer = await self.engine.timeline(
                    b"", job.labels, options, path=Path(job.video_path), decoder=self.decoder,
                    progress=progress, max_duration_s=self.limits.max_duration_s,
                )  # fmt: skip
                body = await asyncio.to_thread(answer.model_dump_json, exclude_none=True)
            self.store.finish(job.id, "succeeded", self.limits.ttl_s, result=body)
        except asyncio.CancelledError:
            if job.id in self._cancelled or (self.store.get(job.id) or job).state in TERMINAL:
                self._cancelled.discard(job.id)
                return  # cancelled by a client: recorded by `cancel`
            raise  # the server stops
        except (ServiceError, VideoError) as err:
            failure = as_service_error(err)
            error = {"error": failure.kind, "detail": failure.message}
        except Exception as err:  # noqa: BLE001 - a job's failure is recorded, never raised
            log.exception("job %s failed", job.id)
            error = {
                "error": "internal",
                "detail": f"the server failed on this job ({type(err).__name__}: {err})",
            }
        finally:
            self._publish(job.id)
        if error is not None:
            if job.kind == "index":  # the library's row first: it is read once the job ends
                with contextlib.suppress(Exception):
                    await self.indexer.finish(job.id, "failed", error, None)
            self.store.finish(job.id, "failed", self.limits.ttl_s, error=error)
            self._publish(job.id)
        current = self.store.get(job.id)
        if current is not None and current.finished_state:
            self.spool.discard(job.video_path)
