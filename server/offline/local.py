"""Offline answers on this machine: the engine of `alt serve` (decode worker processes, the
batcher) driven by a program instead of HTTP requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from ..engine import Engine, Explain
from ..engine.labels import parse_labels
from ..engine.timeline import TimelineOptions
from ..settings import Settings
from .collection import Item
from .lines import answer_line, error_line


def recognize_file(
    settings: Settings,
    video: Path,
    labels: list[str] | None,
    top_k: int,
    explain: str,
    timeline: TimelineOptions | None = None,
) -> dict:
    """`alt recognize`: the server's answer for one file, without a server; with
    `timeline`, the answer of a job (no request deadline, the jobs' duration limit)."""
    label_set = parse_labels(labels, settings.max_labels, settings.max_label_chars)

    async def go() -> dict:
        engine = settings.in_process_engine()
        await engine.start()
        try:
            answer = await _answer(engine, settings, Path(video), label_set, top_k, explain,
                                   timeline)  # fmt: skip
            return answer.model_dump(mode="json", exclude_none=True)
        finally:
            await engine.stop()

    return asyncio.run(go())


async def _answer(engine: Engine, settings: Settings, path: Path, labels, top_k, explain, timeline):
    if timeline is not None:
        # The file is read by the decode worker itself: a long video never enters memory.
        if not path.is_file():
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return await engine.timeline(
            b"", labels, timeline, path=path.resolve(), max_duration_s=settings.max_job_duration_s
        )
    data = await asyncio.to_thread(path.read_bytes)
    return await engine.recognize(data, labels, top_k, Explain(explain))


async def _answer_lines(
    settings: Settings,
    items: list[Item],
    labels: list[str] | None,
    top_k: int,
    explain: str,
    timeline: TimelineOptions | None = None,
) -> AsyncIterator[dict]:
    """Answer lines as they finish. Enough lanes run at once to keep every decode worker
    and the model's batches full, within the engine's bounds."""
    engine = settings.in_process_engine()
    await engine.start()
    views = engine.info.clip_shape.views
    assert settings.max_batch_size is not None
    lanes = min(
        settings.max_batch_queue,
        settings.decode_workers + max(1, settings.max_batch_size // views),
    )
    queue: asyncio.Queue[Item] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)
    results: asyncio.Queue[dict | None] = asyncio.Queue()

    async def lane() -> None:
        while not queue.empty():
            item = queue.get_nowait()
            try:
                answer = await _answer(engine, settings, Path(item.path), labels, top_k, explain,
                                       timeline)  # fmt: skip
                line = answer_line(item.path, answer, item.label)
            except Exception as err:  # noqa: BLE001 - a file's failure is its line, not the run's
                line = error_line(item.path, err, item.label)
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


def answer_lines(
    settings: Settings,
    items: list[Item],
    labels: list[str] | None,
    top_k: int,
    explain: str,
    timeline: TimelineOptions | None = None,
) -> Iterator[dict]:
    """The lines of `items` in the order they finish, for synchronous callers."""
    loop = asyncio.new_event_loop()
    gen = _answer_lines(settings, items, labels, top_k, explain, timeline)
    try:
        while True:
            try:
                yield loop.run_until_complete(gen.__anext__())
            except StopAsyncIteration:
                return
    finally:
        loop.run_until_complete(gen.aclose())
        loop.close()
