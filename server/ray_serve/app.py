"""Building the Ray Serve application from settings, and running it (`alt serve --ray`)."""

from __future__ import annotations

import logging
import math
from importlib.resources import files
from pathlib import Path
from typing import Any

import ray
from ray import serve

from ..ray_cluster import connect
from ..settings import Settings
from .deployments import APP_NAME, JOBS_APP, JOBS_PREFIX, DecodeReplica, Ingress, ModelReplica
from .proxy import CALLBACK, CALLBACK_ENV

log = logging.getLogger(__name__)

CONFIG = files("server.ray_serve") / "cluster.yaml"  # deployments, autoscaling, HTTP address


def load_config(path: str | Path | None = None) -> dict:
    """The Serve config file (`cluster.yaml` beside this module unless another is named)."""
    import yaml

    text = Path(path).read_text() if path else CONFIG.read_text()
    return yaml.safe_load(text)


def _deployment_options(config: dict, app: str = APP_NAME) -> dict[str, dict]:
    apps = {a.get("name", APP_NAME): a for a in config.get("applications") or []}
    return {d["name"]: {k: v for k, v in d.items() if k != "name"}
            for d in apps.get(app, {}).get("deployments", [])}  # fmt: skip


def spread(options: dict[str, dict], nodes: int) -> dict[str, dict]:
    """On a cluster of `nodes` >= 2: every deployment the requests pass through (Ingress,
    Decode, Model) keeps at least two replicas, at most an even share of its largest
    count on one node (`max_replicas_per_node`), so that losing one node never leaves a
    deployment without a replica. A deployment whose options name `max_replicas_per_node`
    is left as configured; on one node nothing changes (the limit would leave replicas
    unplaced there)."""
    if nodes < 2:
        return options
    out = {name: dict(o) for name, o in options.items()}
    for name in ("Ingress", "Decode", "Model"):
        o = out.setdefault(name, {})
        if "max_replicas_per_node" in o:
            continue
        scaling = o.get("autoscaling_config")
        if scaling is not None:
            scaling = o["autoscaling_config"] = dict(scaling)
            scaling["min_replicas"] = max(scaling.get("min_replicas", 1), 2)
            scaling["max_replicas"] = most = max(scaling.get("max_replicas", 1), 2)
        elif isinstance(o.get("num_replicas", 1), int):
            o["num_replicas"] = most = max(o.get("num_replicas", 1), 2)
        else:
            continue  # "auto": Serve's own defaults
        o["max_replicas_per_node"] = math.ceil(most / nodes)
    return out


def build_app(settings: Settings, config: dict | None = None, nodes: int = 1):
    """The bound application; `config` (a Serve config) sets each deployment's options,
    spread over `nodes` (`spread`)."""
    options = spread(_deployment_options(config or {}), nodes)
    model_options = dict(options.get("Model", {}))
    if settings.device.startswith("cuda"):
        actor = dict(model_options.get("ray_actor_options", {}))
        actor.setdefault("num_gpus", 1)
        model_options["ray_actor_options"] = actor
    decode = DecodeReplica.options(**options.get("Decode", {})).bind(settings)
    model = ModelReplica.options(**model_options).bind(settings)
    return Ingress.options(**options.get("Ingress", {})).bind(settings, decode, model)


def build_jobs_app(settings: Settings, config: dict | None = None):
    """The application that runs jobs (deployment `Jobs`, one replica): it calls the Model
    and Decode deployments of the main application, which must be deployed first."""
    options = {"num_replicas": 1, **_deployment_options(config or {}, JOBS_APP).get("Jobs", {})}
    return Ingress.options(name="Jobs", **options).bind(settings, runs_jobs=True)


def alive_nodes() -> int:
    """Nodes of the connected cluster that are alive and have CPUs."""
    return sum(1 for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU"))


def deploy(settings: Settings, config: dict) -> None:
    """Both applications on the connected cluster: the service at / and its jobs at /jobs."""
    nodes = alive_nodes()
    log.warning("deploying on %d node(s)%s", nodes,
                "; each deployment spread over them" if nodes > 1 else "")  # fmt: skip
    serve.run(build_app(settings, config, nodes), name=APP_NAME, route_prefix="/")
    serve.run(build_jobs_app(settings, config), name=JOBS_APP, route_prefix=JOBS_PREFIX)


def app_builder(args: dict[str, Any]):
    """For `serve run server/ray_serve/cluster.yaml`: settings from the environment (ALT_*), each
    overridden by the config's `args` (e.g. `checkpoint: checkpoints/default`)."""
    return build_app(Settings(**(args or {})))


def jobs_app_builder(args: dict[str, Any]):
    """The jobs application, for `serve run` (see `app_builder`)."""
    return build_jobs_app(Settings(**(args or {})))


def run(settings: Settings, address: str | None = None, config_path: str | None = None):
    """`alt serve --ray`: deploy on the cluster at `address` (else RAY_ADDRESS; a local
    cluster is started when neither names one) and serve until SIGINT or SIGTERM, then
    remove the application, Serve when nothing else runs on it, and the local cluster if
    this command started it."""
    import signal
    import threading

    config = load_config(config_path)
    started = connect(address)
    http = {**config.get("http_options", {}), "host": settings.host, "port": settings.port}
    # A proxy on every node unless the config says otherwise (HeadOnly: one, on the head).
    # The proxies inherit the controller's environment: each answers a request whose
    # replica was lost in the one error shape (see proxy.py).
    serve.start(http_options=http, proxy_location=config.get("proxy_location", "EveryNode"),
                controller_options={"runtime_env": {"env_vars": {CALLBACK_ENV: CALLBACK}}})  # fmt: skip
    deploy(settings, config)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    log.warning("serving on http://%s:%d through Ray Serve", settings.host, settings.port)
    stop.wait()
    serve.delete(JOBS_APP)
    serve.delete(APP_NAME)
    if started or not serve.status().applications:
        # Serve's HTTP address is fixed while Serve runs on a cluster: with nothing else
        # deployed, stop it, so the next deployment listens where it is told.
        serve.shutdown()
    if started:
        ray.shutdown()
