"""An offline job's output: one JSON line per video, built here and only here.

A line is the answer of `POST /recognize` with the file's `path` and `status` (200) added,
or the error body (`error`, `detail`) with the `status` the server would have answered.
The output is appended to and flushed line by line, so an interrupted run keeps what it
finished and the next run with the same output skips those files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel

from ..engine import as_service_error


def answer_line(path: str, answer: BaseModel, label: str | None = None) -> dict:
    """`answer`: a `Recognition`, or a `TimelineRecognition` (`--timeline`)."""
    line = {"path": path, "status": 200, **answer.model_dump(mode="json", exclude_none=True)}
    return _labelled(line, label)


def error_line(path: str, err: BaseException, label: str | None = None) -> dict:
    """The error body the server would have answered for this file."""
    e = as_service_error(err)
    return _labelled(
        {"path": path, "status": e.status, "error": e.kind, "detail": e.message}, label
    )


def _labelled(line: dict, label: str | None) -> dict:
    if label:
        line["label"] = label
    return line


def canonical(path: str) -> str:
    """A video's identity for resuming: absolute, symlinks followed, so `clips/a.mp4`,
    `./clips/a.mp4` and `/data/clips/a.mp4` are the same video."""
    return os.path.realpath(path)


def finished(out: Path) -> dict[str, dict]:
    """Lines already in `out`, by canonical path (`canonical`); a last line cut short by an
    interruption is removed so that appending goes on from a whole line."""
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
            done[canonical(line["path"])] = line
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
