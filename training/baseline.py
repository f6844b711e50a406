"""The "adapt then align" baseline: frame CLS mean pooling plus a temporal transformer
(X-CLIP / ActionCLIP-like), on the same CLIP, data and budget as ALT."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.alt import ALT
from model.vit import region_forward

from .train import Dense

ABOUT = "frame CLS mean pooling + a temporal transformer, no alignment"


class TemporalBaseline(nn.Module):
    def __init__(self, alt: ALT, layers: int = 2) -> None:
        super().__init__()
        self.layers = layers
        self.alt = alt  # reuses CLIP, normalization, label encoding and logit scale
        d = alt.dim
        self.frame_embed = nn.Parameter(torch.randn(alt.config.frames, d) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d, max(1, d // 64), 4 * d, dropout=0.0, batch_first=True, norm_first=True
        )
        self.temporal = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        # Zero output layer, unit gate: starts as plain mean pooling, like ALT, and learns at once.
        self.out = nn.Linear(d, d)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.gate = nn.Parameter(torch.tensor(1.0))

    def video_embedding(self, frames: Tensor, gumbel: bool = False) -> Tensor:
        """Normalized frames `(B, T, 3, H, W)` -> `(B, D)`; no token merging (plain CLIP frames)."""
        return self.dense_embedding(frames, gumbel).embedding

    def dense_embedding(self, frames: Tensor, gumbel: bool = False) -> Dense:
        """The embedding, the patch embeddings `(B, T, P, D)` as regions, no sources (every
        region is one patch)."""
        b, t = frames.shape[:2]
        visual = self.alt.clip.visual
        plan = [0] * len(visual.transformer.resblocks)
        enc = region_forward(visual, frames.flatten(0, 1), plan, prop_attn=False)
        cls = enc.cls.reshape(b, t, -1)
        temporal = self.out(self.temporal(cls + self.frame_embed).mean(dim=1))
        emb = F.normalize(cls.mean(dim=1) + self.gate * temporal, dim=-1)
        return Dense(emb, enc.regions.reshape(b, t, *enc.regions.shape[1:]), None)

    def head(self) -> tuple[dict, dict[str, Tensor]]:
        """Its own config and tensors, for `save_checkpoint(head=...)` beside ALT's."""
        own = {k: v for k, v in self.state_dict().items() if not k.startswith("alt.")}
        return {"kind": "baseline", "about": ABOUT, "layers": self.layers}, own

    @classmethod
    def from_bundle(cls, bundle) -> TemporalBaseline:
        """The baseline of a checkpoint loaded `with_head` (strict: every tensor fits)."""
        assert bundle.head is not None and bundle.head.get("kind") == "baseline"
        module = cls(bundle.model, int(bundle.head["layers"]))
        missing, unexpected = module.load_state_dict(bundle.head_state, strict=False)
        missing = [k for k in missing if not k.startswith("alt.")]
        if missing or unexpected:
            raise ValueError(f"baseline tensors do not fit: missing {missing}, "
                             f"unexpected {unexpected}")  # fmt: skip
        return module.eval()
