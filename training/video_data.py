"""The training and evaluation data: each item decodes only its sampled frames, with the
serving decoder, in DataLoader worker processes.

- **Same pixels as serving.** Frames come from `media.decode_clip`: the keyframe-planned
  seeks, the same TSN sampling and the same scaling in libswscale. Without spatial
  augmentation (`crop_scale` (1, 1), no flip) a training clip is bit for bit what the server
  would feed the model for the same sampled frames; a test item is exactly the server's
  views (`views`: temporal clips x spatial crops).
- **Memory independent of the dataset.** Nothing is kept between items. An optional cache
  (`cache_dir`) keeps every decoded frame of a video on disk as a memory-mapped array, for
  small datasets read many times (the generated world); the page cache, not the process,
  holds it.
- **Reproducible and resumable.** An item's randomness (TSN offsets, crop, mirror) is drawn
  from (seed, epoch, index), so it does not depend on which worker decodes it, and
  `EpochSampler` yields an epoch's order from any position: a run resumed mid-epoch sees
  exactly the items the interrupted run would have.
- **Broken videos are skipped**, not fatal: an item that does not decode comes back as a
  `Skipped` with the reason; `collate` drops it and the trainer counts and lists them.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from media import Limits, VideoError, decode_clip, decode_frames, segment_indices

from .data import Sample


@dataclass(frozen=True)
class Augment:
    """Training-time spatial augmentation (MMAction2-style `RandomResizedCrop` and `Flip`)."""

    crop_scale: tuple[float, float] = (1.0, 1.0)  # area share of the crop; (1, 1): none
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # aspect ratio range of the crop
    flip: bool = False  # mirror half the clips (off for direction-sensitive label sets)
    # Temporal jitter: a random frame of every segment (TSN training); off, the segment
    # centres, as at test time.
    jitter: bool = True

    @property
    def crops(self) -> bool:
        return self.crop_scale != (1.0, 1.0)


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


class VideoDataset(Dataset):
    """Items are `(frames uint8 (V, T, 3, S, S), target)` (V = views, 1 in training), with
    the masks of the sampled frames `(T, M, M)` when `masks` are given (the generated world).

    Indexed by `i` or by `(i, epoch)` (what `EpochSampler` yields), since worker processes
    hold their own copy of the dataset and cannot be told the epoch otherwise.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        labels: Sequence[str],
        frames: int,
        size: int,
        train: bool,
        seed: int = 0,
        augment: Augment = Augment(),  # noqa: B008 - frozen
        views: tuple[int, int] = (1, 1),
        masks: Mapping[Path, np.ndarray] | None = None,
        cache_dir: Path | None = None,
        limits: Limits = Limits(max_duration_s=24 * 3600, max_frames=10_000_000),  # noqa: B008
    ) -> None:
        if not samples:
            raise ValueError("the dataset holds no video")
        self.samples = list(samples)
        self.labels = list(labels)
        index = {label: i for i, label in enumerate(self.labels)}
        missing = sorted({s.label for s in self.samples} - set(index))
        if missing:
            raise ValueError(
                f"{len(missing)} labels of the samples are outside the label set, e.g. "
                f"{', '.join(repr(m) for m in missing[:3])}"
            )
        self.targets = [index[s.label] for s in self.samples]
        self.frames, self.size, self.train, self.seed = frames, size, train, seed
        self.augment = augment if train else Augment()
        self.views = (1, 1) if train else views
        if masks is not None:
            if self.augment.crops:
                raise ValueError("entity masks need crop_scale (1, 1): a crop would move them")
            absent = [str(s.path) for s in self.samples if s.path not in masks]
            if absent:
                raise ValueError(f"{len(absent)} clips have no masks, e.g. {absent[0]}")
        self.masks = masks
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.limits = limits

    def __len__(self) -> int:
        return len(self.samples)

    def _rng(self, i: int, epoch: int) -> random.Random | None:
        return random.Random(f"{self.seed}/{epoch}/{i}") if self.train else None

    # The decode size: larger than the model's when a crop will be resized down to it.
    @property
    def decode_size(self) -> int:
        return round(self.size * 256 / 224) if self.augment.crops else self.size

    def __getitem__(self, key: int | tuple[int, int]):
        i, epoch = key if isinstance(key, tuple) else (key, 0)
        sample = self.samples[i]
        rng = self._rng(i, epoch)
        try:
            clip, picked = self._decode(sample.path, rng)
        except (VideoError, OSError) as err:
            return Skipped(str(sample.path), str(err) or type(err).__name__)
        video = torch.from_numpy(clip)  # (V, T, 3, S', S')
        flipped = False
        if rng is not None:
            video, flipped = self._augment(video, rng)
        item = (video, self.targets[i])
        if self.masks is None:
            return item
        mask = self.masks[sample.path][picked]
        if flipped:
            mask = mask[..., ::-1]
        return (*item, torch.from_numpy(np.ascontiguousarray(mask)))

    def _decode(self, path: Path, rng: random.Random | None) -> tuple[np.ndarray, list[int]]:
        clips, crops = self.views
        rng = rng if self.augment.jitter else None
        if self.cache_dir is not None:
            every = self._cached(path)
            n = every.shape[0]
            picks = [segment_indices(n, self.frames, c, clips, rng) for c in range(clips)]
            clip = np.stack([every[p] for p in picks])  # crops from the cache: center only
            if crops > 1:
                raise ValueError("the frame cache holds center crops only; use views (N, 1)")
            return clip, picks[0]
        clip, info = decode_clip(
            path, self.frames, self.decode_size, clips, crops, self.limits, rng=rng, threads=1
        )
        return clip, list(info.sampled[0])

    def _cached(self, path: Path) -> np.ndarray:
        """Every frame of `path` at the decode size, from the disk cache (made on first use,
        atomically, so concurrent workers never read half a file)."""
        assert self.cache_dir is not None
        st = os.stat(path)
        key = hashlib.sha1(f"{Path(path).resolve()}|{st.st_size}|{st.st_mtime_ns}|{self.decode_size}"
                           .encode()).hexdigest()  # fmt: skip
        file = self.cache_dir / f"{key}.npy"
        if not file.is_file():
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            frames = decode_frames(path, self.decode_size, self.limits)
            tmp = file.with_suffix(f".{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                np.save(f, frames)
            os.replace(tmp, file)
        return np.load(file, mmap_mode="r")

    def _augment(self, video: torch.Tensor, rng: random.Random) -> tuple[torch.Tensor, bool]:
        """A random resized crop, then a mirror with probability 1/2 -> (video, mirrored)."""
        if self.augment.crops:
            side = video.shape[-1]
            y, x, h, w = _crop_box(side, self.augment.crop_scale, self.augment.crop_ratio, rng)
            v, t = video.shape[:2]
            part = video[..., y : y + h, x : x + w].reshape(v * t, 3, h, w).float()
            video = (
                F.interpolate(
                    part,
                    size=(self.size, self.size),
                    mode="bilinear",
                    antialias=True,
                    align_corners=False,
                )  # fmt: skip
                .round_()
                .clamp_(0, 255)
                .to(torch.uint8)
                .reshape(v, t, 3, self.size, self.size)
            )
        if self.augment.flip and rng.random() < 0.5:
            return video.flip(-1), True
        return video, False


def _crop_box(side: int, scale, ratio, rng: random.Random) -> tuple[int, int, int, int]:
    """A random crop of the square image: area share in `scale`, aspect ratio in `ratio`
    (log-uniform), as `RandomResizedCrop` draws it; the whole image after 10 misses."""
    area = side * side
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= side and 0 < h <= side:
            return rng.randint(0, side - h), rng.randint(0, side - w), h, w
    return 0, 0, side, side


def collate(items: list) -> tuple[list, list[Skipped]]:
    """A batch of the items that decoded (stacked), and the ones that did not."""
    good = [it for it in items if not isinstance(it, Skipped)]
    skipped = [it for it in items if isinstance(it, Skipped)]
    if not good:
        return [], skipped
    columns = list(zip(*good))
    batch = [torch.stack(columns[0]), torch.tensor(columns[1])]
    batch += [torch.stack(c) for c in columns[2:]]
    return batch, skipped


class EpochSampler(Sampler):
    """An epoch's order (a permutation seeded by seed and epoch), this rank's share of it
    (DDP: every `world`-th item, padded to equal shares), from item `start` on. Yields
    `(index, epoch)`."""

    def __init__(
        self, n: int, seed: int, shuffle: bool = True, rank: int = 0, world: int = 1
    ) -> None:
        self.n, self.seed, self.shuffle, self.rank, self.world = n, seed, shuffle, rank, world
        self.epoch, self.start = 0, 0

    def set(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def order(self) -> list[int]:
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.n, generator=gen).tolist()
        else:
            order = list(range(self.n))
        share = math.ceil(self.n / self.world)
        order += order[: share * self.world - self.n]  # pad: every rank takes as many steps
        return order[self.rank :: self.world]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for i in self.order()[self.start :]:
            yield i, self.epoch

    def __len__(self) -> int:
        return len(self.order()) - self.start


def loader_workers(requested: int | None = None) -> int:
    """Decode processes for a DataLoader: as asked, else the cores this process may use,
    one left for the training loop (at least 1)."""
    if requested is not None:
        return max(0, requested)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, cores - 1)
