"""What an offline job answers: the videos of a folder, a CSV or a glob pattern."""

from __future__ import annotations

import csv
import glob
from dataclasses import dataclass
from pathlib import Path

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
