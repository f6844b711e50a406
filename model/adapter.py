"""The video adapter (docs/design.md §4): aligned entities query the regions of all frames."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Attention(nn.Module):
    """Multi-head attention through scaled_dot_product_attention, with an additive key bias."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        assert dim % heads == 0, f"width {dim} is not divisible by {heads} heads"
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def _split(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        return x.reshape(b, n, self.heads, d // self.heads).transpose(1, 2)  # (B, H, N, Dh)

    def forward(self, q: Tensor, kv: Tensor, bias: Tensor | None = None) -> Tensor:
        """q `(B, Q, D)`, kv `(B, S, D)`, bias broadcastable to `(B, H, Q, S)`."""
        out = F.scaled_dot_product_attention(
            self._split(self.q(q)), self._split(self.k(kv)), self._split(self.v(kv)), attn_mask=bias
        )
        b, _, n, _ = out.shape
        return self.out(out.transpose(1, 2).reshape(b, n, -1))


def _mlp(dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class DecoderLayer(nn.Module):
    """Pre-norm: cross-attention to regions, self-attention among queries, MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.cross = Attention(dim, heads)
        self.norm_self = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, heads)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = _mlp(dim, int(dim * mlp_ratio))

    def forward(
        self, q: Tensor, kv: Tensor, bias: Tensor | None, query_bias: Tensor | None = None
    ) -> Tensor:
        q = q + self.cross(self.norm_q(q), self.norm_kv(kv), bias)
        h = self.norm_self(q)
        q = q + self.self_attn(h, h, query_bias)
        return q + self.mlp(self.norm_mlp(q))


class VideoAdapter(nn.Module):
    """Queries: an MLP over the K aligned entities' text embeddings plus one learned video
    query. Keys/values: an MLP over the region embeddings of all frames plus a learned frame
    embedding. Returns the video query's final state projected to D."""

    def __init__(self, dim: int, frames: int, layers: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.entity_mlp = _mlp(dim, dim)
        self.region_mlp = _mlp(dim, dim)
        self.video_query = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.frame_embed = nn.Parameter(torch.randn(frames, 1, dim) * 0.02)
        self.layers = nn.ModuleList(DecoderLayer(dim, heads, mlp_ratio) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, dim)
        # Zero output at start: ALT begins as CLIP mean pooling, yet every adapter weight gets
        # a gradient from the first step (a zero gate alpha would starve them instead).
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(
        self,
        entities: Tensor,
        regions: Tensor,
        sizes: Tensor,
        present: Tensor | None = None,
    ) -> Tensor:
        """entities `(B, K, D)`, regions `(B, T, R, D)`, sizes `(B, T, R)`, and `present`
        `(B, K)` bool: which entities some region aligned to (the others only fill the K slots
        and are hidden) -> `(B, D)`."""
        kv = self.region_mlp(regions) + self.frame_embed  # (B, T, R, D)
        b, t, r, d = kv.shape
        queries = torch.cat([self.video_query.expand(b, -1, -1), self.entity_mlp(entities)], dim=1)
        kv = kv.reshape(b, t * r, d)
        # Proportional attention, as in the ViT: a merged region speaks for all its patches.
        bias = sizes.reshape(b, 1, 1, t * r).log().to(kv.dtype)
        query_bias = None
        if present is not None:  # the video query is always there
            keep = torch.cat([torch.ones_like(present[:, :1]), present], dim=1)
            query_bias = torch.zeros(keep.shape, dtype=kv.dtype, device=kv.device)
            query_bias = query_bias.masked_fill(~keep, float("-inf"))[:, None, None, :]
        for layer in self.layers:
            queries = layer(queries, kv, bias, query_bias)
        return self.proj(self.norm(queries[:, 0]))
