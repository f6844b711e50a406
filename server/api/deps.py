"""Typed dependencies shared by the routers."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from ..engine import Engine, Metrics
from ..engine.errors import Unauthorized, Unavailable
from ..settings import Settings
from .admission import Admission


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def get_admission(request: Request) -> Admission:
    return request.app.state.admission


def app_part(request: Request, name: str):
    """A part the app starts in its lifespan (`jobs`, `streams`), or a 503 saying why this
    app has none (`<name>_problem`)."""
    part = getattr(request.app.state, name, None)
    if part is None:
        problem = getattr(request.app.state, f"{name}_problem", "the server is starting")
        raise Unavailable(f"{name} are unavailable here: {problem}")
    return part


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
AdmissionDep = Annotated[Admission, Depends(get_admission)]


def require_key(request: Request, settings: SettingsDep) -> None:
    """With an API key configured, demand `Authorization: Bearer <key>` (constant-time check)."""
    if settings.api_key is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    expected = settings.api_key.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise Unauthorized("missing or wrong API key", headers={"WWW-Authenticate": "Bearer"})
