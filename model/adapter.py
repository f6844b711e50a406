"""The video adapter (ALT.md §4): aligned entities query the regions of all frames."""

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


class EncoderLayer(nn.Module):
    """Pre-norm self-attention and MLP (the frames' class tokens attend to each other)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = _mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm_attn(x)
        x = x + self.attn(h, h)
        return x + self.mlp(self.norm_mlp(x))


class VideoAdapter(nn.Module):
    """Queries: an MLP over the K aligned entities' text embeddings plus one learned video
    query. Keys/values: an MLP over the region embeddings of all frames plus a learned frame
    embedding. Returns the video query's final state projected to D."""

    def __init__(self, dim: int, frames: int, layers: int, heads: int, mlp_ratio: float,
                 frame_tokens: bool = False, temporal_layers: int = 0) -> None:  # fmt: skip
        super().__init__()
        self.entity_mlp = _mlp(dim, dim)
        self.region_mlp = _mlp(dim, dim)
        self.video_query = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.frame_embed = nn.Parameter(torch.randn(frames, 1, dim) * 0.02)
        # With `frame_tokens`, each frame's class token is one more key, marked by its own
        # learned embedding (it summarizes the frame; a region shows a part of it).
        self.frame_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02) if frame_tokens else None
        # With `temporal_layers`, those frame keys first attend to each other over time, so that
        # a key can carry how the figure moves between frames, not only how it stands in one.
        assert frame_tokens or not temporal_layers, "temporal layers run over the frame tokens"
        self.temporal = nn.ModuleList(
            EncoderLayer(dim, heads, mlp_ratio) for _ in range(temporal_layers)
        )
        self.layers = nn.ModuleList(DecoderLayer(dim, heads, mlp_ratio) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, dim)
        # Zero output at start: ALT begins as CLIP mean pooling, yet every adapter weight gets
        # a gradient from the first step (a zero gate alpha would starve them instead).
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def frame_keys(self, frames: Tensor) -> Tensor:
        """The frames' class embeddings `(B, T, D)` -> one key per frame `(B, T, 1, D)`."""
        keys = self.region_mlp(frames) + self.frame_embed.squeeze(1)
        for layer in self.temporal:
            keys = layer(keys)
        return keys.unsqueeze(2) + self.frame_token

    def forward(
        self,
        entities: Tensor,
        regions: Tensor,
        sizes: Tensor,
        frames: Tensor | None = None,
        present: Tensor | None = None,
    ) -> Tensor:
        """entities `(B, K, D)`, regions `(B, T, R, D)`, sizes `(B, T, R)`, with frame tokens
        the frames' class embeddings `(B, T, D)`, and `present` `(B, K)` bool: which entities
        some region aligned to (the others only fill the K slots and are hidden) -> `(B, D)`."""
        kv = self.region_mlp(regions) + self.frame_embed  # (B, T, R, D)
        if self.frame_token is not None:
            assert frames is not None, "this adapter takes the frames' class tokens"
            kv = torch.cat([self.frame_keys(frames), kv], dim=2)
            sizes = torch.cat([torch.ones_like(sizes[..., :1]), sizes], dim=2)
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


class TemporalBranch(nn.Module):
    """A temporal transformer over the frames' class embeddings (ours, off in the paper's
    presets): its output adds to the video embedding beside the adapter's, so how the whole
    figure moves from frame to frame reaches the embedding even where no region shows it.
    Zero output layer: a model with the branch starts where one without it does."""

    def __init__(self, dim: int, frames: int, layers: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.frame_embed = nn.Parameter(torch.randn(frames, dim) * 0.02)
        self.layers = nn.ModuleList(EncoderLayer(dim, heads, mlp_ratio) for _ in range(layers))
        self.proj = nn.Linear(dim, dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    @classmethod
    def from_config(cls, config, dim: int) -> TemporalBranch:
        """The branch an `ALTConfig` asks for, at joint width `dim`."""
        heads = max(1, dim // config.adapter_head_dim)
        return cls(
            dim, config.frames, config.temporal_branch_layers, heads, config.adapter_mlp_ratio
        )

    def forward(self, frames: Tensor) -> Tensor:
        """The frames' class embeddings `(B, T, D)` -> `(B, D)`."""
        x = frames + self.frame_embed
        for layer in self.layers:
            x = layer(x)
        return self.proj(x.mean(dim=1))
