"""The web page and its sample videos (public: no API key needed to look)."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from ...engine.errors import NotFound
from ...engine.schemas import Samples
from ..deps import SettingsDep

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
_NAME = re.compile(r"^[\w.-]+\.mp4$")

router = APIRouter(tags=["web"])


def _samples(settings) -> dict[str, Path]:
    folder = settings.samples_dir
    if folder is None or not folder.is_dir():
        return {}
    return {p.name: p for p in sorted(folder.glob("*.mp4")) if _NAME.match(p.name)}


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(WEB_DIR / "index.html", media_type="text/html")


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> FileResponse:
    return FileResponse(WEB_DIR / "favicon.svg", media_type="image/svg+xml")


@router.get("/samples", summary="Sample videos of the model's world")
async def samples(settings: SettingsDep) -> Samples:
    return Samples(samples=list(_samples(settings)))


@router.get("/samples/{name}", summary="Download a sample video")
async def sample(name: str, settings: SettingsDep) -> FileResponse:
    path = _samples(settings).get(name)
    if path is None:
        raise NotFound(f"no sample named {name!r}")
    return FileResponse(path, media_type="video/mp4", filename=name)
