"""The service on a Ray cluster: Ray Serve for online traffic, Ray Data for collections.

Online (`alt serve --ray`, or `serve run server/cluster.yaml`), three deployments:

- `Ingress`: the FastAPI app of `alt serve` (routes, admission, errors, OpenAPI unchanged)
  whose engine calls the two below instead of local parts;
- `Decode`: CPU replicas, each with its own pool of decode worker processes (`media.pool`);
- `Model`: replicas (a GPU each where there is one) that batch clips across requests on
  the same batcher as `alt serve`, each with its own label-set cache.

They scale apart: a GPU node need not carry the decoding of every request. A replica that
dies mid-request is waited out: the call goes to another replica, or to the one Ray starts
in its place, within the request's time limit (`ALT_REQUEST_TIMEOUT_S`, then 504).

Offline (`alt recognize-batch --ray`): a Ray Data job, decoding in CPU actors and the model
in actors that take a GPU each where there is one.

Ray is optional (`pip install 'alt-serve[cluster]'`); nothing imports this module unless
asked to.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import os
import pickle
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

try:
    import ray
    from ray import serve
    from ray.exceptions import RayActorError, RayTaskError
    from ray.serve.exceptions import BackPressureError, ReplicaUnavailableError
except ImportError as err:  # pragma: no cover - depends on the install
    raise ImportError("the cluster mode needs Ray: pip install 'alt-serve[cluster]'") from err

from media import VideoInfo
from media.worker import Job
from model.contract import ModelMeta

from .app import create_app
from .backends import ModelInfo, create_backend
from .engine import Engine, Inference, ModelRunner, decode_job, local_decoder
from .errors import Overloaded
from .metrics import Metrics
from .settings import Settings

log = logging.getLogger(__name__)

CONFIG = files("server") / "cluster.yaml"  # deployments, autoscaling, HTTP address
APP_NAME = "alt"
_DEATHS = (RayActorError, ReplicaUnavailableError)  # a replica died or is gone


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


# ---- the deployments ---------------------------------------------------------------------


@serve.deployment(name="Decode")
class DecodeReplica:
    """Decoding on CPUs: one worker process per CPU the replica holds."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.workers = _cpus()
        self.pool = None

    async def decode(self, data: bytes, job: Job) -> tuple[np.ndarray, VideoInfo]:
        if self.pool is None or self.pool.slot_bytes < job.nbytes:
            if self.pool is not None:
                self.pool.close()
            self.pool = local_decoder(job, self.settings, self.workers)
        return await self.pool.decode(data, job)

    def __del__(self) -> None:
        if self.pool is not None:
            self.pool.close()


@serve.deployment(name="Model")
class ModelReplica:
    """The model behind the batcher of `alt serve`, with its own label-set cache."""

    async def __init__(self, settings: Settings) -> None:
        self.runner = ModelRunner(create_backend(settings), settings)
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


class RemoteDecoder:
    """The engine's decoder, in the Decode deployment."""

    def __init__(self, handle) -> None:
        self.handle = handle
        self.busy = 0  # calls from this ingress in flight
        self.waiting = 0  # Ray queues them; this side cannot tell waiting from running

    async def decode(self, data: bytes, job: Job) -> tuple[np.ndarray, VideoInfo]:
        self.busy += 1
        try:
            return await _call(self.handle.decode, data, job)
        finally:
            self.busy -= 1

    def close(self) -> None:
        pass


class RemoteModel:
    """The engine's model, in the Model deployment."""

    def __init__(self, handle) -> None:
        self.handle = handle
        self.info: ModelInfo | None = None
        self.in_flight = 0

    async def start(self) -> None:
        self.info = await _call(self.handle.info)

    async def stop(self) -> None:
        pass

    @property
    def ready(self) -> bool:
        return self.info is not None

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
    """The HTTP app of `alt serve`, its engine calling the Decode and Model deployments."""

    def __init__(self, settings: Settings, decode, model) -> None:
        self.settings, self.decode, self.model = settings, decode, model

    def __serve_build_asgi_app__(self):
        def make_engine(settings: Settings, metrics: Metrics) -> Engine:
            return Engine(RemoteModel(self.model), RemoteDecoder(self.decode), settings, metrics)

        return create_app(self.settings, make_engine=make_engine)


# ---- building and running the application ------------------------------------------------


def load_config(path: str | Path | None = None) -> dict:
    """The Serve config file (`server/cluster.yaml` unless another is named)."""
    import yaml

    text = Path(path).read_text() if path else CONFIG.read_text()
    return yaml.safe_load(text)


def _deployment_options(config: dict) -> dict[str, dict]:
    apps = config.get("applications") or [{}]
    return {d["name"]: {k: v for k, v in d.items() if k != "name"}
            for d in apps[0].get("deployments", [])}  # fmt: skip


def build_app(settings: Settings, config: dict | None = None):
    """The bound application; `config` (a Serve config) sets each deployment's options."""
    options = _deployment_options(config or {})
    model_options = dict(options.get("Model", {}))
    if settings.device.startswith("cuda"):
        actor = dict(model_options.get("ray_actor_options", {}))
        actor.setdefault("num_gpus", 1)
        model_options["ray_actor_options"] = actor
    decode = DecodeReplica.options(**options.get("Decode", {})).bind(settings)
    model = ModelReplica.options(**model_options).bind(settings)
    return Ingress.options(**options.get("Ingress", {})).bind(settings, decode, model)


def app_builder(args: dict[str, Any]):
    """For `serve run server/cluster.yaml`: settings from the environment (ALT_*), each
    overridden by the config's `args` (e.g. `checkpoint: checkpoints/default`)."""
    return build_app(Settings(**(args or {})))


