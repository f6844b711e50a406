"""The app factory: `create_app(settings) -> FastAPI`; the model loads in the lifespan."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles

from .backends import Backend, create_backend
from .engine import Engine
from .errors import install_handlers
from .metrics import Metrics
from .routes import meta, recognize, web
from .settings import Settings


def create_app(settings: Settings | None = None, backend: Backend | None = None) -> FastAPI:
    """`backend` overrides the one the settings name (tests inject faults this way)."""
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = Engine(backend or create_backend(settings), settings, metrics)
        app.state.engine = engine
        await engine.start()
        try:
            yield
        finally:
            await engine.stop()

    app = FastAPI(
        title="ALT Serve",
        summary="Open-vocabulary video action recognition that explains itself.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    install_handlers(app, lambda kind: metrics.errors.labels(kind).inc())

    @app.middleware("http")
    async def count_requests(request: Request, call_next):
        response = await call_next(request)
        route = request.scope.get("route")
        metrics.requests.labels(
            getattr(route, "path", "unmatched"), str(response.status_code)
        ).inc()
        return response

    app.include_router(recognize.router)
    app.include_router(meta.router)
    app.include_router(meta.health)
    app.include_router(web.router)
    app.mount("/static", StaticFiles(directory=web.WEB_DIR), name="static")
    return app
