"""Indexing one video into the library: its windows through the model, stored a chunk at a
time as they come, resumed after the last stored window when a run was interrupted."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

from media.windows import Window, WindowedInfo

from ..engine import Decoder, Engine
from ..engine.backends import ClipResult
from ..engine.errors import ServiceError
from ..engine.timeline import TimelineOptions
from .opener import LibraryOpener
from .store import Library

Progress = Callable[[int, int], Awaitable[None]]


class Indexer:
    """The engine's windows into the library `library` opens (at its first use: indexing
    fails with the reason it cannot be opened)."""

    def __init__(self, engine: Engine, library: LibraryOpener) -> None:
        self.engine, self.library = engine, library

    @property
    def keeps_uploads(self) -> bool:
        """An upload indexed moves into the library (a local one), to be played later."""
        library = self.library.opened
        return library is not None and library.media_folder is not None

    async def require(self) -> Library:
        library = self.library.opened  # once open, no thread to ask for it
        return library if library is not None else await asyncio.to_thread(self.library)

    async def index(
        self,
        video_id: str,
        path: Path,
        options: TimelineOptions,
        decoder: Decoder,
        progress: Progress,
        max_duration_s: float,
    ) -> int:
        """Index the video at `path` (its row exists) from its first window not yet
        stored. -> windows stored."""
        library = await self.require()
        first = await asyncio.to_thread(library.stored_windows, video_id)
        await asyncio.to_thread(library.update_video, video_id, state="running")
        facts: dict = {}

        async def on_info(info: WindowedInfo) -> None:
            facts.update(
                duration_s=info.duration_s, fps=info.fps, coded_width=info.width,
                coded_height=info.height, frames=info.num_frames, windows=len(info.windows),
                shots=[list(s) for s in info.shots], warnings=list(info.warnings), rotation=0,
            )  # fmt: skip

        async def sink(
            start: int, windows: tuple[Window, ...], views: list[list[ClipResult]], turn: int
        ) -> None:
            if facts.get("rotation") != turn or start == first:
                facts["rotation"] = turn
                await asyncio.to_thread(library.update_video, video_id, facts=dict(facts))
            await asyncio.to_thread(
                library.add_windows, video_id, start, [w.start_s for w in windows],
                [w.end_s for w in windows], [w.times_s for w in windows], views,
            )  # fmt: skip

        damaged = await self.engine.embed_windows(
            path, options, decoder=decoder, first=first, on_info=on_info, sink=sink,
            progress=progress, max_duration_s=max_duration_s,
        )  # fmt: skip
        if damaged:
            facts["warnings"] = [
                *facts.get("warnings", []),
                f"{damaged} damaged packets were skipped",
            ]
        stored = await asyncio.to_thread(library.stored_windows, video_id)
        if stored < facts.get("windows", 0):
            raise RuntimeError(f"{stored} of {facts['windows']} windows stored")
        if first >= facts.get("windows", 0):  # nothing decoded this run: keep the stored rotation
            row = await asyncio.to_thread(library.video, video_id)
            facts["rotation"] = (row.facts if row else {}).get("rotation", 0)
        await asyncio.to_thread(library.update_video, video_id, facts=facts)
        return stored

    async def finish(self, video_id: str, state: str, error: dict | None, upload: Path | None):
        """Record the end of an indexing run; an upload the library keeps moves into it."""
        try:
            library = await self.require()
        except ServiceError:
            return  # no library to record it in (the job says why)
        media = None
        if state == "succeeded" and upload is not None and library.media_folder is not None:
            target = library.media_folder / f"{video_id}{upload.suffix}"
            await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
            await asyncio.to_thread(shutil.move, upload, target)
            media = str(target)
        fields: dict = {"state": state, "error": error}
        if media is not None:
            fields["media"] = media
        await asyncio.to_thread(library.update_video, video_id, **fields)
        if state == "succeeded":
            await asyncio.to_thread(library.optimize)
