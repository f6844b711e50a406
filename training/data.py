"""Datasets: clip lists from annotation files (ours and real ones), cached decoded frames,
TSN sampling identical to serving, few-shot subsets."""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from media import decode_frames, segment_indices


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
        for row in csv.DictReader(f):
            if "path" in row:
                rel = row["path"]
            else:
                rel = f"{row['label']}/{row['youtube_id']}_{int(row['time_start']):06d}_{int(row['time_end']):06d}.mp4"
            samples.append(Sample(path.parent / rel, row["label"]))
    return samples


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


class ClipDataset(Dataset):
    """uint8 clips `(T, 3, S, S)` with label indices; frames are decoded once and cached.

    With `masks` (a clip's path -> its entity masks `(N, M, M)`, one per decoded frame, as the
    generated world writes them), items also carry the masks of the sampled frames `(T, M, M)`.
    """

    def __init__(self, samples: Sequence[Sample], labels: Sequence[str], frames: int, size: int,
                 train: bool, seed: int = 0, cache: dict | None = None, progress: bool = True,
                 masks: Mapping[Path, np.ndarray] | None = None) -> None:  # fmt: skip
        self.samples = list(samples)
        self.labels = list(labels)
        index = {label: i for i, label in enumerate(self.labels)}
        missing = sorted({s.label for s in self.samples} - set(index))
        if missing:
            raise ValueError(f"samples have labels outside the label set: {missing[:5]}")
        self.targets = [index[s.label] for s in self.samples]
        self.frames, self.size, self.train = frames, size, train
        self.rng = random.Random(seed)
        self.masks = masks
        if masks is not None:
            missing = [str(s.path) for s in self.samples if s.path not in masks]
            if missing:
                raise ValueError(f"{len(missing)} clips have no masks, e.g. {missing[0]}")
        self.cache = {} if cache is None else cache
        todo = [s.path for s in self.samples if (s.path, size) not in self.cache]
        for path in tqdm(todo, desc="decode", unit="clip", disable=not progress or not todo):
            self.cache[(path, size)] = torch.from_numpy(decode_frames(path, size))

    def __len__(self) -> int:
        return len(self.samples)

    def indices(self, i: int) -> list[int]:
        n = self.cache[(self.samples[i].path, self.size)].shape[0]
        return segment_indices(n, self.frames, rng=self.rng if self.train else None)

    def __getitem__(self, i: int) -> tuple:
        path = self.samples[i].path
        picked = self.indices(i)
        item = (self.cache[(path, self.size)][picked], self.targets[i])
        if self.masks is None:
            return item
        return (*item, torch.from_numpy(self.masks[path][picked]))
