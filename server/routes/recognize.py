"""POST /recognize."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from ..deps import EngineDep, SettingsDep, require_key
from ..labels import parse_labels
from ..schemas import ErrorBody, Explain, Recognition
from ..upload import read_video

router = APIRouter(tags=["recognition"], dependencies=[Depends(require_key)])

_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"video": {"type": "string", "format": "binary"}},
                    "required": ["video"],
                }
            },
            "video/*": {"schema": {"type": "string", "format": "binary"}},
            "image/gif": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post(
    "/recognize",
    response_model=Recognition,
    response_model_exclude_none=True,
    openapi_extra=_BODY_DOC,
    responses={code: {"model": ErrorBody} for code in (401, 413, 415, 422, 429, 504)},
    summary="Recognize the actions in a video and explain them",
)
async def recognize(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    labels: Annotated[
        list[str] | None,
        Query(
            description="label set: repeat (labels=a&labels=b) or comma-separate; default: the model's"
        ),
    ] = None,
    top_k: Annotated[int, Query(ge=1, le=1000, description="actions to return")] = 5,
    explain: Annotated[Explain, Query(description="none | entities | regions")] = Explain.entities,
) -> dict:
    label_set = parse_labels(labels, settings.max_labels, settings.max_label_chars)
    data = await read_video(request, settings.max_upload_bytes)
    return await engine.recognize(data, label_set, top_k, explain)
