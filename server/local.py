"""`alt recognize`: the server's answer for one file, without a server."""

from __future__ import annotations

import asyncio
from pathlib import Path

from .backends import create_backend
from .engine import Engine
from .labels import parse_labels
from .metrics import Metrics
from .schemas import Explain
from .settings import Settings


async def _recognize(settings: Settings, data: bytes, labels, top_k: int, explain: Explain) -> dict:
    engine = Engine.local(create_backend(settings), settings, Metrics())
    await engine.start()
    try:
        answer = await engine.recognize(data, labels, top_k, explain)
        return answer.model_dump(mode="json", exclude_none=True)
    finally:
        await engine.stop()


def recognize_file(
    settings: Settings, video: Path, labels: list[str] | None, top_k: int, explain: str
) -> dict:
    label_set = parse_labels(labels, settings.max_labels, settings.max_label_chars)
    return asyncio.run(
        _recognize(settings, Path(video).read_bytes(), label_set, top_k, Explain(explain))
    )
