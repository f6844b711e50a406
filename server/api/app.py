"""The HTTP app: `create_app(settings) -> FastAPI`; the engine starts in the lifespan.

The only modules that import this package are the CLI (`alt serve`) and the Ray Serve
ingress, which serves the same app over remote parts."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from contextlib import asynccontextmanager
from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles

from ..engine import Backend, Engine, ErrorBody, Metrics, decode_pool
from ..jobs import JobLimits, JobRunner, JobStore, Spool
from ..library import Indexer, LibraryOpener, open_for_model
from ..settings import Settings
from ..streams import StreamLimits, StreamManager, StreamStore
from .admission import Admission
from .handlers import ERROR_STATUSES, install_handlers, internal_error
from .routes import jobs, library, meta, recognize, streams, web

log = logging.getLogger(__name__)

# Swagger UI and ReDoc ship inside the fastapi-offline package: /docs works without internet.
_DOCS_ASSETS = files("fastapi_offline") / "static"


def create_app(
    settings: Settings | None = None,
    backend: Backend | None = None,
    make_engine: Callable[[Settings, Metrics], Engine] | None = None,
    jobs_elsewhere: str | None = None,
) -> FastAPI:
    """`backend` overrides the one the settings name (tests inject faults this way);
    `make_engine` builds the engine instead of the in-process one (a Ray cluster's,
    `server.ray_serve`); `jobs_elsewhere` says who runs the jobs when this app does not
    (its job routes then answer 503 with that reason)."""
    settings = settings or Settings()
    metrics = Metrics()

    def in_process(settings: Settings, metrics: Metrics) -> Engine:
        return settings.in_process_engine(backend, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = (make_engine or in_process)(settings, metrics)
        app.state.engine = engine
        await engine.start()
        runner = None
        # Opened at its first use (`LibraryOpener`): most servers' starts never load it.
        app.state.library = library = LibraryOpener(
            lambda: open_for_model(settings.library, engine.info, settings.backend,
                                   settings.model_dir, settings.library_index_rows),
            str(settings.library),
        )  # fmt: skip
        try:
            if jobs_elsewhere is not None:
                app.state.jobs_problem = jobs_elsewhere
            else:
                indexer = Indexer(engine, library)
                runner = job_runner(settings, engine, indexer)
                await runner.start()
        except (OSError, sqlite3.Error) as err:
            # /recognize does not need the jobs' folder: serve on, and say why jobs fail.
            log.error("jobs are unavailable: %s (ALT_JOBS_DIR=%s)", err, settings.jobs_dir)
            app.state.jobs_problem = f"{err} (ALT_JOBS_DIR={settings.jobs_dir})"
            runner = None
        except BaseException:
            await engine.stop()
            raise
        app.state.jobs = runner
        watcher = None
        if make_engine is not None:  # a Ray cluster's engine: no replica watches streams
            app.state.streams_problem = "live streams are watched by `alt serve`, not on Ray"
        else:
            try:
                watcher = stream_manager(settings, engine)
                await watcher.start()
            except (OSError, sqlite3.Error) as err:
                log.error("streams are unavailable: %s (ALT_JOBS_DIR=%s)", err, settings.jobs_dir)
                app.state.streams_problem = f"{err} (ALT_JOBS_DIR={settings.jobs_dir})"
                watcher = None
        app.state.streams = watcher
        try:
            yield
        finally:
            if watcher is not None:
                await watcher.stop()
            if runner is not None:
                await runner.stop()
            await engine.stop()

    app = FastAPI(
        title="ALT Serve",
        summary="Open-vocabulary video action recognition that explains itself.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        responses={code: {"model": ErrorBody} for code in ERROR_STATUSES},
    )
    app.state.settings = settings
    app.state.metrics = metrics
    # One bound over everything a request holds, decided before its upload is read.
    app.state.admission = Admission(settings.max_in_flight, settings.max_uploads_bytes)
    install_handlers(app, lambda kind: metrics.errors.labels(kind).inc())

    @app.middleware("http")
    async def count_requests(request: Request, call_next):
        try:
            response = await call_next(request)
        except Exception as exc:  # noqa: BLE001 - the one place an unexpected error ends
            metrics.errors.labels("internal").inc()
            response = internal_error(exc)
        route = request.scope.get("route")
        metrics.requests.labels(
            getattr(route, "path", "unmatched"), str(response.status_code)
        ).inc()
        return response

    app.include_router(recognize.router)
    app.include_router(jobs.router)
    app.include_router(library.router)
    app.include_router(streams.router)
    app.include_router(meta.router)
    app.include_router(meta.health)
    app.include_router(web.router)
    app.mount("/static", StaticFiles(directory=web.WEB_DIR), name="static")
    app.mount("/docs-assets", StaticFiles(directory=str(_DOCS_ASSETS)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger():
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="ALT Serve API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc():
        return get_redoc_html(
            openapi_url="/openapi.json",
            title="ALT Serve API",
            redoc_js_url="/docs-assets/redoc.standalone.js",
            redoc_favicon_url="/docs-assets/favicon.png",
            with_google_fonts=False,
        )

    return app


def job_runner(settings: Settings, engine: Engine, indexer: Indexer | None = None) -> JobRunner:
    """Jobs in `settings.jobs_dir`, decoded by processes of their own."""
    assert engine.job is not None, "the engine has started"
    return JobRunner(
        engine,
        JobStore(settings.jobs_dir / "jobs.db"),
        Spool(
            settings.jobs_dir / "spool",
            int(settings.max_job_upload_mb * 2**20),
            int(settings.jobs_quota_mb * 2**20),
        ),
        decode_pool(settings.decode_limits(), engine.job, settings.job_workers),
        JobLimits(
            settings.job_workers, settings.max_jobs, settings.max_job_duration_s, settings.job_ttl_s
        ),
        indexer,
    )


def stream_manager(settings: Settings, engine: Engine) -> StreamManager:
    """Live streams, their definitions beside the jobs."""
    return StreamManager(
        engine,
        StreamStore(settings.jobs_dir / "streams.db"),
        StreamLimits(
            max_streams=settings.max_streams,
            allow_private=settings.streams_allow_private,
            timeout_s=settings.stream_timeout_s,
            max_pixels=settings.max_pixels,
            max_labels=settings.max_labels,
            max_label_chars=settings.max_label_chars,
            nice=settings.decode_nice,
            memory_mb=settings.decode_memory_mb,
        ),
    )


def serve(settings: Settings) -> None:
    """Serve on `settings.host:port` with the HTTP bounds of the settings (`alt serve`)."""
    import uvicorn

    from .transport import ConnectionGuard

    app = create_app(settings)
    guard = ConnectionGuard(
        settings.header_timeout_s,
        settings.max_head_kb * 1024,
        settings.max_connections_per_client,
        app.state.metrics,
    )
    uvicorn.run(
        app,
        http=guard.protocol(),
        host=settings.host,
        port=settings.port,
        log_level="info",
        timeout_keep_alive=settings.keep_alive_s,
        limit_concurrency=settings.max_connections,
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
    )
