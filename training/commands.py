"""`alt train` and `alt evaluate` on any annotation file (ours or a real dataset's)."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
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
    ClipDataset,
    few_shot,
    read_csv,
    read_hmdb51_splits,
    read_ssv2_json,
    read_ucf101_split,
)
from .evaluate import accuracy, alignment_quality, embed
from .train import ALTVideo, TrainConfig, fit


def read_samples(kind: str, path: Path, root: Path | None, split: int = 1, subset: str = "train"):
    if kind == "csv":
        return read_csv(path)
    if kind == "ucf101":
        return read_ucf101_split(path, root or path.parent)
    if kind == "hmdb51":
        return read_hmdb51_splits(path, root or path.parent, split, subset)
    if kind == "ssv2":
        return read_ssv2_json(path, root or path.parent)
    raise ValueError(f"unknown annotation format {kind!r}")


@dataclass(frozen=True)
class TrainJob:
    """What `alt train` is asked to do."""

    train: Path  # annotation file
    out: Path  # checkpoint directory
    format: str = "csv"  # csv | ucf101 | hmdb51 | ssv2
    video_root: Path | None = None
    preset: str = "B/16"
    pretrained: str | None = None
    entities: Path | None = None
    regime: str = "supervised"  # supervised | few-shot
    shots: int | None = None
    frames: int | None = None
    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-3
    label_map_steps: int = 0
    seed: int = 0

    @classmethod
    def from_args(cls, args) -> TrainJob:
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})


def train_command(args: TrainJob) -> dict:
    if not Path(args.train).is_file():
        raise SystemExit(f"alt train: annotation file not found: {args.train}")
    samples = read_samples(args.format, args.train, args.video_root)
    missing = [s.path for s in samples if not Path(s.path).is_file()]
    if missing:
        raise SystemExit(
            f"alt train: {len(missing)} of the {len(samples)} videos listed in {args.train} "
            f"are missing, e.g. {missing[0]}"
        )
    if args.regime == "few-shot":
        if not args.shots:
            raise SystemExit("alt train: the few-shot regime needs --shots K")
        samples = few_shot(samples, args.shots, args.seed)
    labels = sorted({s.label for s in samples})
    entities = read_entity_file(args.entities) if args.entities else []
    entities = merge_entities(
        entities, entities_from_labels(labels), [Entity(p, kind="body part") for p in BODY_PARTS]
    )
    config = preset(args.preset)
    if args.label_map_steps and not config.label_proj:
        raise SystemExit(
            f"alt train: --label-map-steps needs a preset with a label map, not {args.preset}"
        )
    if args.frames:
        config = config.replace(frames=args.frames)
    torch.manual_seed(args.seed)
    alt, corpus = build_alt(config, pretrained=args.pretrained, entities=entities)
    dataset = ClipDataset(
        samples, labels, config.frames, config.image_size, train=True, seed=args.seed
    )
    with torch.no_grad():
        features = alt.label_features(labels)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                      label_map_steps=args.label_map_steps, state_dir=Path(args.out) / "train_state")  # fmt: skip
    named = label_entity_targets(labels, corpus.names)
    history = fit(ALTVideo(alt), dataset, features, cfg, named)
    if torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        return {}
    save_checkpoint(Path(args.out), alt, corpus, labels)
    summary = {
        "regime": args.regime,
        "clips": len(samples),
        "classes": len(labels),
        "labels_naming_entities": int((named.sum(dim=-1) > 0).sum()),
        "label_map_steps": args.label_map_steps,
        "loss": history,
    }
    (Path(args.out) / "training.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def evaluate_command(args) -> dict:
    bundle = load_checkpoint(args.checkpoint)
    alt = bundle.model
    samples = read_samples(args.format, args.test, args.video_root, args.split, "test")
    labels = sorted({s.label for s in samples}) if args.labels_from_test else bundle.labels
    cfg = alt.config
    dataset = ClipDataset(samples, labels, cfg.frames, cfg.image_size, train=False)
    module = ALTVideo(alt)
    with torch.no_grad():
        result = accuracy(*embed(module, dataset), alt.encode_labels(labels))
    if args.masks:
        world = Path(args.masks).parent.parent
        names = json.loads((world / "world.json").read_text())["entities"]
        result.update(
            alignment_quality(
                alt, dataset, dict(np.load(args.masks)), world, bundle.corpus.names, names
            )
        )
    return result
