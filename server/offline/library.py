"""The library without a server: `alt index` (a collection's windows into the library,
resumable), `alt search` and `alt timeline` (answers from the stored windows).

A file's id in the library is a hash of its canonical path, so indexing a collection again
skips the videos already stored, resumes one interrupted mid-way after its last stored
window, and indexes a file again only when it was indexed with other window options.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..engine import Engine, ModelInfo
from ..engine.backends import create_backend
from ..engine.errors import NotFound, ServiceError, as_service_error
from ..engine.labels import encode_label_set, parse_labels
from ..engine.schemas import TimelineRecognition
from ..engine.timeline import TimelineOptions
from ..library import (
    Indexer,
    Library,
    LibraryOpener,
    VideoRow,
    open_for_model,
    relabel_options,
    search_moments,
    stored_timeline,
)
from ..settings import Settings
from .collection import Item, collect
from .lines import canonical


def video_id_of(path: str | Path) -> str:
    """The library id of a file: its canonical path, hashed."""
    return hashlib.sha256(canonical(path).encode()).hexdigest()[:32]


def open_library(settings: Settings, info: ModelInfo) -> Library:
    return open_for_model(settings.library, info, settings.backend, settings.model_dir,
                          settings.library_index_rows)  # fmt: skip


@dataclass
class IndexSummary:
    videos: int = 0
    indexed: int = 0
    skipped: int = 0  # stored already, with the same window options
    errors: int = 0

    def record(self, state: str, path: str, progress: bool) -> None:
        """One file's outcome: "succeeded", "stored" (there already) or "failed"."""
        if progress:
            print(f"{state:9s} {path}", file=sys.stderr)
        if state == "succeeded":
            self.indexed += 1
        elif state == "stored":
            self.skipped += 1
        else:
            self.errors += 1


def _window_options(options: TimelineOptions) -> dict:
    return {"window_s": options.window_s, "stride_s": options.stride_s, "shots": options.shots}


def collection_paths(source: str | Path) -> tuple[int, list[str]]:
    """The files `source` names (a file, a folder, a glob, a CSV): how many it names, and
    each distinct file once (however it is spelled)."""
    one = Path(source)
    items = [Item(str(one))] if one.is_file() and one.suffix.lower() != ".csv" else collect(source)
    return len(items), list({canonical(i.path): i.path for i in items}.values())


def index_collection(
    settings: Settings, source: str | Path, options: TimelineOptions, progress: bool = True
) -> IndexSummary:
    """Index every video of `source` into the library: as many videos at once as there are
    decode workers, each a chunk of windows at a time on the shared model, every chunk
    stored as it comes (`ray_data.index_collection_on_ray`: the same over a cluster)."""
    named, paths = collection_paths(source)
    summary = IndexSummary(videos=named, skipped=named - len(paths))  # a file named twice

    async def go() -> None:
        engine = settings.in_process_engine()
        await engine.start()
        try:
            library = await asyncio.to_thread(open_library, settings, engine.info)
            indexer = Indexer(engine, LibraryOpener.of(library))
            queue: asyncio.Queue = asyncio.Queue()
            for path in paths:
                queue.put_nowait(path)

            async def lane() -> None:
                while not queue.empty():
                    path = Path(queue.get_nowait())
                    state = await index_one(engine, indexer, library, settings, path, options)
                    summary.record(state, str(path), progress)

            await asyncio.gather(*(lane() for _ in range(max(1, settings.decode_workers))))
        finally:
            await engine.stop()

    asyncio.run(go())
    return summary


async def index_one(
    engine: Engine,
    indexer: Indexer,
    library: Library,
    settings: Settings,
    path: Path,
    options: TimelineOptions,
) -> str:
    """One file into the library -> "succeeded", "stored" (there already) or "failed"."""
    video_id = video_id_of(path)
    wanted = _window_options(options)
    row = await asyncio.to_thread(library.video, video_id)
    if row is not None and row.options != wanted:  # other windows: index it again
        await asyncio.to_thread(library.delete_video, video_id)
        row = None
    if row is not None and row.state == "succeeded":
        return "stored"
    if row is None:
        row = VideoRow(video_id, path.name, canonical(path), "queued", time.time(), wanted)
        await asyncio.to_thread(library.add_video, row)
    try:
        if not path.is_file():
            raise FileNotFoundError(2, "No such file or directory", str(path))
        await indexer.index(video_id, path.resolve(), options, engine.decoder,
                            _quiet, settings.max_job_duration_s)  # fmt: skip
    except Exception as err:  # noqa: BLE001 - a file's failure is recorded, not the run's
        failure = as_service_error(err)
        await indexer.finish(video_id, "failed", {"error": failure.kind,
                                                  "detail": failure.message}, None)  # fmt: skip
        return "failed"
    await indexer.finish(video_id, "succeeded", None, None)
    return "succeeded"


async def _quiet(done: int, total: int) -> None:
    return None


def search(
    settings: Settings,
    queries: list[str],
    k: int,
    video: str | None = None,
    min_similarity: float | None = None,
) -> list[dict]:
    """`alt search`: the moments of the library that match each query."""
    backend = create_backend(settings.backend_spec())
    library = open_library(settings, backend.info)
    if video is not None and library.video(video) is None:
        video = video_id_of(video)  # a path rather than an id
        if library.video(video) is None:
            raise NotFound("no such video in the library")
    emb = encode_label_set(backend, queries)
    own = encode_label_set(backend, list(backend.info.default_labels))
    return search_moments(library, backend.info, queries, emb, own, k, video, min_similarity)


def timeline(
    settings: Settings,
    video: str,
    labels: list[str] | None,
    smoothing: float,
    min_similarity: float | None,
    windows: bool,
    top_k: int,
) -> TimelineRecognition:
    """`alt timeline`: a stored video's timeline for a label set (the video named by its
    id or its path), without decoding."""
    t0 = time.perf_counter()
    backend = create_backend(settings.backend_spec())
    library = open_library(settings, backend.info)
    row = library.video(video) or library.video(video_id_of(video))
    if row is None:
        raise NotFound(f"{video} is not in the library at {settings.library}")
    if row.state != "succeeded":
        raise ServiceError(f"{video} is {row.state} in the library; index it first (alt index)")
    label_set = parse_labels(labels, settings.max_labels, settings.max_label_chars)
    label_set = label_set or list(backend.info.default_labels)
    emb = encode_label_set(backend, label_set)
    options = relabel_options(row, smoothing, min_similarity, windows, top_k)
    return stored_timeline(backend.info, row, library.windows(row.id, row.created), label_set, emb, options,
                           time.perf_counter() - t0)  # fmt: skip
