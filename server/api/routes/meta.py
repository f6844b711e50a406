"""Label set, entity corpus, health, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from model import catalog

from ...engine.labels import named_label_set
from ...engine.schemas import (
    Alive,
    EntitiesAnswer,
    LabelsAnswer,
    LabelSetAnswer,
    LabelSets,
    LabelSetSummary,
    ModelAnswer,
)
from ..deps import AdmissionDep, EngineDep, MetricsDep, require_key

router = APIRouter(tags=["model"], dependencies=[Depends(require_key)])
health = APIRouter(tags=["health"])


@router.get("/labels", summary="The default label set and the prompt templates")
async def labels(engine: EngineDep) -> LabelsAnswer:
    info = engine.info
    return LabelsAnswer(labels=list(info.default_labels), templates=list(info.label_templates),
                        domain=info.domain)  # fmt: skip


@router.get("/label-sets", summary="Named label sets: pass one as labels=@name")
async def label_sets() -> LabelSets:
    return LabelSets(
        label_sets=[
            LabelSetSummary(name=name, title=title, labels=len(catalog.label_set(name)))
            for name, (title, _) in catalog.LABEL_SETS.items()
        ]
    )


@router.get("/label-sets/{name}", summary="The labels of a named set")
async def label_set(name: str) -> LabelSetAnswer:
    return LabelSetAnswer(name=name, labels=named_label_set(name))


@health.get("/model", summary="What the served model is and what it knows (open)")
async def model_info(engine: EngineDep) -> ModelAnswer:
    info = engine.info
    return ModelAnswer(
        name=info.name, version=info.version, backend=info.backend,
        device=info.device, dtype=info.dtype, frames=info.frames,
        image_size=info.image_size, views=info.clips * info.crops,
        domain=info.domain, card=info.card,
        default_labels=len(info.default_labels), entities=len(info.entity_names),
        label_templates=list(info.label_templates),
    )  # fmt: skip


@router.get("/entities", summary="The entity corpus")
async def entities(engine: EngineDep) -> EntitiesAnswer:
    return EntitiesAnswer(entities=list(engine.info.entity_names))


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(metrics: MetricsDep, engine: EngineDep) -> Response:
    metrics.queue_depth.set(engine.model.depth)
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


@health.get("/healthz", summary="Alive")
async def healthz() -> Alive:
    return Alive(status="ok")


@health.get("/readyz", summary="Ready for traffic: model loaded, batcher running, not saturated")
async def readyz(engine: EngineDep, gate: AdmissionDep) -> Response:
    """200 when a request sent now would be admitted; 503 while the model is not loaded, the
    batcher has stopped, a part of a cluster has no working replica ("degraded", naming
    it), or every admission slot is taken (a load balancer should send elsewhere). The body
    says which, with the in-flight count against the capacity."""
    facts = {"in_flight": gate.in_flight, "capacity": gate.capacity,
             "decoding": engine.decoder.busy, "decode_waiting": engine.decoder.waiting}  # fmt: skip
    if not engine.ready:
        return JSONResponse({"status": "not ready", **facts}, status_code=503)
    if lacking := engine.degraded:
        return JSONResponse({"status": "degraded", "lacking": lacking, **facts},
                            status_code=503, headers={"Retry-After": "1"})  # fmt: skip
    if gate.saturated:
        return JSONResponse({"status": "saturated", **facts}, status_code=503)
    info = engine.info
    return JSONResponse({"status": "ready", "model": info.name, "backend": info.backend,
                         "device": info.device, **facts})  # fmt: skip
