"""`alt train` and `alt evaluate` on any annotation file (ours or a real dataset's), from
flags or from a recipe (`recipe.py`, shipped ones in `recipes/`)."""

from __future__ import annotations

import json
import logging
import math
import os
import statistics
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from model import build_alt, load_checkpoint, preset, save_checkpoint
from model.corpus import (
    BODY_PARTS,
    Entity,
    entities_from_labels,
    label_entity_targets,
    merge_entities,
    read_entity_file,
)

from .data import (
    Sample,
    humanize,
)
from .evaluate import alignment_quality, evaluate_views
from .jobs import CommandError, TrainJob, _present, check_training_data, read_samples
from .recipe import RecipeError, apply_overrides, build, find_recipe, flatten, read_recipe
from .train import ALTVideo, TrainConfig
from .trainer import train
from .video_data import Augment, VideoDataset

log = logging.getLogger(__name__)
__all__ = ["CommandError", "EvalJob", "EvalSet", "TrainJob", "evaluate_command", "train_command"]


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def train_command(job: TrainJob, checked: tuple | None = None) -> dict:
    """`checked`: what `check_training_data(job)` returned, when the caller ran it."""
    present, missing, labels, val_samples = checked or check_training_data(job)
    entities = read_entity_file(job.entities) if job.entities else []
    entities = merge_entities(
        entities, entities_from_labels(labels), [Entity(p, kind="body part") for p in BODY_PARTS]
    )
    try:
        config = preset(job.preset)
    except (KeyError, ValueError) as err:
        raise CommandError(str(err)) from None
    if job.label_map_steps and not config.label_proj:
        raise CommandError(f"label_map_steps needs a preset with a label map, not {job.preset}")
    if job.frames:
        config = config.replace(frames=job.frames)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    accum = 1
    if job.global_batch:
        accum = max(1, math.ceil(job.global_batch / (job.batch_size * world)))
    torch.manual_seed(job.seed)
    alt, corpus = build_alt(config, pretrained=job.pretrained, entities=entities)
    dataset = VideoDataset(
        present, labels, config.frames, config.image_size, train=True, seed=job.seed,
        augment=Augment(crop_scale=job.crop_scale, flip=job.flip), cache_dir=job.cache_dir,
    )  # fmt: skip
    val = None
    if val_samples:
        val = VideoDataset(val_samples, labels, config.frames, config.image_size, train=False,
                           views=job.test_views, cache_dir=job.cache_dir)  # fmt: skip
    with torch.no_grad():
        features = alt.label_features(labels)
    out = Path(job.out)
    cfg = TrainConfig(
        epochs=job.epochs, batch_size=job.batch_size, lr=job.lr,
        backbone_lr_scale=job.backbone_lr_scale, weight_decay=job.weight_decay,
        warmup_epochs=job.warmup_epochs, seed=job.seed, device=_device(job.device),
        precision=job.precision, accum_steps=accum, grad_checkpointing=job.grad_checkpointing,
        workers=job.workers, eval_every=job.eval_every, save_every_steps=job.save_every_steps,
        max_steps=job.max_steps,
        label_map_steps=job.label_map_steps, state_dir=out / "train_state",
        log_dir=out / "tensorboard",
    )  # fmt: skip
    named = label_entity_targets(labels, corpus.names)

    def save(kind: str) -> None:
        save_checkpoint(out / "best" if kind == "best" else out, alt, corpus, labels)

    try:
        report = train(ALTVideo(alt), dataset, features, cfg, named, val, save)
    except ValueError as err:  # a bad combination of settings (fp16 on a CPU, ...)
        raise CommandError(str(err)) from None
    if torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        return {}
    save_checkpoint(out, alt, corpus, labels)
    skipped = {**missing, **report.skipped}
    if skipped:
        (out / "skipped.txt").write_text(
            "".join(f"{path}\t{why}\n" for path, why in sorted(skipped.items()))
        )
        print(f"alt train: {len(skipped)} videos skipped (did not decode or are missing): "
              f"{out / 'skipped.txt'}", file=sys.stderr)  # fmt: skip
    summary = {
        "regime": job.regime,
        "clips": len(present),
        "classes": len(labels),
        "labels_naming_entities": int((named.sum(dim=-1) > 0).sum()),
        "label_map_steps": job.label_map_steps,
        "global_batch": job.batch_size * accum * world,
        "accum_steps": accum,
        "precision": job.precision,
        "loss": report.history,
        "validation": report.validation,
        "best": report.best,
        "skipped": len(skipped),
        "steps": report.steps,
        "stopped_early": report.stopped_early,
        "first_batch_s": report.first_batch_s,
        "first_step_s": report.first_step_s,
        "job": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(job).items()},
    }
    (out / "training.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


# ---- evaluation --------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalSet:
    """One target dataset of an evaluation recipe, over one or more splits."""

    name: str
    format: str
    tests: list[Path]  # annotation file (or HMDB-51's split folder) of each split
    video_root: Path | None = None
    splits: list[int] = field(default_factory=list)  # HMDB-51: the split numbers
    humanize: bool = True  # class names as words ("ApplyEyeMakeup" -> "apply eye makeup")


@dataclass(frozen=True)
class EvalJob:
    checkpoint: Path
    sets: list[dict]
    views: tuple[int, int] = (1, 1)
    labels_from_test: bool = True
    workers: int | None = 0
    description: str = ""


def video_module(bundle):
    """What scores videos: ALT, or the comparison baseline a checkpoint holds."""
    if bundle.head is None:
        return ALTVideo(bundle.model)
    if bundle.head.get("kind") != "baseline":
        raise CommandError(f"unknown model kind {bundle.head.get('kind')!r} in the checkpoint")
    from .baseline import TemporalBaseline

    return TemporalBaseline.from_bundle(bundle)


def _evaluate_samples(bundle, samples: list[Sample], labels: list[str], views, workers,
                      label_text=None) -> dict:  # fmt: skip
    alt = bundle.model
    cfg = alt.config
    dataset = VideoDataset(samples, labels, cfg.frames, cfg.image_size, train=False, views=views)
    with torch.no_grad():
        features = alt.label_features(label_text or labels)
    return evaluate_views(video_module(bundle), dataset, features, workers=workers or 0)


def evaluate_command(args) -> dict:
    if getattr(args, "recipe", None):
        return evaluate_recipe(args)
    if args.checkpoint is None or args.test is None:
        raise CommandError("give a checkpoint and --test FILE, or --recipe FILE")
    bundle = load_checkpoint(args.checkpoint, with_head=True)
    alt = bundle.model
    if args.masks and bundle.head is not None:
        raise CommandError("--masks scores ALT's alignment; this checkpoint holds a "
                           f"{bundle.head.get('kind')}, which aligns nothing")  # fmt: skip
    samples = _present(read_samples(args.format, args.test, args.video_root, args.split, "test"),
                       f"test set {args.test}")  # fmt: skip
    labels = sorted({s.label for s in samples}) if args.labels_from_test else list(bundle.labels)
    outside = sorted({s.label for s in samples} - set(labels))
    if outside:
        raise CommandError(
            f"the test set has {len(outside)} labels outside the checkpoint's label set, e.g. "
            f"{outside[0]!r} (--labels-from-test scores against the test set's own labels)"
        )
    views = tuple(args.views)
    result = _evaluate_samples(bundle, samples, labels, views, args.workers)
    result["views"] = list(views)
    result["model"] = bundle.head.get("kind") if bundle.head else "alt"
    if args.masks:
        world = Path(args.masks).parent.parent
        names = json.loads((world / "world.json").read_text())["entities"]
        stored = np.load(args.masks)
        masks = {world / rel: stored[rel] for rel in stored.files}
        cfg = alt.config
        dataset = VideoDataset(samples, labels, cfg.frames, cfg.image_size, train=False,
                               masks=masks)  # fmt: skip
        result.update(alignment_quality(alt, dataset, bundle.corpus.names, names))
    return result


def evaluate_recipe(args) -> dict:
    path = find_recipe(args.recipe)
    where = f"recipe {path}"
    values = flatten(read_recipe(path), ("evaluate",), where)
    values = apply_overrides(values, args.set or [])
    if args.checkpoint is not None:
        values["checkpoint"] = str(args.checkpoint)
    base = args.data_root or Path.cwd()
    job = build(EvalJob, values, where, base)
    bundle = load_checkpoint(job.checkpoint, with_head=True)
    out: dict = {"checkpoint": str(job.checkpoint), "views": list(job.views), "sets": {}}
    for i, raw in enumerate(job.sets):
        ev = build(EvalSet, raw, f"{where}: sets[{i}]", base)
        splits = ev.splits or [1] * len(ev.tests)
        if len(splits) != len(ev.tests):
            raise RecipeError(f"{where}: sets[{i}] has {len(ev.tests)} tests but "
                              f"{len(splits)} splits")  # fmt: skip
        runs = []
        for test, split in zip(ev.tests, splits):
            samples = _present(read_samples(ev.format, test, ev.video_root, split, "test"),
                               f"{ev.name} split {split} ({test})")  # fmt: skip
            labels = sorted({s.label for s in samples})
            text = [humanize(label) for label in labels] if ev.humanize else labels
            result = _evaluate_samples(bundle, samples, labels, job.views, job.workers, text)
            result["test"] = str(test)
            runs.append(result)
        top1 = [r["top1"] for r in runs]
        out["sets"][ev.name] = {
            "splits": runs,
            "top1_mean": statistics.mean(top1),
            "top1_std": statistics.pstdev(top1) if len(top1) > 1 else 0.0,
            "top5_mean": statistics.mean(r["top5"] for r in runs),
        }
    return out
