"""What `alt train` is asked to do, and the checks of its data that need no model: light
(no torch), so a wrong recipe, flag or annotation file is a one-line error at once."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from .data import (
    Sample,
    few_shot,
    read_csv,
    read_hmdb51_splits,
    read_ssv2_json,
    read_ucf101_split,
)
from .recipe import apply_overrides, build, find_recipe, flatten, read_recipe

TRAIN_SECTIONS = ("model", "data", "optim", "run")


class CommandError(Exception):
    """A one-line error for the user (`alt train: ...`)."""


def read_samples(kind: str, path: Path, root: Path | None, split: int = 1, subset: str = "train"):
    if not Path(path).exists():
        raise CommandError(f"annotation file not found: {path}")
    try:
        if kind == "csv":
            return read_csv(path)
        if kind == "ucf101":
            return read_ucf101_split(path, root or path.parent)
        if kind == "hmdb51":
            return read_hmdb51_splits(path, root or path.parent, split, subset)
        if kind == "ssv2":
            return read_ssv2_json(path, root or path.parent)
    except (ValueError, KeyError, OSError) as err:
        raise CommandError(str(err)) from None
    raise CommandError(f"unknown annotation format {kind!r} (csv, ucf101, hmdb51, ssv2)")


@dataclass(frozen=True)
class TrainJob:
    """What `alt train` is asked to do: the fields of a recipe, each also a flag."""

    train: Path  # annotation file of the training set
    out: Path  # checkpoint directory
    format: str = "csv"  # csv | ucf101 | hmdb51 | ssv2
    video_root: Path | None = None
    val: Path | None = None  # annotation file of a validation set (same format)
    preset: str = "B/16"
    pretrained: str | None = None
    entities: Path | None = None
    regime: str = "supervised"  # supervised | few-shot
    shots: int | None = None
    frames: int | None = None
    crop_scale: tuple[float, float] = (1.0, 1.0)  # random resized crop's area share
    flip: bool = True  # false for direction-sensitive label sets (Something-Something V2)
    test_views: tuple[int, int] = (1, 1)  # validation: temporal clips x spatial crops
    cache_dir: Path | None = None  # decoded frames on disk (small datasets)
    epochs: int = 10
    batch_size: int = 16  # per process and step
    global_batch: int | None = None  # reached by accumulation: batch x accum x processes
    lr: float = 1e-3  # the head's; the image tower gets lr x backbone_lr_scale
    backbone_lr_scale: float = 0.1
    weight_decay: float = 0.05
    warmup_epochs: float | None = None
    precision: str = "fp32"  # fp32 | bf16 | fp16
    grad_checkpointing: bool = False
    label_map_steps: int = 0
    seed: int = 0
    device: str = "auto"  # auto: cuda when there is one
    workers: int | None = None
    eval_every: int = 1
    save_every_steps: int = 0
    max_steps: int = 0  # stop after N optimizer steps (0: every epoch)
    description: str = ""

    @classmethod
    def resolve(cls, recipe: str | None, sets: list[str], flags: dict,
                data_root: Path | None = None) -> TrainJob:  # fmt: skip
        """The recipe's fields, then `--set` overrides, then the flags given."""
        values: dict = {}
        where = "alt train"
        if recipe:
            path = find_recipe(recipe)
            where = f"recipe {path}"
            values = flatten(read_recipe(path), TRAIN_SECTIONS, where)
        values = apply_overrides(values, sets)
        values.update({k: v for k, v in flags.items() if v is not None})
        base = data_root or Path.cwd()
        return build(cls, values, where, base)


def _present(samples: list[Sample], what: str) -> list[Sample]:
    """The samples whose file exists; a missing one is skipped (and listed), not fatal."""
    if not samples:
        raise CommandError(f"the {what} lists no video")
    present = [s for s in samples if Path(s.path).is_file()]
    if not present:
        raise CommandError(
            f"none of the {len(samples)} videos of the {what} exists, e.g. {samples[0].path}"
        )
    if len(present) < len(samples):
        print(f"alt train: {len(samples) - len(present)} of the {len(samples)} videos of the "
              f"{what} are missing; they are skipped (listed in skipped.txt)", file=sys.stderr)  # fmt: skip
    return present


def check_training_data(job: TrainJob):
    """The training (and validation) samples present, the missing ones, the labels ->
    (present, missing, labels, val_samples); a CommandError names what is wrong."""
    samples = read_samples(job.format, job.train, job.video_root)
    present = _present(samples, f"training set {job.train}")
    kept = set(present)
    missing = {str(s.path): "file not found" for s in samples if s not in kept}
    if job.regime == "few-shot":
        if not job.shots:
            raise CommandError("the few-shot regime needs shots (--shots K)")
        try:
            present = few_shot(present, job.shots, job.seed)
        except ValueError as err:
            raise CommandError(str(err)) from None
    elif job.regime != "supervised":
        raise CommandError(f"regime must be supervised or few-shot, not {job.regime!r}")
    if job.precision not in ("fp32", "bf16", "fp16"):
        raise CommandError(f"precision must be fp32, bf16 or fp16, not {job.precision!r}")
    labels = sorted({s.label for s in present})
    val_samples = None
    if job.val is not None:
        val_samples = _present(read_samples(job.format, job.val, job.video_root, subset="test"),
                               f"validation set {job.val}")  # fmt: skip
        outside = sorted({s.label for s in val_samples} - set(labels))
        if outside:
            raise CommandError(
                f"the validation set has {len(outside)} labels the training set lacks, e.g. "
                f"{outside[0]!r}"
            )
    return present, missing, labels, val_samples
