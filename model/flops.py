"""Cost accounting as the video-CLIP papers count it: multiply-adds of matmuls and
convolutions (fvcore style, "FLOPs" = MACs), per view and per clip with views.

Counted from the architecture and the merge schedule alone, so it needs no weights, and
imports neither torch nor open_clip (`alt info` answers at once). Norms, activations and
softmax are left out, as fvcore's defaults do for them.
"""

from __future__ import annotations

import functools
import importlib.machinery
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import ALTConfig
from .schedule import clip_r, parse_schedule, token_counts

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


@functools.cache
def arch_config(arch: str) -> dict[str, Any]:
    """open_clip's architecture dict, read from its JSON file (ours in model/archs, the rest
    in open_clip's package) without importing open_clip."""
    ours = Path(__file__).parent / "archs" / f"{arch}.json"
    if ours.is_file():
        return json.loads(ours.read_text())
    spec = importlib.machinery.PathFinder.find_spec("open_clip")  # found, never imported
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "model_configs" / f"{arch}.json"
        if path.is_file():
            return json.loads(path.read_text())
    raise ValueError(f"unknown open_clip architecture {arch!r}")


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
    adapter: int  # adapter, alpha and the label map

    @property
    def total(self) -> int:
        return self.visual + self.text + self.adapter


def _block_params(width: int, mlp_ratio: float) -> int:
    """One open_clip residual attention block: two LayerNorms, in/out projections, MLP."""
    hidden = int(width * mlp_ratio)
    return 4 * width + 4 * width * width + 4 * width + 2 * width * hidden + hidden + width


def _adapter_params(config: ALTConfig, dim: int) -> int:
    """VideoAdapter, alpha and the label map (model/adapter.py, model/alt.py)."""
    linear = dim * dim + dim
    hidden = int(dim * config.adapter_mlp_ratio)
    decoder = 4 * 2 * dim + 2 * 4 * linear + dim * hidden + hidden + hidden * dim + dim
    adapter = 4 * linear + dim + config.frames * dim + config.adapter_layers * decoder
    adapter += 2 * dim + linear  # final norm and projection
    return adapter + 1 + (linear if config.label_proj else 0)


def count_params(config: ALTConfig) -> Params:
    """Parameter counts from the architecture (tested equal to the built model's)."""
    arch = arch_config(config.clip_arch)
    vis, txt, dim = arch["vision_cfg"], arch["text_cfg"], arch["embed_dim"]
    width, patch = vis["width"], vis["patch_size"]
    grid = vis["image_size"] // patch
    visual = 3 * patch * patch * width + width + (grid * grid + 1) * width + 2 * width
    visual += vis["layers"] * _block_params(width, vis.get("mlp_ratio", 4.0))
    visual += 2 * width + width * dim
    tw = txt["width"]
    text = txt["vocab_size"] * tw + txt["context_length"] * tw + 2 * tw + tw * dim + 1
    text += txt["layers"] * _block_params(tw, txt.get("mlp_ratio", 4.0))
    return Params(visual, text, _adapter_params(config, dim))
