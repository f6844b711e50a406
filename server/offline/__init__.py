"""Offline jobs: `alt recognize` for one file and `alt recognize-batch` for a collection
(a folder, a CSV, a glob), answered by the engine in local worker processes or as a Ray
Data job (`ray_data`, the only module here that imports Ray). A collection's output is a
JSON-lines file (`lines`), resumable.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..engine.timeline import TimelineOptions
from ..settings import Settings
from .collection import InputError, Item, collect
from .lines import accuracy, canonical, finished
from .local import answer_lines, recognize_file

__all__ = ["InputError", "Item", "collect", "recognize_batch", "recognize_file"]


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
    timeline: TimelineOptions | None = None,
) -> dict:
    """Answer every video of `source` into `out` (JSON lines); returns a summary with the
    counts and, where the input carries labels, top-1/top-5."""
    from tqdm import tqdm

    items = collect(source)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = finished(out)
    keys = [canonical(item.path) for item in items]  # one answer per video, however spelled
    todo, seen = [], set(done)
    for item, key in zip(items, keys):
        if key not in seen:
            seen.add(key)
            todo.append(item)
    bar = tqdm(total=len(items), initial=len(items) - len(todo), unit="video",
               disable=not progress, file=sys.stderr, dynamic_ncols=True)  # fmt: skip
    if todo and use_ray:
        from .ray_data import answer_lines as ray_answer_lines

        lines = ray_answer_lines(
            settings, [(i.path, i.label) for i in todo], labels, top_k, explain,
            address=ray_address, decoders=decoders, models=models, timeline=timeline,
        )  # fmt: skip
    elif todo:
        lines = answer_lines(settings, todo, labels, top_k, explain, timeline)
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
    mine = [all_lines[key] for key in set(keys) if key in all_lines]
    summary = {
        "videos": len(items),
        "skipped": len(items) - len(todo),
        "answered": new,
        "errors": sum(1 for line in mine if line.get("status", 200) != 200),
    }
    acc = accuracy(mine)
    if acc is not None:
        summary["accuracy"] = acc
    return summary
