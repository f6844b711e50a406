"""Cost accounting as the video-CLIP papers count it: multiply-adds of matmuls and
convolutions (fvcore style, "FLOPs" = MACs), per view and per clip with views.

Counted from the architecture and the merge schedule alone, so it needs no weights.
Norms, activations and softmax are left out, as fvcore's defaults do for them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .adapter import VideoAdapter
from .clip import arch_config, create_clip
from .config import ALTConfig
from .merge import clip_r, parse_schedule, token_counts

# The ALT paper's ViT-B/16 figure: 8 frames x (3 clips x 1 crop).
PAPER_B16_GFLOPS = 328.0


@dataclass(frozen=True)
class Cost:
    vision_per_frame: int  # MACs of the region-aware ViT for one frame
    align_per_frame: int  # MACs of region-entity similarity for one frame
    adapter_per_view: int  # MACs of the video adapter for one view
    text_per_prompt: int  # MACs of the text encoder for one prompt (cached per label set)
    tokens: tuple[int, ...]  # token count entering each layer, then the final count
    frames: int
    views: int

    @property
    def per_view(self) -> int:
        return self.frames * (self.vision_per_frame + self.align_per_frame) + self.adapter_per_view

    @property
    def per_clip(self) -> int:
        return self.per_view * self.views


def _transformer_layer(n: int, width: int, heads: int, mlp_ratio: float, r: int) -> int:
    hidden = int(width * mlp_ratio)
    macs = 4 * n * width * width + 2 * n * n * width  # qkv + out proj, QK^T + AV
    if r > 0:
        patches = n - 1  # cosine similarity of A to B on head-averaged keys
        macs += ((patches + 1) // 2) * (patches // 2) * (width // heads)
    return macs + 2 * (n - r) * width * hidden  # MLP on the merged tokens


def _decoder_layer(q: int, s: int, dim: int, mlp_ratio: float) -> int:
    cross = 2 * q * dim * dim + 2 * s * dim * dim + 2 * q * s * dim
    self_attn = 4 * q * dim * dim + 2 * q * q * dim
    return cross + self_attn + 2 * q * dim * int(dim * mlp_ratio)


def count(config: ALTConfig, num_entities: int = 1000) -> Cost:
    arch = arch_config(config.clip_arch)
    vis, txt, dim = arch["vision_cfg"], arch["text_cfg"], arch["embed_dim"]
    width, layers, patch = vis["width"], vis["layers"], vis["patch_size"]
    heads = width // vis.get("head_width", 64)
    mlp_ratio = vis.get("mlp_ratio", 4.0)
    grid = config.image_size // patch
    schedule = parse_schedule(layers, config.merge_r, config.merge_schedule)
    tokens = token_counts(grid * grid + 1, schedule)
    vision = grid * grid * 3 * patch * patch * width  # patch embedding
    for n, r in zip(tokens, schedule):
        vision += _transformer_layer(n, width, heads, mlp_ratio, clip_r(n, r))
    vision += tokens[-1] * width * dim  # every token through the projection
    regions = tokens[-1] - 1
    align = regions * num_entities * dim
    k = min(config.top_k, num_entities)
    q, s = k + 1, config.frames * regions
    adapter = 2 * (k + s) * dim * dim  # entity and region MLPs
    adapter += config.adapter_layers * _decoder_layer(q, s, dim, config.adapter_mlp_ratio)
    adapter += dim * dim  # output projection
    ctx, tw = txt["context_length"], txt["width"]
    text = txt["layers"] * _transformer_layer(ctx, tw, txt["heads"], txt.get("mlp_ratio", 4.0), 0)
    text += tw * dim
    return Cost(vision, align, adapter, text, tuple(tokens), config.frames, config.views)


@dataclass(frozen=True)
class Params:
    visual: int
    text: int  # text tower and logit scale
    adapter: int  # adapter and alpha

    @property
    def total(self) -> int:
        return self.visual + self.text + self.adapter


def count_params(config: ALTConfig) -> Params:
    """Parameter counts, from modules built on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        clip = create_clip(config.clip_arch, device="meta")
        dim = clip.visual.output_dim
        adapter = VideoAdapter(
            dim, config.frames, config.adapter_layers, max(1, dim // config.adapter_head_dim),
            config.adapter_mlp_ratio,
        )  # fmt: skip
    visual = sum(p.numel() for p in clip.visual.parameters())
    total = sum(p.numel() for p in clip.parameters())
    head = sum(p.numel() for p in adapter.parameters())
    return Params(visual, total - visual, head + 1)
