"""Building the Ray Serve application from settings, and running it (`alt serve --ray`)."""

from __future__ import annotations

import logging
from importlib.resources import files
from pathlib import Path
from typing import Any

import ray
from ray import serve

from ..ray_cluster import connect
from ..settings import Settings
from .deployments import APP_NAME, DecodeReplica, Ingress, ModelReplica

log = logging.getLogger(__name__)

CONFIG = files("server.ray_serve") / "cluster.yaml"  # deployments, autoscaling, HTTP address


def load_config(path: str | Path | None = None) -> dict:
    """The Serve config file (`cluster.yaml` beside this module unless another is named)."""
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
    """For `serve run server/ray_serve/cluster.yaml`: settings from the environment (ALT_*), each
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
    started = connect(address)
    http = {**config.get("http_options", {}), "host": settings.host, "port": settings.port}
    serve.start(http_options=http)
    serve.run(build_app(settings, config), name=APP_NAME, route_prefix="/")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    log.warning("serving on http://%s:%d through Ray Serve", settings.host, settings.port)
    stop.wait()
    serve.delete(APP_NAME)
    if started or not serve.status().applications:
        # Serve's HTTP address is fixed while Serve runs on a cluster: with nothing else
        # deployed, stop it, so the next deployment listens where it is told.
        serve.shutdown()
    if started:
        ray.shutdown()
