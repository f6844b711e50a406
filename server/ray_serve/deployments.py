"""The engine's parts as Ray Serve deployments, and the engine's view of them.

- `Ingress`: the FastAPI app of `alt serve` (routes, admission, errors, OpenAPI unchanged)
  whose engine calls the two below instead of local parts;
- `Decode`: CPU replicas, each with its own pool of decode worker processes (`media.pool`);
- `Model`: replicas (a GPU each where there is one) that batch clips across requests on
  the same batcher as `alt serve`, each with its own label-set cache.

They scale apart: a GPU node need not carry the decoding of every request. A replica that
dies mid-request is waited out: the call goes to another replica, or to the one Ray starts
in its place, within the request's time limit (`ALT_REQUEST_TIMEOUT_S`, then 504).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

try:
    import ray
    from ray import serve
    from ray.exceptions import ObjectLostError, RayActorError, RayTaskError
    from ray.serve.exceptions import BackPressureError, ReplicaUnavailableError
except ImportError as err:  # pragma: no cover - depends on the install
    raise ImportError("the cluster mode needs Ray: pip install 'alt-serve[cluster]'") from err

from media import DecodeJob, VideoInfo, WindowJob
from media.pool import DecodePool

from ..api import create_app
from ..engine import Engine, Inference, Metrics, ModelInfo, ModelRunner, create_backend, decode_pool
from ..engine.errors import Overloaded, Unavailable
from ..settings import Settings

log = logging.getLogger(__name__)

APP_NAME = "alt"
JOBS_APP, JOBS_PREFIX = "alt-jobs", "/jobs"  # the application that runs jobs, and its routes
# A replica died or is gone, or its answer was lost with the node that stored it (an answer
# the node finished just before it froze or crashed: the caller cannot fetch it). Every
# call is pure (decode, infer, embed labels), so calling again is safe.
_DEATHS = (RayActorError, ReplicaUnavailableError, ObjectLostError)


async def _call(method, *args) -> Any:
    """Call a deployment's method; a dead replica's calls go again (to a live replica or to
    its successor) until they succeed or the caller's time limit cancels them, and a
    cancelled call is cancelled in the replica too (a decode stops). An error the method
    raised comes back as itself, so the one error table answers it."""
    for attempt in itertools.count():
        response = method.remote(*args)
        try:
            return await response
        except asyncio.CancelledError:
            response.cancel()  # the caller gave up (timeout, client gone): so does the replica
            raise
        except RayTaskError as err:
            if isinstance(err.cause, Exception):
                raise err.cause from None
            raise
        except _DEATHS as err:
            log.warning("replica unavailable (%s); calling again", type(err).__name__)
            await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
        except BackPressureError:
            raise Overloaded(
                "every replica's queue is full", headers={"Retry-After": "1"}
            ) from None


def _cpus() -> int:
    """Whole CPUs Ray gave this replica (at least 1)."""
    assigned = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    return max(1, math.ceil(assigned))


def _deployment_problem(name: str) -> str:
    """What Serve says of a deployment of this application, for an error message."""
    if not ray.is_initialized():
        return "Ray is not running here"
    try:
        app = serve.status().applications.get(APP_NAME)
        status = app.deployments.get(name) if app else None
    except Exception as err:  # noqa: BLE001 - only for a message
        return f"Serve's status could not be read ({type(err).__name__})"
    if status is None:
        return f"Serve knows no deployment {name!r}"
    return f"{status.status}" + (f": {status.message}" if status.message else "")


def _lacking() -> list[str]:
    """The deployments the engine calls that have no running replica now."""
    app = serve.status().applications.get(APP_NAME)
    if app is None:
        return ["Model", "Decode"]
    lacking = []
    for name in ("Model", "Decode"):
        status = app.deployments.get(name)
        states = status.replica_states if status is not None else {}
        if not states.get("RUNNING", 0):
            lacking.append(name)
    return lacking


def _clip_job(job: WindowJob) -> DecodeJob:
    """The clip job of the same shape, for a pool first made by a window stream."""
    return DecodeJob(job.frames, job.size, 1, job.crops, job.limits, job.threads, job.device)


# ---- the deployments ---------------------------------------------------------------------


@serve.deployment(name="Decode")
class DecodeReplica:
    """Decoding on CPUs: one worker process per CPU the replica holds.

    The pool's slots are sized by the first job. A larger job (another model behind the
    same deployment) gets a new pool; the old one is closed once the decodes still running
    in it have finished, never under them."""

    def __init__(self, settings: Settings, workers: int | None = None) -> None:
        self.limits = settings.decode_limits()
        self.workers = workers or _cpus()
        self.pool: DecodePool | None = None
        self._running: dict[int, int] = {}  # decodes running, by id() of their pool

    @contextlib.contextmanager
    def _pool(self, job: DecodeJob, nbytes: int):
        """The pool to decode in, counted as in use while the block runs; one whose slots
        are too small for `nbytes` is retired and closed after its last decode."""
        if self.pool is None or self.pool.slot_bytes < nbytes:
            old, self.pool = self.pool, decode_pool(self.limits, job, self.workers)
            if old is not None and not self._running.get(id(old)):
                old.close()
        pool = self.pool
        self._running[id(pool)] = self._running.get(id(pool), 0) + 1
        try:
            yield pool
        finally:
            self._running[id(pool)] -= 1
            if not self._running[id(pool)]:
                del self._running[id(pool)]
                if pool is not self.pool:
                    pool.close()  # retired, and its last decode has finished

    async def decode(self, data: bytes, job: DecodeJob) -> tuple[np.ndarray, VideoInfo]:
        with self._pool(job, job.nbytes) as pool:
            return await pool.decode(data, job)

    async def windows(self, data: bytes, job: WindowJob) -> AsyncIterator[tuple]:
        """A long video as windows, streamed: ("info", WindowedInfo), then ("chunk",
        WindowChunk) per chunk, then ("done", seeks, damaged). At most two chunks wait here
        for the caller; the decode pauses until it takes them."""
        queue: asyncio.Queue = asyncio.Queue(maxsize=2)

        async def on_info(info) -> None:
            await queue.put(("info", info))

        async def on_chunk(chunk) -> None:
            await queue.put(("chunk", chunk))

        with self._pool(_clip_job(job), job.nbytes) as pool:

            async def run() -> None:
                try:
                    seeks, damaged = await pool.windows(data, job, on_info, on_chunk)
                    await queue.put(("done", seeks, damaged))
                except Exception as err:  # noqa: BLE001 - raised to the caller below
                    await queue.put(("error", err))

            task = asyncio.create_task(run())
            try:
                while True:
                    item = await queue.get()
                    if item[0] == "error":
                        raise item[1]
                    yield item
                    if item[0] == "done":
                        return
            finally:
                task.cancel()  # the caller left: the decode stops
                with contextlib.suppress(asyncio.CancelledError):
                    await task  # before the pool may be closed under it

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None

    def __del__(self) -> None:
        # Serve calls a replica's destructor when it stops it, after the graceful wait
        # for its requests; workers also die with this process (PR_SET_PDEATHSIG).
        self.close()


@serve.deployment(name="Model")
class ModelReplica:
    """The model behind the batcher of `alt serve`, with its own label-set cache."""

    async def __init__(self, settings: Settings) -> None:
        backend = create_backend(settings.backend_spec())
        self.runner = ModelRunner(backend, settings.batch_limits())
        await self.runner.start()

    def info(self) -> ModelInfo:
        return self.runner.info

    async def infer(self, frames: np.ndarray, explain_regions: bool) -> Inference:
        return await self.runner.infer(frames, explain_regions)

    async def label_embeddings(self, labels: list[str]) -> np.ndarray:
        return await self.runner.label_embeddings(labels)

    def check_health(self) -> None:
        """Ray replaces a replica whose batcher has stopped."""
        if not self.runner.ready:
            raise RuntimeError("the batcher has stopped")

    def pid(self) -> int:
        return os.getpid()


# ---- the engine's parts, as seen from the ingress ---------------------------------------


class RemoteDecoder:
    """The engine's decoder, in the Decode deployment."""

    def __init__(self, handle) -> None:
        self.handle = handle
        self.busy = 0  # calls from this ingress in flight
        self.waiting = 0  # Ray queues them; this side cannot tell waiting from running

    async def decode(self, data: bytes, job: DecodeJob) -> tuple[np.ndarray, VideoInfo]:
        self.busy += 1
        try:
            return await _call(self.handle.decode, data, job)
        finally:
            self.busy -= 1

    async def windows(self, data: bytes, job: WindowJob, on_info, on_chunk) -> tuple[int, int]:
        """The Decode deployment's window stream, handed to the callbacks in order. A
        replica lost mid-stream fails the timeline with a 503 (the stream cannot resume
        where it was; the client retries)."""
        self.busy += 1
        stream = self.handle.options(stream=True).windows.remote(data, job)
        try:
            async for item in stream:
                if item[0] == "info":
                    await on_info(item[1])
                elif item[0] == "chunk":
                    await on_chunk(item[1])
                else:
                    return item[1], item[2]
            raise Unavailable("the Decode replica ended the stream early; retry")
        except asyncio.CancelledError:
            stream.cancel()
            raise
        except RayTaskError as err:
            if isinstance(err.cause, Exception):
                raise err.cause from None
            raise
        except _DEATHS:
            raise Unavailable(
                "the Decode replica was lost during this timeline; retry",
                headers={"Retry-After": "1"},
            ) from None
        finally:
            self.busy -= 1

    def close(self) -> None:
        pass


