"""`alt recognize-batch`: the server's answer for every video of a collection, a JSON line
each, in worker processes on this machine or as a Ray Data job (`server.cluster`).

A line is the answer of `POST /recognize` with the file's `path` and `status` (200) added,
or the error body (`error`, `detail`) with the `status` the server would have answered.
The output is appended to and flushed line by line, so an interrupted run keeps what it
finished and the next run with the same output skips those files.
"""

from __future__ import annotations

import asyncio
import csv
import glob
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from media import VideoError, VideoInfo

from . import explain as ex
from .backends import Backend, ClipResult, create_backend
from .engine import LABEL_CHUNK, Engine
from .errors import ServiceError, from_video_error
from .metrics import Metrics
from .schemas import Explain, Recognition
from .settings import Settings

VIDEO_SUFFIXES = frozenset(
    [
        ".mp4",
        ".m4v",
        ".mov",
        ".mkv",
        ".webm",
        ".avi",
        ".gif",
        ".mpg",
        ".mpeg",
        ".ts",
        ".flv",
        ".wmv",
        ".3gp",
        ".ogv",
        ".h264",
    ]
)


class InputError(ValueError):
    """The collection cannot be read (no such folder, an empty glob, a CSV without paths)."""


@dataclass(frozen=True)
class Item:
    path: str
    label: str | None = None  # the true action, when the input says it


def collect(source: str | Path) -> list[Item]:
    """A folder (its videos, recursively), a CSV (`path[,label]`, a header row optional,
    paths relative to the CSV's folder) or a glob pattern."""
    source = str(source)
    path = Path(source)
    if path.is_dir():
        items = [Item(str(p)) for p in sorted(path.rglob("*"))
                 if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES]  # fmt: skip
    elif path.suffix.lower() == ".csv" and path.is_file():
        items = _read_csv(path)
    elif glob.has_magic(source):
        items = [Item(p) for p in sorted(glob.glob(source, recursive=True)) if Path(p).is_file()]
    else:
        raise InputError(f"{source}: not a folder, a CSV file or a glob pattern that exists")
    if not items:
        raise InputError(f"{source}: no videos in it")
    return items


def _read_csv(path: Path) -> list[Item]:
    with path.open(newline="") as f:
        rows = [r for r in csv.reader(f) if r and r[0].strip()]
    if rows and rows[0][0].strip().lower() in ("path", "video", "file"):
        rows = rows[1:]
    items = []
    for row in rows:
        video = Path(row[0].strip())
        video = video if video.is_absolute() else path.parent / video
        label = row[1].strip() if len(row) > 1 and row[1].strip() else None
        items.append(Item(str(video), label))
    return items


def error_line(path: str, err: BaseException) -> dict:
    """The error body the server would have answered for this file."""
    if isinstance(err, VideoError):
        err = from_video_error(err)
    if isinstance(err, ServiceError):
        return {"path": path, "status": err.status, "error": err.kind, "detail": err.message}
    if isinstance(err, OSError):
        return {"path": path, "status": 404, "error": "not_found",
                "detail": f"cannot read the file ({err.strerror or err})"}  # fmt: skip
    return {"path": path, "status": 500, "error": "internal",
            "detail": f"failed on this file ({type(err).__name__}: {err})"}  # fmt: skip


def finished(out: Path) -> dict[str, dict]:
    """Lines already in `out`, by path; a last line cut short by an interruption is
    removed so that appending goes on from a whole line."""
    if not out.exists():
        return {}
    raw = out.read_bytes()
    keep = raw[: raw.rfind(b"\n") + 1]
    if len(keep) != len(raw):
        out.write_bytes(keep)
    done = {}
    for text in keep.decode().splitlines():
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(line, dict) and "path" in line:
            done[line["path"]] = line
    return done


def _same_label(a: str, b: str) -> bool:
    norm = lambda s: " ".join(s.replace("_", " ").lower().split())  # noqa: E731
    return norm(a) == norm(b)


def accuracy(lines: Iterable[dict]) -> dict | None:
    """Top-1 and top-5 over the answered lines that carry a true label; errors counted apart."""
    answered = errors = top1 = top5 = 0
    for line in lines:
        if not line.get("label"):
            continue
        if line.get("status") != 200:
            errors += 1
            continue
        ranked = [a["label"] for a in line["actions"]]
        answered += 1
        top1 += bool(ranked) and _same_label(ranked[0], line["label"])
        top5 += any(_same_label(r, line["label"]) for r in ranked[:5])
    if answered + errors == 0:
        return None
    return {"videos": answered, "errors": errors,
            "top1": 100.0 * top1 / max(answered, 1), "top5": 100.0 * top5 / max(answered, 1)}  # fmt: skip


