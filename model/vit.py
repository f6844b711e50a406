"""Region-aware forward pass over an open_clip ViT's own modules (docs/design.md §1).

Nothing is copied: each residual block's `ln_1`, attention projections, `ls_*`, `ln_2` and
`mlp` run as they are; only the attention product is ours (scaled_dot_product_attention,
so that it also yields the head-averaged keys ToMe matches on, takes the proportional
attention bias, and runs fast under bf16 autocast). Token merging sits between attention
and MLP. Every token leaves through `ln_post` and `proj`, so regions live in text space.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from open_clip.transformer import ResidualAttentionBlock, VisionTransformer
from torch import Tensor, nn

from .merge import bipartite_soft_matching, merge_tokens
from .schedule import clip_r, token_counts


class RegionOutput(NamedTuple):
    cls: Tensor  # (N, D) class embedding in joint space (what encode_image returns)
    regions: Tensor  # (N, R, D) region embeddings in joint space
    sizes: Tensor  # (N, R) patches held by each region
    source: Tensor | None  # (N, R, P) 0/1: which of the P patches each region holds


# (x, size, source, metric, r) -> (x, size, source): one merge step between attention and MLP.
MergeFn = Callable[
    [Tensor, Tensor, Tensor | None, Tensor, int], tuple[Tensor, Tensor, Tensor | None]
]


def merge_step(
    x: Tensor, size: Tensor, source: Tensor | None, metric: Tensor, r: int
) -> tuple[Tensor, Tensor, Tensor | None]:
    """The default MergeFn: bipartite soft matching on `metric`, then the size-weighted merge."""
    return merge_tokens(x, size, bipartite_soft_matching(metric, r), source)


def check_visual(visual: nn.Module) -> None:
    """Fail fast on towers this forward does not reproduce exactly."""
    if not isinstance(visual, VisionTransformer):
        raise TypeError(f"ALT needs an open_clip VisionTransformer, got {type(visual).__name__}")
    if visual.attn_pool is not None or visual.pool_type != "tok" or visual.final_ln_after_pool:
        raise TypeError("ALT needs a class-token ViT (no attentional or average pooling)")
    if visual.proj is None:
        raise TypeError("ALT needs a ViT with an output projection into the joint space")
    if not visual.transformer.batch_first:
        raise TypeError("ALT needs a batch-first open_clip transformer")
    for block in visual.transformer.resblocks:
        if not isinstance(block, ResidualAttentionBlock) or not isinstance(
            block.attn, nn.MultiheadAttention
        ):
            raise TypeError(f"unsupported residual block {type(block).__name__}")


def num_patches(visual: VisionTransformer) -> int:
    gh, gw = visual.grid_size
    return gh * gw


def merge_plan(visual: VisionTransformer, schedule: list[int]) -> list[int]:
    """Schedule clipped to what each layer can merge; a pure function of size and schedule."""
    layers = len(visual.transformer.resblocks)
    if len(schedule) != layers:
        raise ValueError(f"merge schedule has {len(schedule)} entries for {layers} layers")
    counts = token_counts(num_patches(visual) + 1, schedule)
    return [clip_r(n, r) for n, r in zip(counts, schedule)]


def _attention(
    block: ResidualAttentionBlock, x: Tensor, bias: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Self-attention of `(N, L, W)` tokens; returns output and head-averaged keys `(N, L, W/H)`."""
    attn = block.attn
    n, length, width = x.shape
    heads = attn.num_heads
    qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias)  # (N, L, 3W)
    qkv = qkv.reshape(n, length, 3, heads, width // heads).permute(
        2, 0, 3, 1, 4
    )  # (3, N, H, L, Dh)
    q, k, v = qkv[0], qkv[1], qkv[2]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (N, H, L, Dh)
    out = out.transpose(1, 2).reshape(n, length, width)
    return attn.out_proj(out), k.mean(dim=1)


def region_forward(
    visual: VisionTransformer,
    images: Tensor,
    plan: list[int],
    prop_attn: bool = True,
    track_source: bool = False,
    merge: MergeFn = merge_step,
    checkpoint: bool = False,
) -> RegionOutput:
    """Encode normalized images `(N, 3, H, W)` into class and region embeddings.

    `plan` is `merge_plan(visual, schedule)`: r per layer, already clipped, so that every
    shape here is static. Images of a batch never exchange tokens. `merge` replaces the merge
    step (the ONNX exporter routes it through a custom op). `checkpoint`: while training,
    keep only each block's input and recompute the block in the backward pass (activation
    checkpointing: memory for L/14 at a third more compute).
    """
    x = visual._embeds(images)  # (N, L0, W): patch embed, class token, positions, ln_pre
    n, length, _ = x.shape
    size = x.new_ones(n, length, 1)
    source = None
    if track_source:
        # (N, L0, P): the class token holds no patch; patch token i holds patch i.
        eye = torch.eye(length - 1, dtype=x.dtype, device=x.device)
        source = torch.cat([eye.new_zeros(1, length - 1), eye]).expand(n, -1, -1)

    def step(block, r, x, size, source):
        bias = None
        if prop_attn:
            bias = size.log().to(x.dtype).transpose(1, 2).unsqueeze(1)  # (N, 1, 1, L) on keys
        out, metric = _attention(block, block.ln_1(x), bias)
        x = x + block.ls_1(out)
        if r > 0:
            x, size, source = merge(x, size, source, metric, r)
        x = x + block.ls_2(block.mlp(block.ln_2(x)))
        return x, size, source

    recompute = checkpoint and torch.is_grad_enabled()
    for block, r in zip(visual.transformer.resblocks, plan):
        if recompute:
            x, size, source = torch.utils.checkpoint.checkpoint(
                step, block, r, x, size, source, use_reentrant=False
            )
        else:
            x, size, source = step(block, r, x, size, source)

    x = visual.ln_post(x) @ visual.proj  # (N, L, D): every token into the joint space
    return RegionOutput(
        cls=x[:, 0],
        regions=x[:, 1:],
        sizes=size[:, 1:, 0],
        source=None if source is None else source[:, 1:],
    )