def run(settings: Settings, address: str | None = None, config_path: str | None = None):
    """`alt serve --ray`: deploy on the cluster at `address` (else RAY_ADDRESS; a local
    cluster is started when neither names one) and serve until SIGINT or SIGTERM, then
    remove the application, Serve when nothing else runs on it, and the local cluster if
    this command started it."""
    import signal
    import threading

    config = load_config(config_path)
    address = address or os.environ.get("RAY_ADDRESS")
    ray.init(address=address, log_to_driver=False, include_dashboard=False)
    http = {**config.get("http_options", {}), "host": settings.host, "port": settings.port}
    serve.start(http_options=http)
    serve.run(build_app(settings, config), name=APP_NAME, route_prefix="/")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    log.warning("serving on http://%s:%d through Ray Serve", settings.host, settings.port)
    stop.wait()
    serve.delete(APP_NAME)
    if not address or not serve.status().applications:
        # Serve's HTTP address is fixed while Serve runs on a cluster: with nothing else
        # deployed, stop it, so the next deployment listens where it is told.
        serve.shutdown()
    if not address:
        ray.shutdown()


# ---- offline: a Ray Data job over a collection --------------------------------------------


class _DecodeStage:
    """Ray Data actor: paths in, frames (or the file's error) out, decoded in worker
    processes exactly as the server decodes."""

    def __init__(self, settings: Settings, job: Job) -> None:
        self.job = job
        self.pool = local_decoder(job, settings, workers=1)
        self.loop = asyncio.new_event_loop()
        self.shape = (job.clips * job.crops, job.frames, 3, job.size, job.size)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import time

        from .batch import error_line

        frames, videos, errors, decode_ms = [], [], [], []
        for path in batch["path"]:
            t0 = time.perf_counter()
            try:
                data = Path(path).read_bytes()
                clip, video = self.loop.run_until_complete(self.pool.decode(data, self.job))
                frames.append(clip)
                videos.append(pickle.dumps(video))
                errors.append("")
            except Exception as err:  # noqa: BLE001 - the file's error is its answer line
                frames.append(np.zeros(self.shape, np.uint8))
                videos.append(b"")
                errors.append(json.dumps(error_line(str(path), err)))
            decode_ms.append((time.perf_counter() - t0) * 1000)
        return {**batch, "frames": np.stack(frames), "video": np.array(videos, dtype=object),
                "error": np.array(errors, dtype=object), "decode_ms": np.array(decode_ms)}  # fmt: skip


class _ModelStage:
    """Ray Data actor: decoded videos in, answer lines out (the server's answers)."""

    def __init__(self, settings: Settings, labels, top_k: int, explain: str) -> None:
        from .batch import LabelledAnswers

        self.answers = LabelledAnswers(create_backend(settings), labels, top_k, explain)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import time

        lines = [None] * len(batch["path"])
        ok = [i for i, e in enumerate(batch["error"]) if not e]
        for i, e in enumerate(batch["error"]):
            if e:
                lines[i] = json.loads(e)
        if ok:
            t0 = time.perf_counter()
            frames = batch["frames"][ok]
            views = self.answers.backend.encode_video(
                frames.reshape(-1, *frames.shape[2:]), self.answers.explain == "regions"
            )
            seconds = time.perf_counter() - t0
            per = frames.shape[1]
            for n, i in enumerate(ok):
                video = pickle.loads(batch["video"][i])
                timings = {"decode_s": batch["decode_ms"][i] / 1000, "queue_s": 0.0,
                           "inference_s": seconds, "total_s": batch["decode_ms"][i] / 1000 + seconds}  # fmt: skip
                lines[i] = self.answers.line(
                    str(batch["path"][i]), video, views[n * per : (n + 1) * per], timings
                )
        for i, line in enumerate(lines):
            label = batch["label"][i]
            if label:
                line["label"] = str(label)
        return {"line": np.array([json.dumps(line) for line in lines], dtype=object)}


def _stored_job(settings: Settings) -> Job:
    """The decode job of the model the settings name, read from its files: the driver does
    not load the model that the actors load."""
    if settings.backend == "torch":
        from model.checkpoint import read_config

        c = read_config(settings.checkpoint)
        return decode_job(settings, c.frames, c.image_size, c.test_clips, c.test_crops)
    m = ModelMeta.from_json(json.loads((Path(settings.onnx_dir) / "meta.json").read_text()))
    return decode_job(settings, m.frames, m.image_size, m.clips, m.crops)


def recognize_collection(
    settings: Settings,
    items: list[tuple[str, str]],
    labels: list[str] | None,
    top_k: int,
    explain: str,
    address: str | None = None,
    decoders: int = 1,
    models: int = 1,
) -> Iterator[dict]:
    """Answer lines for `(path, label)` items, as Ray Data produces them."""
    import ray.data

    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False, include_dashboard=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.verbose_stats_logs = False
    job = _stored_job(settings)
    views = job.clips * job.crops
    gpus = 1 if settings.device.startswith("cuda") else 0
    ds = ray.data.from_items([{"path": p, "label": lab or ""} for p, lab in items])
    ds = ds.map_batches(
        _DecodeStage, fn_constructor_kwargs={"settings": settings, "job": job},
        batch_size=4, compute=ray.data.ActorPoolStrategy(size=decoders), num_cpus=1,
    ).map_batches(
        _ModelStage,
        fn_constructor_kwargs={"settings": settings, "labels": labels, "top_k": top_k,
                               "explain": explain},
        batch_size=max(1, settings.max_batch_size // views),
        compute=ray.data.ActorPoolStrategy(size=models),
        num_cpus=0 if gpus else 1, num_gpus=gpus,
    )  # fmt: skip
    for row in ds.iter_rows():
        yield json.loads(row["line"])
