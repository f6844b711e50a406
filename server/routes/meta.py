"""Label set, entity corpus, health, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from ..deps import EngineDep, MetricsDep, require_key

router = APIRouter(tags=["model"], dependencies=[Depends(require_key)])
health = APIRouter(tags=["health"])


@router.get("/labels", summary="The default label set")
async def labels(engine: EngineDep) -> dict:
    return {
        "labels": list(engine.info.default_labels),
        "templates": list(engine.info.label_templates),
    }


@router.get("/entities", summary="The entity corpus")
async def entities(engine: EngineDep) -> dict:
    return {"entities": list(engine.info.entity_names)}


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(metrics: MetricsDep, engine: EngineDep) -> Response:
    metrics.queue_depth.set(engine.batcher.depth)
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


@health.get("/healthz", summary="Alive")
async def healthz() -> dict:
    return {"status": "ok"}


@health.get("/readyz", summary="Model loaded and batcher running")
async def readyz(engine: EngineDep) -> Response:
    if engine.ready:
        info = engine.info
        return JSONResponse(
            {"status": "ready", "model": info.name, "backend": info.backend, "device": info.device}
        )
    return JSONResponse({"status": "not ready"}, status_code=503)
