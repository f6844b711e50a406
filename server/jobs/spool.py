"""Uploads of jobs, written to disk as they arrive (never held in memory), under two
bounds: the size of one upload (413) and the bytes all unfinished jobs hold (429)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from ..engine.errors import BadRequest, Overloaded, PayloadTooLarge


class Spool:
    def __init__(self, folder: Path, max_bytes: int, quota_bytes: int) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes, self.quota_bytes = max_bytes, quota_bytes
        self.held = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())

    def path(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.video"

    async def write(self, job_id: str, chunks: AsyncIterator[bytes]) -> tuple[Path, int]:
        """Write an upload to the spool -> (its path, its size). Removed again on any error."""
        path = self.path(job_id)
        counted = 0  # bytes of this upload counted in `held`
        handle = await asyncio.to_thread(open, path, "wb")
        try:
            async for chunk in chunks:
                if counted + len(chunk) > self.max_bytes:
                    raise PayloadTooLarge(
                        f"the upload exceeds the limit of {self.max_bytes / 2**20:.0f} MiB for a "
                        "job (ALT_MAX_JOB_UPLOAD_MB)",
                        headers={"connection": "close"},
                    )
                if self.held + len(chunk) > self.quota_bytes:
                    raise Overloaded(
                        f"the uploads of unfinished jobs hold {self.held / 2**20:.0f} MiB, the "
                        "most the server keeps (ALT_JOBS_QUOTA_MB); retry when jobs finish",
                        headers={"Retry-After": "60", "connection": "close"},
                    )
                self.held += len(chunk)
                counted += len(chunk)
                await asyncio.to_thread(handle.write, chunk)
            await asyncio.to_thread(handle.close)
            if not counted:
                raise BadRequest("the request holds no video bytes")
            return path, counted
        except BaseException:
            handle.close()
            self.held -= counted
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise

    def hand_over(self, path: Path | str) -> None:
        """The file leaves the spool's care (moved elsewhere): no longer counted."""
        with contextlib.suppress(OSError):
            self.held = max(0, self.held - Path(path).stat().st_size)

    def discard(self, path: Path | str) -> None:
        path = Path(path)
        with contextlib.suppress(OSError):
            self.held -= path.stat().st_size
            os.unlink(path)
        self.held = max(0, self.held)
