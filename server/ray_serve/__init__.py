"""The service on Ray Serve: the HTTP app and the engine's parts as deployments that scale
apart (`alt serve --ray`, or `serve run server/ray_serve/cluster.yaml`). Ray is optional
(`pip install 'alt-serve[cluster]'`); nothing imports this package unless asked to.
"""

from .app import (
    APP_NAME,
    app_builder,
    build_app,
    deploy,
    jobs_app_builder,
    load_config,
    run,
    spread,
)

__all__ = [
    "APP_NAME", "app_builder", "build_app", "deploy", "jobs_app_builder", "load_config", "run",
    "spread",
]  # fmt: skip
