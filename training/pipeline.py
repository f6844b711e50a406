"""The whole chain behind the shipped default model, from a seed:

world -> tiny CLIP pretraining -> entity corpus -> ALT (fully supervised on seen classes)
-> baseline on the same budget -> zero-shot on held-out classes -> few-shot per K -> report.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from media import write_video
from model import CheckpointError, Entity, build_alt, load_checkpoint, preset, save_checkpoint
from model.corpus import label_entity_targets

from .baseline import ABOUT, TemporalBaseline
from .data import few_shot, read_csv
from .evaluate import alignment_quality, evaluate_views
from .generate import generate_world, render_clip
from .pretrain import ClipPretraining, pretrain_clip
from .train import ALTVideo, TrainConfig
from .trainer import train
from .video_data import Augment, VideoDataset
from .world import ENTITIES, ENTITY_NAMES


@dataclass
class Budget:
    """How much of everything the default build makes and trains."""

    per_class: dict[str, int] = field(
        default_factory=lambda: {"train": 256, "val": 4, "test": 16, "fewshot": 16, "zeroshot": 16}
    )
    clip: ClipPretraining = field(default_factory=ClipPretraining)
    # ALT and the baseline train alike. The tiny CLIP is a weak start (pretrained minutes
    # ago on this world): its image tower learns at 0.3x the head's rate, against 0.1x for
    # real CLIP weights. The region term keeps each region's entity from the masks while the
    # tower learns actions; the label-map stage follows each run (few-shot too).
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            epochs=4, batch_size=16, backbone_lr_scale=0.3, region_weight=1.0,
            label_map_steps=600, label_map_entity_weight=0.05, workers=1, progress=False,
        )
    )  # fmt: skip
    fewshot_steps: int = 60  # optimizer steps per few-shot run, whatever K
    shots: tuple[int, ...] = (2, 4, 8, 16)


QUICK = Budget(
    per_class={"train": 2, "val": 1, "test": 1, "fewshot": 2, "zeroshot": 1},
    clip=ClipPretraining(steps=3, batch_size=16),
    train=TrainConfig(epochs=1, batch_size=8, backbone_lr_scale=0.3, region_weight=1.0,
                      label_map_steps=2, label_map_entity_weight=0.05, workers=1, progress=False),
    fewshot_steps=2, shots=(2,),
)  # fmt: skip


def world_entities() -> list[Entity]:
    return [Entity(name, description, kind) for name, kind, description in ENTITIES]


SAMPLE_ACTIONS = (
    "waving",
    "jumping",
    "kicking a ball",
    "drinking from a cup",
    "lifting a box",
    "sitting on a chair",
)


def write_samples(out: Path, seed: int = 0) -> None:
    """A few fresh clips of the world for the web page (served from <checkpoint>/samples)."""
    folder = Path(out) / "samples"
    folder.mkdir(parents=True, exist_ok=True)
    for i, action in enumerate(SAMPLE_ACTIONS):
        frames, _, _ = render_clip(action, 10_000 + 97 * seed + i)
        write_video(folder / f"{action.replace(' ', '_')}.mp4", frames)


def _models(clip_path: Path, seed: int):
    torch.manual_seed(seed)
    alt, corpus = build_alt(preset("demo"), pretrained=str(clip_path), entities=world_entities())
    torch.manual_seed(seed)
    # The baseline's temporal transformer is its own; it reuses ALT's CLIP and label side only.
    base_alt, _ = build_alt(preset("demo"), pretrained=str(clip_path), entities=world_entities())
    return ALTVideo(alt), TemporalBaseline(base_alt), corpus


def _masks(world: Path, split: str) -> dict[Path, np.ndarray]:
    """A split's entity masks, keyed by clip path as its samples name them."""
    stored = np.load(world / "masks" / f"{split}.npz")
    return {
        world / rel: stored[rel] for rel in tqdm(stored.files, desc=f"{split} masks", unit="clip")
    }


def _dataset(
    world: Path,
    split: str,
    labels,
    train: bool,
    seed: int,
    samples=None,
    masks=None,
    augment: Augment | None = None,
) -> VideoDataset:
    """A split of the world through the one training pipeline; the world's clips are small
    and read many times, so their frames are cached on disk (`<world>/frames`)."""
    samples = samples if samples is not None else read_csv(world / f"{split}.csv")
    config = preset("demo")
    # The world's figures face both ways: mirrored clips are clips of the same action.
    if augment is None:
        augment = Augment(flip=True) if train else Augment()
    return VideoDataset(samples, labels, config.frames, config.image_size, train, seed=seed,
                        augment=augment, masks=masks, cache_dir=world / "frames")  # fmt: skip


def card(kind: str, seed: int, seen: list[str], held: list[str]) -> dict:
    """What a model built here knows: `GET /model` and the web page show it."""
    return {
        "domain": "the generated world of training/ only: "
        f"{len(seen)} seen and {len(held)} held-out actions of drawn stick figures with a "
        "ball, cup, box or chair; it knows nothing of real videos (for real videos: alt init "
        "with real CLIP weights)",
        "pretrained": "CLIP pretrained by training/ on the generated world",
        "label_set": f"the generated world's {len(seen)} seen actions",
        "model": kind,
        "built_by": f"alt build-default --seed {seed}",
    }