class RemoteModel:
    """The engine's model, in the Model deployment."""

    def __init__(self, handle, start_timeout_s: float) -> None:
        self.handle = handle
        self.start_timeout_s = start_timeout_s
        self._info: ModelInfo | None = None
        self.in_flight = 0
        self._lacking: list[str] = []
        self._watch: asyncio.Task | None = None

    @property
    def info(self) -> ModelInfo:
        assert self._info is not None, "the model has not started"
        return self._info

    async def start(self) -> None:
        """Learn the model from a replica. Replicas that never come up (a bad checkpoint
        makes them fail in a loop) fail the ingress's start with Serve's reason, at the
        deadline, instead of holding it forever."""
        limit = self.start_timeout_s
        try:
            async with asyncio.timeout(limit):
                self._info = await _call(self.handle.info)
        except TimeoutError:
            raise RuntimeError(
                f"no Model replica answered within {limit:g} s (ALT_RAY_START_TIMEOUT_S); "
                f"the Model deployment is {_deployment_problem('Model')}"
            ) from None
        self._watch = asyncio.create_task(self._watch_replicas())

    async def _watch_replicas(self) -> None:
        """Which deployments have no running replica, read from Serve every second, so that
        /readyz says "degraded" while a replica is being replaced (or its node is gone)."""
        while True:
            try:
                self._lacking = await asyncio.wait_for(asyncio.to_thread(_lacking), 5)
            except Exception as err:  # noqa: BLE001 - the controller may be away for a while
                self._lacking = [f"Serve's controller ({type(err).__name__})"]
            await asyncio.sleep(1.0)

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()

    @property
    def ready(self) -> bool:
        return self._info is not None

    @property
    def degraded(self) -> list[str]:
        return list(self._lacking)

    @property
    def depth(self) -> int:
        return self.in_flight

    async def infer(self, frames: np.ndarray, explain_regions: bool) -> Inference:
        self.in_flight += 1
        try:
            return await _call(self.handle.infer, frames, explain_regions)
        finally:
            self.in_flight -= 1

    async def label_embeddings(self, labels: list[str]) -> np.ndarray:
        return await _call(self.handle.label_embeddings, labels)


