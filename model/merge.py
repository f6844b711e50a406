"""Token merging (ToMe, Bolya et al. 2023) as pure, exportable functions.

Tokens are `(B, N, C)` with the class token at index 0; it is never merged. The patch
tokens split alternately into sets A (even positions) and B (odd positions); each A token
links to its most similar B token and the `r` strongest links merge. Merging is a
size-weighted average computed as scatter-add of `size * x` divided by scatter-add of
`size` — ONNX has ScatterElements(reduction="add") but no scatter-mean, and the mean
reduction exports silently wrong from one of PyTorch's exporters.

Output token order is fixed and documented, because region indices are part of the
explanations: `[CLS, unmerged A tokens (strongest link first), B tokens (original order)]`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class Matching(NamedTuple):
    """Which patch tokens merge where. All indices are `(B, ·)` int64."""

    unm_idx: Tensor  # (B, Na - r) positions in A that stay, strongest link first
    src_idx: Tensor  # (B, r) positions in A that merge away
    dst_idx: Tensor  # (B, r) positions in B that receive them


def bipartite_soft_matching(metric: Tensor, r: int) -> Matching:
    """Match A tokens to B tokens by cosine similarity of `metric` `(B, N, C)`; keep the best r."""
    patches = metric[:, 1:]  # class token takes no part in matching
    patches = patches / patches.norm(dim=-1, keepdim=True)
    a, b = patches[:, ::2], patches[:, 1::2]  # (B, Na, C), (B, Nb, C)
    scores = a @ b.transpose(-1, -2)  # (B, Na, Nb)
    node_max, node_idx = scores.max(dim=-1)  # (B, Na)
    # Strongest link first; ties keep token order. Flat image regions make exact ties common,
    # and the exported op sorts with ONNX TopK, which also puts the lower index first.
    order = node_max.argsort(dim=-1, descending=True, stable=True)  # (B, Na)
    src_idx = order[:, :r]
    return Matching(unm_idx=order[:, r:], src_idx=src_idx, dst_idx=node_idx.gather(1, src_idx))


def merge_sum(x: Tensor, m: Matching) -> Tensor:
    """Apply a matching to `(B, N, C)` tokens by summation: `(B, N - r, C)`."""
    cls, patches = x[:, :1], x[:, 1:]
    a, b = patches[:, ::2], patches[:, 1::2]
    c = x.shape[-1]
    unm = a.gather(1, m.unm_idx.unsqueeze(-1).expand(-1, -1, c))
    src = a.gather(1, m.src_idx.unsqueeze(-1).expand(-1, -1, c))
    b = b.scatter_add(1, m.dst_idx.unsqueeze(-1).expand(-1, -1, c), src)
    return torch.cat([cls, unm, b], dim=1)


def merge_tokens(
    x: Tensor, size: Tensor, m: Matching, source: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Size-weighted merge.

    x: `(B, N, C)` tokens; size: `(B, N, 1)` patches held per token; source: optional
    `(B, N, P)` 0/1 map of the original patches each token holds. Returns the three merged.
    """
    size_sum = merge_sum(size, m)  # (B, N - r, 1)
    x = merge_sum(x * size, m) / size_sum
    if source is not None:
        source = merge_sum(source, m)
    return x, size_sum, source
