"""`alt recognize-batch --ray`: a Ray Data job over a collection. Decoding runs in CPU actors,
each with a one-worker decode pool (the server's decoding, the same isolation); the model
runs in actors that take a GPU each where there is one. Lines are the server's answers.

Ray is optional (`pip install 'alt-serve[cluster]'`); only this module of the package
imports it.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

try:
    import ray
    import ray.data
except ImportError as err:  # pragma: no cover - depends on the install
    raise ImportError("the Ray Data mode needs Ray: pip install 'alt-serve[cluster]'") from err

from media import DecodeJob

from ..engine import Explain, build_answer, create_backend, decode_pool
from ..engine.labels import encode_label_set
from ..engine.timeline import TimelineOptions
from ..library import LibraryOpener
from ..ray_cluster import connect
from ..settings import Settings
from .library import Indexer, IndexSummary, collection_paths, index_one, open_library
from .lines import answer_line, error_line


class _DecodeStage:
    """Paths in, frames (or the file's error line) out."""

    def __init__(self, settings: Settings, job: DecodeJob) -> None:
        self.job = job
        self.pool = decode_pool(settings.decode_limits(), job, workers=1)
        self.loop = asyncio.new_event_loop()
        self.shape = (job.clips * job.crops, job.frames, 3, job.size, job.size)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        frames, videos, errors, decode_ms = [], [], [], []
        for path, label in zip(batch["path"], batch["label"]):
            t0 = time.perf_counter()
            try:
                data = Path(path).read_bytes()
                clip, video = self.loop.run_until_complete(self.pool.decode(data, self.job))
                frames.append(clip)
                videos.append(pickle.dumps(video))
                errors.append("")
            except Exception as err:  # noqa: BLE001 - the file's error is its answer line
                frames.append(np.zeros(self.shape, np.uint8))
                videos.append(b"")
                errors.append(json.dumps(error_line(str(path), err, str(label) or None)))
            decode_ms.append((time.perf_counter() - t0) * 1000)
        return {**batch, "frames": np.stack(frames), "video": np.array(videos, dtype=object),
                "error": np.array(errors, dtype=object), "decode_ms": np.array(decode_ms)}  # fmt: skip


class _ModelStage:
    """Decoded videos in, answer lines out."""

    def __init__(self, settings: Settings, labels, top_k: int, explain: str) -> None:
        self.backend = create_backend(settings.backend_spec())
        self.labels = labels or list(self.backend.info.default_labels)
        self.label_emb = encode_label_set(self.backend, self.labels)
        self.top_k, self.explain = top_k, Explain(explain)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        lines: list[dict] = [{} for _ in batch["path"]]
        ok = [i for i, e in enumerate(batch["error"]) if not e]
        for i, e in enumerate(batch["error"]):
            if e:
                lines[i] = json.loads(e)
        if ok:
            t0 = time.perf_counter()
            frames = batch["frames"][ok]
            views = self.backend.encode_video(
                frames.reshape(-1, *frames.shape[2:]), self.explain == Explain.regions
            )
            seconds = time.perf_counter() - t0
            per = frames.shape[1]
            for n, i in enumerate(ok):
                decode_s = batch["decode_ms"][i] / 1000
                timings = {"decode_s": decode_s, "queue_s": 0.0, "inference_s": seconds,
                           "total_s": decode_s + seconds}  # fmt: skip
                answer = build_answer(
                    self.backend.info, pickle.loads(batch["video"][i]),
                    views[n * per : (n + 1) * per], self.labels, self.label_emb, self.top_k,
                    self.explain, timings,
                )  # fmt: skip
                lines[i] = answer_line(str(batch["path"][i]), answer, str(batch["label"][i]))
        return {"line": np.array([json.dumps(line) for line in lines], dtype=object)}


class _TimelineStage:
    """Paths in, timeline lines out: each actor runs the engine of `alt serve` (a decode
    worker, the model batching a video's windows), one video at a time."""

    def __init__(self, settings: Settings, labels, options: TimelineOptions) -> None:
        self.settings, self.labels, self.options = settings, labels, options
        self.loop = asyncio.new_event_loop()
        self.engine = settings.in_process_engine()
        self.loop.run_until_complete(self.engine.start())

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        lines = []
        for path, file, label in zip(batch["path"], batch["file"], batch["label"]):
            try:
                answer = self.loop.run_until_complete(self.engine.timeline(
                    b"", self.labels, self.options, path=Path(file),
                    max_duration_s=self.settings.max_job_duration_s,
                ))  # fmt: skip
                lines.append(answer_line(str(path), answer, str(label) or None))
            except Exception as err:  # noqa: BLE001 - the file's error is its answer line
                lines.append(error_line(str(path), err, str(label) or None))
        return {"line": np.array([json.dumps(line) for line in lines], dtype=object)}


def answer_lines(
    settings: Settings,
    items: list[tuple[str, str | None]],
    labels: list[str] | None,
    top_k: int,
    explain: str,
    address: str | None = None,
    decoders: int = 1,
    models: int = 1,
    timeline: TimelineOptions | None = None,
) -> Iterator[dict]:
    """Answer lines for `(path, label)` items, as Ray Data produces them. With `timeline`,
    `models` actors each decode and answer whole videos (a timeline per line)."""
    connect(address)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.verbose_stats_logs = False
    if timeline is not None:
        gpus = 1 if settings.device.startswith("cuda") else 0
        ds = ray.data.from_items(
            [{"path": p, "file": str(Path(p).resolve()), "label": lab or ""} for p, lab in items]
        ).map_batches(
            _TimelineStage,
            fn_constructor_kwargs={"settings": settings, "labels": labels, "options": timeline},
            batch_size=1, compute=ray.data.ActorPoolStrategy(size=models),
            num_cpus=1, num_gpus=gpus,
        )  # fmt: skip
        for row in ds.iter_rows():
            yield json.loads(row["line"])
        return
    # Planned from the model's files: the driver does not load the model the actors load.
    shape = settings.clip_shape()
    job = settings.decode_limits().job(shape)
    gpus = 1 if settings.device.startswith("cuda") else 0
    assert settings.max_batch_size is not None
    ds = ray.data.from_items([{"path": p, "label": lab or ""} for p, lab in items])
    ds = ds.map_batches(
        _DecodeStage, fn_constructor_kwargs={"settings": settings, "job": job},
        batch_size=4, compute=ray.data.ActorPoolStrategy(size=decoders), num_cpus=1,
    ).map_batches(
        _ModelStage,
        fn_constructor_kwargs={"settings": settings, "labels": labels, "top_k": top_k,
                               "explain": explain},
        batch_size=max(1, settings.max_batch_size // shape.views),
        compute=ray.data.ActorPoolStrategy(size=models),
        num_cpus=0 if gpus else 1, num_gpus=gpus,
    )  # fmt: skip
    for row in ds.iter_rows():
        yield json.loads(row["line"])


class _IndexStage:
    """Paths in, indexing states out: each actor runs the engine of `alt serve` and appends
    each video's windows to the shared library as they come (`alt index --ray`)."""

    def __init__(self, settings: Settings, options: TimelineOptions) -> None:
        self.settings, self.options = settings, options
        self.loop = asyncio.new_event_loop()
        self.engine = settings.in_process_engine()
        self.loop.run_until_complete(self.engine.start())
        self.library = open_library(settings, self.engine.info)
        self.indexer = Indexer(self.engine, LibraryOpener.of(self.library))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        states = [
            self.loop.run_until_complete(
                index_one(
                    self.engine, self.indexer, self.library, self.settings, Path(file), self.options
                )
            )  # fmt: skip
            for file in batch["file"]
        ]
        return {"path": batch["path"], "state": np.array(states, dtype=object)}


def index_collection_on_ray(
    settings: Settings,
    source: str | Path,
    options: TimelineOptions,
    progress: bool = True,
    address: str | None = None,
    models: int = 1,
) -> IndexSummary:
    """`alt index --ray`: every video of `source` indexed into the settings' library by
    `models` actors, each decoding and embedding whole videos; the library must be one
    they all reach (a shared folder or an object store)."""
    named, paths = collection_paths(source)
    summary = IndexSummary(videos=named, skipped=named - len(paths))
    for path, state in _index_states(settings, paths, options, address, models):
        summary.record(state, path, progress)
    return summary


def _index_states(
    settings: Settings,
    paths: list[str],
    options: TimelineOptions,
    address: str | None,
    models: int,
) -> Iterator[tuple[str, str]]:
    """(path, state) for each file, as the actors finish them."""
    connect(address)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.verbose_stats_logs = False
    gpus = 1 if settings.device.startswith("cuda") else 0
    ds = ray.data.from_items(
        [{"path": p, "file": str(Path(p).resolve())} for p in paths]
    ).map_batches(
        _IndexStage, fn_constructor_kwargs={"settings": settings, "options": options},
        batch_size=1, compute=ray.data.ActorPoolStrategy(size=models), num_cpus=1, num_gpus=gpus,
    )  # fmt: skip
    for row in ds.iter_rows():
        yield str(row["path"]), str(row["state"])