@serve.deployment(name="Ingress")
@serve.ingress()
class Ingress:
    """The HTTP app of `alt serve`, its engine calling the Decode and Model deployments.

    Jobs are answered by a deployment of their own (`Jobs`, this class with `runs_jobs`,
    one replica, application `alt-jobs` at /jobs): Serve's proxy sends every job route to
    it, so a job's database row and spooled upload are on one node however many Ingress
    replicas, on however many nodes, answer the rest."""

    def __init__(self, settings: Settings, decode=None, model=None, runs_jobs: bool = False):
        self.settings, self.runs_jobs = settings, runs_jobs
        self.decode = decode or serve.get_deployment_handle("Decode", app_name=APP_NAME)
        self.model = model or serve.get_deployment_handle("Model", app_name=APP_NAME)

    def __serve_build_asgi_app__(self):
        def make_engine(settings: Settings, metrics: Metrics) -> Engine:
            return Engine(
                RemoteModel(self.model, settings.ray_start_timeout_s),
                RemoteDecoder(self.decode),
                settings.decode_limits(),
                settings.request_timeout_s,
                metrics,
                settings.timeline_rate,
            )

        if not self.runs_jobs:
            elsewhere = f"jobs are run by the Jobs deployment (application {JOBS_APP!r})"
            return create_app(self.settings, make_engine=make_engine, jobs_elsewhere=elsewhere)
        return _whole_path(create_app(self.settings, make_engine=make_engine))


def _whole_path(app):
    """The app matched on the whole path: Serve hands an application under /jobs its
    requests with `root_path` /jobs, and the job routes are written with their prefix."""

    async def asgi(scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            scope = {**scope, "root_path": ""}
        await app(scope, receive, send)

    return asgi
