"""Clip lists from annotation files (ours and real ones) and few-shot subsets. The items
themselves are decoded by `video_data.VideoDataset`."""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str


def read_csv(path: Path) -> list[Sample]:
    """Kinetics-style CSV with a header holding `path` (or `youtube_id`) and `label` columns.

    Relative paths resolve against the CSV's folder; Kinetics' own `youtube_id`,
    `time_start`, `time_end` rows map to `<label>/<id>_<start:06d>_<end:06d>.mp4`.
    """
    path = Path(path)
    samples = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        kinetics = {"label", "youtube_id", "time_start", "time_end"}
        if "label" not in columns or ("path" not in columns and not kinetics <= set(columns)):
            raise ValueError(
                f"{path}: needs the columns path,label (or Kinetics' label,youtube_id,"
                f"time_start,time_end); its header is {','.join(columns) or 'empty'}"
            )
        for row in reader:
            if "path" in row:
                rel = row["path"]
            else:
                rel = f"{row['label']}/{row['youtube_id']}_{int(row['time_start']):06d}_{int(row['time_end']):06d}.mp4"
            samples.append(Sample(path.parent / rel, row["label"]))
    return samples


def humanize(label: str) -> str:
    """A dataset's class name as words: "ApplyEyeMakeup" and "apply_eye_makeup" ->
    "apply eye makeup" (what a text encoder reads)."""
    import re

    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", label.replace("_", " "))
    return " ".join(spaced.lower().split())


def read_ucf101_split(split_file: Path, video_root: Path) -> list[Sample]:
    """UCF-101 `trainlist0N.txt` / `testlist0N.txt`: `Class/v_Class_g08_c01.avi [index]`."""
    samples = []
    for line in Path(split_file).read_text().splitlines():
        if line.strip():
            rel = line.split()[0]
            samples.append(Sample(Path(video_root) / rel, rel.split("/")[0]))
    return samples


def read_hmdb51_splits(
    split_dir: Path, video_root: Path, split: int = 1, subset: str = "train"
) -> list[Sample]:
    """HMDB-51 `<class>_test_split<N>.txt` files: `video.avi 1|2|0` (train | test | unused)."""
    want = {"train": "1", "test": "2"}[subset]
    samples = []
    for f in sorted(Path(split_dir).glob(f"*_test_split{split}.txt")):
        label = f.name[: -len(f"_test_split{split}.txt")]
        for line in f.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == want:
                samples.append(Sample(Path(video_root) / label / parts[0], label))
    return samples


def read_ssv2_json(json_file: Path, video_root: Path) -> list[Sample]:
    """Something-Something-V2: `[{"id", "template": "Putting [something] on [something]"}]`."""
    samples = []
    for item in json.loads(Path(json_file).read_text()):
        label = item["template"].replace("[", "").replace("]", "")
        samples.append(Sample(Path(video_root) / f"{item['id']}.webm", label))
    return samples


def few_shot(samples: Sequence[Sample], k: int, seed: int = 0) -> list[Sample]:
    """K examples per class, chosen with a fixed seed; nested in k for one seed."""
    by_class: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_class[s.label].append(s)
    out = []
    for label in sorted(by_class):
        pool = list(by_class[label])
        random.Random(f"{seed}/{label}").shuffle(pool)
        if len(pool) < k:
            raise ValueError(f"class {label!r} has {len(pool)} samples, fewer than k = {k}")
        out.extend(pool[:k])
    return out