def _eval(module, ds: VideoDataset, labels, hits: bool = False) -> dict:
    with torch.no_grad():
        features = module.alt.label_features(labels)
    result = evaluate_views(module, ds, features, hits=hits)
    result.pop("skipped")
    return result


def _check_same_clip(out: Path, alt) -> None:
    """Refuse to train a baseline beside `out` from another CLIP than the one it came from:
    the text tower is frozen in training, so it still holds the pretrained weights."""
    shipped = load_checkpoint(out).model.clip.state_dict()
    ours = alt.clip.state_dict()
    text = [k for k in ours if not k.startswith("visual.") and k != "logit_scale"]
    differ = [k for k in text if not torch.equal(ours[k], shipped[k])]
    if differ:
        raise CheckpointError(
            f"the CLIP here is not the one {out} was trained from ({len(differ)} of "
            f"{len(text)} text-side tensors differ, e.g. {differ[0]}): rebuild both with "
            "alt build-default"
        )


def build_default(
    out: Path,
    work: Path,
    seed: int = 0,
    budget: Budget | None = None,
    log=print,
    baseline_out: Path | None = None,
    baseline_only: bool = False,
) -> dict:
    """Run everything; the ALT checkpoint lands in `out`, the report in `out/report.json`,
    the baseline trained beside it in `baseline_out` (default: `baseline` next to `out`).

    `baseline_only` trains the baseline alone beside the ALT checkpoint already in `out`
    (its report in `baseline_out/report.json`); the CLIP in `work` must be the one that
    checkpoint was trained from, checked on the text side no training changes."""
    budget = budget or Budget()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    work, out = Path(work), Path(out)
    baseline_out = Path(baseline_out) if baseline_out else out.parent / "baseline"
    t0 = time.time()
    world = work / "world"
    if not (world / "world.json").is_file():
        generate_world(world, budget.per_class, seed=seed)
    meta = json.loads((world / "world.json").read_text())
    seen, held = meta["seen"], meta["held_out"]
    cache: dict = {}
    clip_path = work / "clip.pt"
    if not clip_path.is_file():
        pretrain_clip(
            "ALT-demo", world, clip_path, budget.clip, seed=seed, entities=world_entities(),
            entity_templates=preset("demo").entity_templates, cache=cache,
        )  # fmt: skip
    log(f"[{time.time() - t0:.0f}s] CLIP ready")
    alt, base, corpus = _models(clip_path, seed)
    if baseline_only:
        _check_same_clip(out, base.alt)

    dense = budget.train.region_weight > 0
    train_set = _dataset(
        world, "train", seen, True, seed, masks=_masks(world, "train") if dense else None
    )
    test = _dataset(world, "test", seen, False, seed, masks=_masks(world, "test"))
    zeroshot = _dataset(world, "zeroshot", held, False, seed)
    report: dict = {"seed": seed, "budget": asdict(budget), "seen": seen, "held_out": held}

    cfg = replace(budget.train, seed=seed)
    seen_entities = label_entity_targets(seen, corpus.names)
    pairs = (("baseline", base),) if baseline_only else (("alt", alt), ("baseline", base))
    for name, module in pairs:
        with torch.no_grad():
            features = module.alt.label_features(seen)
        train(module, train_set, features, replace(cfg, state_dir=work / f"state-{name}"),
              seen_entities)  # fmt: skip
        report[name] = {
            "seen": _eval(module, test, seen),
            "zero_shot": _eval(module, zeroshot, held),
        }
        log(f"[{time.time() - t0:.0f}s] {name}: {report[name]}")
    baseline_card = card(f"baseline: {ABOUT}", seed, seen, held)
    if baseline_only:
        save_checkpoint(baseline_out, base.alt, corpus, seen, head=base.head(), card=baseline_card)
        report["seconds"] = round(time.time() - t0)
        (baseline_out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
        return report
    report["alt"]["alignment"] = alignment_quality(alt.alt, test, corpus.names, ENTITY_NAMES)
    log(f"[{time.time() - t0:.0f}s] alignment: {report['alt']['alignment']}")

    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, alt.alt, corpus, seen, card=card("ALT", seed, seen, held))
    write_samples(out, seed)
    save_checkpoint(baseline_out, base.alt, corpus, seen, head=base.head(), card=baseline_card)

    pool = read_csv(world / "fewshot.csv")
    pool_masks = _masks(world, "fewshot") if dense else None
    report["few_shot"] = {}
    held_entities = label_entity_targets(held, corpus.names)
    for k in budget.shots:
        fs_alt, fs_base, _ = _models(clip_path, seed)
        subset = _dataset(world, "fewshot", held, True, seed, few_shot(pool, k, seed), pool_masks)
        steps_per_epoch = max(1, len(subset) // cfg.batch_size)
        fs_cfg = replace(cfg, epochs=max(1, budget.fewshot_steps // steps_per_epoch))
        row = {}
        for name, module in (("alt", fs_alt), ("baseline", fs_base)):
            with torch.no_grad():
                features = module.alt.label_features(held)
            train(module, subset, features, fs_cfg, held_entities)
            row[name] = _eval(module, zeroshot, held)
        report["few_shot"][str(k)] = row
        log(f"[{time.time() - t0:.0f}s] few-shot K={k}: {row}")
    report["seconds"] = round(time.time() - t0)
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    shutil.copy(world / "world.json", out / "world.json")
    return report