class LabelledAnswers:
    """Answer lines from model outputs, for one label set (used where no Engine runs)."""

    def __init__(self, backend: Backend, labels: list[str] | None, top_k: int, explain: str):
        self.backend = backend
        self.labels = labels or list(backend.info.default_labels)
        self.top_k, self.explain = top_k, Explain(explain)
        stored = backend.stored_label_embeddings() if labels is None else None
        self.label_emb = stored if stored is not None else np.concatenate(
            [backend.encode_labels(self.labels[i : i + LABEL_CHUNK])
             for i in range(0, len(self.labels), LABEL_CHUNK)]
        )  # fmt: skip

    def line(self, path: str, video: VideoInfo, views: list[ClipResult], timings: dict) -> dict:
        answer = Recognition.model_validate(
            ex.answer(self.backend.info, video, views, self.labels, self.label_emb,
                      self.top_k, self.explain, timings)
        )  # fmt: skip
        return {"path": path, "status": 200, **answer.model_dump(mode="json", exclude_none=True)}


# ---- running -----------------------------------------------------------------------------


async def _local(settings: Settings, items: list[Item], labels, top_k: int, explain: str):
    """Answer lines as they finish: decode workers and the batcher of `alt serve`."""
    engine = Engine.local(create_backend(settings), settings, Metrics())
    await engine.start()
    views = engine.info.clips * engine.info.crops
    lanes = min(
        settings.max_queue, settings.decode_workers + max(1, settings.max_batch_size // views)
    )
    queue: asyncio.Queue[Item] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)
    results: asyncio.Queue[dict | None] = asyncio.Queue()

    async def lane() -> None:
        while not queue.empty():
            item = queue.get_nowait()
            try:
                data = await asyncio.to_thread(Path(item.path).read_bytes)
                answer = await engine.recognize(data, labels, top_k, Explain(explain))
                line = {"path": item.path, "status": 200,
                        **answer.model_dump(mode="json", exclude_none=True)}  # fmt: skip
            except Exception as err:  # noqa: BLE001 - a file's failure is its line, not the run's
                line = error_line(item.path, err)
            if item.label:
                line["label"] = item.label
            await results.put(line)

    async def all_lanes() -> None:
        try:
            await asyncio.gather(*(lane() for _ in range(lanes)))
        finally:
            await results.put(None)

    runner = asyncio.create_task(all_lanes())
    try:
        while (line := await results.get()) is not None:
            yield line
        await runner
    finally:
        runner.cancel()
        await engine.stop()


def _local_lines(settings, items, labels, top_k, explain) -> Iterator[dict]:
    """The async generator above, driven from synchronous code."""
    loop = asyncio.new_event_loop()
    gen = _local(settings, items, labels, top_k, explain)
    try:
        while True:
            try:
                yield loop.run_until_complete(gen.__anext__())
            except StopAsyncIteration:
                return
    finally:
        loop.run_until_complete(gen.aclose())
        loop.close()


def recognize_batch(
    settings: Settings,
    source: str | Path,
    out: Path,
    labels: list[str] | None = None,
    top_k: int = 5,
    explain: str = "entities",
    ray_address: str | None = None,
    use_ray: bool = False,
    decoders: int = 1,
    models: int = 1,
    progress: bool = True,
) -> dict:
    """Answer every video of `source` into `out` (JSON lines); returns a summary with the
    counts and, where the input carries labels, top-1/top-5."""
    from tqdm import tqdm

    items = collect(source)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = finished(out)
    todo = [item for item in items if item.path not in done]
    bar = tqdm(total=len(items), initial=len(items) - len(todo), unit="video",
               disable=not progress, file=sys.stderr, dynamic_ncols=True)  # fmt: skip
    if todo and use_ray:
        from .cluster import recognize_collection

        lines = recognize_collection(
            settings, [(i.path, i.label) for i in todo], labels, top_k, explain,
            address=ray_address, decoders=decoders, models=models,
        )  # fmt: skip
    elif todo:
        lines = _local_lines(settings, todo, labels, top_k, explain)
    else:
        lines = iter(())
    new = 0
    with out.open("a") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")
            f.flush()
            new += 1
            bar.update()
    bar.close()
    all_lines = finished(out)
    summary = {
        "videos": len(items),
        "skipped": len(items) - len(todo),
        "answered": new,
        "errors": sum(1 for i in items if all_lines.get(i.path, {}).get("status", 200) != 200),
    }
    acc = accuracy(all_lines[i.path] for i in items if i.path in all_lines)
    if acc is not None:
        summary["accuracy"] = acc
    return summary
