"""Tiny CLIP pretraining on still frames of the world and their captions (contrastive), with
an optional dense term that teaches each patch the entity under it (from the world's masks)."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from media import decode_frames
from model.clip import create_clip, pixel_stats, tokenizer
from model.corpus import Entity, entity_prompts, pool_prompts
from model.vit import region_forward

from .data import read_csv
from .schedule import load_state, save_state, warmup_cosine


@dataclass(frozen=True)
class ClipPretraining:
    """How CLIP learns the world from its frames and captions."""

    steps: int = 1500
    batch_size: int = 128  # frames per step
    lr: float = 1e-3
    frames_per_clip: int = 2  # frames of one clip in a batch (see `pretrain_clip`)
    # Weight of the dense term (with entities): each patch learns the entity under it.
    region_weight: float = 1.0
    state_every: int = 100  # steps between resumable states


def frame_caption_pairs(
    world: Path, split: str, size: int, cache: dict, with_masks: bool = False
) -> tuple[list[Tensor], list[str], list[list[int]], Tensor | None]:
    """Every other frame of every clip with its caption (frames normalized later), the
    indices of each clip's frames and, `with_masks`, each frame's entity mask `(N, M, M)`."""
    samples = read_csv(world / f"{split}.csv")
    captions = json.loads((world / "captions" / f"{split}.json").read_text())
    masks = np.load(world / "masks" / f"{split}.npz") if with_masks else None
    images, texts, clips, frame_masks = [], [], [], []
    for s in samples:
        if (s.path, size) not in cache:  # every frame: this is image-text pretraining
            cache[(s.path, size)] = torch.from_numpy(decode_frames(s.path, size))
        frames = cache[(s.path, size)]
        rel = str(s.path.relative_to(world))
        caps = captions[rel]
        clip_masks = masks[rel] if masks is not None else None
        clips.append([])
        for t in range(0, frames.shape[0], 2):
            clips[-1].append(len(images))
            images.append(frames[t])
            texts.append(caps[t])
            if clip_masks is not None:
                frame_masks.append(clip_masks[t])
    stacked = torch.from_numpy(np.stack(frame_masks)) if frame_masks else None
    return images, texts, clips, stacked


def patch_entity_targets(masks: Tensor, grid: tuple[int, int], entities: int) -> Tensor:
    """Entity masks `(N, M, M)` (0 = no entity, else 1-based entity id) -> `(N, P, E)`: the
    share of each patch's mask cells that each entity holds (all zero where none does)."""
    n, m, _ = masks.shape
    gh, gw = grid
    cells = masks.long().reshape(n, gh, m // gh, gw, m // gw).permute(0, 1, 3, 2, 4)
    cells = cells.reshape(n, gh * gw, -1)  # (N, P, cells per patch)
    counts = F.one_hot(cells, entities + 1).sum(dim=2)[..., 1:].float()  # (N, P, E)
    return counts / counts.sum(dim=-1, keepdim=True).clamp(min=1)


def region_loss(patches: Tensor, entity_emb: Tensor, targets: Tensor, scale: Tensor) -> Tensor:
    """Cross-entropy of patch-to-entity similarities against the patches' entity shares;
    patches that show no entity do not count. `patches` `(N, P, D)`, `entity_emb` `(E, D)`,
    both normalized; `targets` `(N, P, E)`."""
    keep = targets.sum(dim=-1) > 0
    logits = scale * patches[keep] @ entity_emb.t()
    return F.cross_entropy(logits, targets[keep])


def pretrain_clip(
    arch: str,
    world: Path,
    out: Path,
    cfg: ClipPretraining = ClipPretraining(),  # noqa: B008 - frozen
    seed: int = 0,
    entities: Sequence[Entity] = (),
    entity_templates: Sequence[str] = ("{}",),
    cache: dict | None = None,
) -> Path:
    """Train `arch` from scratch; writes an open_clip state dict to `out` and returns it.

    A batch holds `cfg.frames_per_clip` frames of each of `batch_size // frames_per_clip` clips:
    frames of one clip share figure, colors and scene, so telling them apart from their
    captions takes the posture. With one frame per clip, colors and scene alone would do.

    With `entities` (the world's, in the order of its mask ids), each patch's embedding is
    also pulled toward the corpus embedding of the entities under it (`cfg.region_weight`), with
    the prompts the corpus builder uses: CLIP's contrastive loss alone leaves patch tokens
    unaligned with text, and ALT aligns regions to entities by exactly that similarity.

    Every `cfg.state_every` steps the whole state (weights, optimizer, schedule, sampler) goes to
    `<out>.state`; a run started again with the same arguments resumes there and ends with
    the same weights as an uninterrupted one. The state file is removed when training ends.
    """
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = create_clip(arch)
    size = model.visual.image_size[0]
    dense = bool(entities) and cfg.region_weight > 0
    images, texts, clips, masks = frame_caption_pairs(
        Path(world), "train", size, {} if cache is None else cache, with_masks=dense
    )
    plan = [0] * len(model.visual.transformer.resblocks)
    prompts = [entity_prompts(e, entity_templates) for e in entities]
    prompt_tokens = tokenizer(arch)([p for group in prompts for p in group]) if dense else None
    per_clip = max(1, min(cfg.frames_per_clip, min(len(c) for c in clips)))
    clips_per_batch = min(len(clips), max(1, cfg.batch_size // per_clip))
    tokens = tokenizer(arch)(texts)  # (N, L)
    mean, std = (t.view(1, 3, 1, 1) for t in pixel_stats(model.visual))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.1)
    steps = cfg.steps
    sched = warmup_cosine(opt, steps)
    out = Path(out)
    state_path = out.with_name(out.name + ".state")
    start = 0
    if (state := load_state(state_path, model, opt, sched)) is not None:
        rng.setstate(state["rng"])
        start = state["step"]
    out.parent.mkdir(parents=True, exist_ok=True)
    model.train()
    bar = tqdm(range(start, steps), desc="clip pretrain", unit="step", initial=start, total=steps)
    for step in bar:
        idx = [i for c in rng.sample(clips, clips_per_batch) for i in rng.sample(c, per_clip)]
        x = torch.stack([images[i] for i in idx]).float() / 255.0
        mirror = rng.random() < 0.5  # the world has figures facing both ways
        if mirror:
            x = x.flip(-1)
        x = (x - mean) / std
        enc = region_forward(model.visual, x, plan, prop_attn=False)  # cls == encode_image
        img = F.normalize(enc.cls, dim=-1)
        txt = F.normalize(model.encode_text(tokens[idx]), dim=-1)
        scale = model.logit_scale.exp().clamp(max=100)
        logits = scale * img @ txt.t()
        # Captions repeat across frames: treat identical captions as positives for each other.
        same = torch.tensor([[texts[i] == texts[j] for j in idx] for i in idx], dtype=torch.float32)
        target = same / same.sum(1, keepdim=True)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target.t())) / 2
        if dense:
            frame_masks = masks[idx].flip(-1) if mirror else masks[idx]
            targets = patch_entity_targets(frame_masks, model.visual.grid_size, len(entities))
            # The corpus builder's embedding, through the text tower being trained.
            entity_emb = pool_prompts(model.encode_text(prompt_tokens), [len(g) for g in prompts])
            loss = loss + cfg.region_weight * region_loss(
                F.normalize(enc.regions, dim=-1), entity_emb, targets, scale
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if cfg.state_every > 0 and (step + 1) % cfg.state_every == 0 and step + 1 < steps:
            save_state(state_path, model, opt, sched, rng=rng.getstate(), step=step + 1)
    torch.save(model.state_dict(), out)
    state_path.unlink(missing_ok=True)
    return out
