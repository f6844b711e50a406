"""Tiny CLIP pretraining on still frames of the world and their captions (contrastive)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from model.clip import create_clip, pixel_stats, tokenizer

from .data import ClipDataset, read_csv


def frame_caption_pairs(
    world: Path, split: str, size: int, cache: dict
) -> tuple[list[torch.Tensor], list[str], list[list[int]]]:
    """Every other frame of every clip with its caption (frames normalized later), and the
    indices of each clip's frames."""
    samples = read_csv(world / f"{split}.csv")
    captions = json.loads((world / "captions" / f"{split}.json").read_text())
    ds = ClipDataset(samples, sorted({s.label for s in samples}), 1, size, train=False, cache=cache)
    images, texts, clips = [], [], []
    for s in ds.samples:
        frames = ds.cache[(s.path, size)]
        caps = captions[str(s.path.relative_to(world))]
        clips.append([])
        for t in range(0, frames.shape[0], 2):
            clips[-1].append(len(images))
            images.append(frames[t])
            texts.append(caps[t])
    return images, texts, clips


def pretrain_clip(arch: str, world: Path, out: Path, steps: int = 1500, batch_size: int = 128, lr: float = 1e-3,
                  seed: int = 0, cache: dict | None = None, frames_per_clip: int = 2) -> Path:  # fmt: skip
    """Train `arch` from scratch; writes an open_clip state dict to `out` and returns it.

    A batch holds `frames_per_clip` frames of each of `batch_size // frames_per_clip` clips:
    frames of one clip share figure, colors and scene, so telling them apart from their
    captions takes the posture. With one frame per clip, colors and scene alone would do.
    """
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = create_clip(arch)
    size = model.visual.image_size[0]
    images, texts, clips = frame_caption_pairs(
        Path(world), "train", size, {} if cache is None else cache
    )
    per_clip = max(1, min(frames_per_clip, min(len(c) for c in clips)))
    clips_per_batch = min(len(clips), max(1, batch_size // per_clip))
    tokens = tokenizer(arch)(texts)  # (N, L)
    mean, std = (t.view(1, 3, 1, 1) for t in pixel_stats(model.visual))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))),
    )
    model.train()
    bar = tqdm(range(steps), desc="clip pretrain", unit="step")
    for step in bar:
        idx = [i for c in rng.sample(clips, clips_per_batch) for i in rng.sample(c, per_clip)]
        x = torch.stack([images[i] for i in idx]).float() / 255.0
        if rng.random() < 0.5:  # mirror: the world has figures facing both ways
            x = x.flip(-1)
        x = (x - mean) / std
        img = F.normalize(model.encode_image(x), dim=-1)
        txt = F.normalize(model.encode_text(tokens[idx]), dim=-1)
        logits = model.logit_scale.exp().clamp(max=100) * img @ txt.t()
        # Captions repeat across frames: treat identical captions as positives for each other.
        same = torch.tensor([[texts[i] == texts[j] for j in idx] for i in idx], dtype=torch.float32)
        target = same / same.sum(1, keepdim=True)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target.t())) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out)
    return out
