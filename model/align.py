"""Entity-to-region alignment (docs/design.md §3) as pure functions.

Regions are compared with entity text embeddings by cosine / tau; every region takes one
entity. Training samples the assignment with Gumbel noise and a straight-through hard
one-hot, so the forward pass is exactly one-hot while gradients reach both regions and
entities. Inference takes a plain argmax: deterministic, and exportable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def alignment_logits(regions: Tensor, entities: Tensor, tau: float) -> Tensor:
    """Cosine similarity / tau: regions `(..., R, D)`, entities `(E, D)` -> `(..., R, E)`,
    in fp32 whatever the model's dtype (an argmax over ~1000 entities must not flip on
    bf16 rounding)."""
    regions = F.normalize(regions.float(), dim=-1)
    entities = F.normalize(entities.float(), dim=-1)
    return regions @ entities.t() / tau


def hard_assign(logits: Tensor) -> Tensor:
    """Inference: the best entity of each region, `(..., R)` int64."""
    return logits.argmax(dim=-1)


def gumbel_assign(logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Training: Gumbel-softmax sample, hard one-hot forward, soft gradient. `(..., R, E)`."""
    u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype, device=logits.device)
    eps = torch.finfo(logits.dtype).tiny
    gumbel = -torch.log((-torch.log(u.clamp_min(eps))).clamp_min(eps))
    soft = (logits + gumbel).softmax(dim=-1)
    hard = F.one_hot(soft.argmax(dim=-1), logits.shape[-1]).to(soft.dtype)
    return hard - soft.detach() + soft


def importance_from_ids(ids: Tensor, sizes: Tensor, num_entities: int) -> Tensor:
    """Entity importance per clip from hard ids.

    ids, sizes: `(B, T, R)`. Returns `(B, E)`: the share of the clip's patches assigned to each
    entity (sums to 1 per clip).
    """
    b = ids.shape[0]
    flat_ids, flat_sizes = ids.reshape(b, -1), sizes.reshape(b, -1)
    importance = flat_sizes.new_zeros(b, num_entities).scatter_add(1, flat_ids, flat_sizes)
    return importance / flat_sizes.sum(dim=1, keepdim=True)


def importance_from_weights(weights: Tensor, sizes: Tensor) -> Tensor:
    """Same as `importance_from_ids` for (straight-through) weights `(B, T, R, E)`."""
    importance = torch.einsum("btre,btr->be", weights, sizes)
    return importance / sizes.sum(dim=(1, 2)).unsqueeze(1)


def top_entities(importance: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The clip's `k` aligned entities: scores `(B, k)` and ids `(B, k)`, strongest first.

    Ties (entities that no region chose all score 0) go to the lower id, in PyTorch and in
    the exported graph alike: the ranking key is an integer, the importance quantized to
    2^-20 (finer than any real difference, which is at least one patch of the clip), then
    the id reversed. TopK over distinct integers has one answer everywhere.
    """
    e = importance.shape[1]
    k = min(k, e)
    quantized = (importance.detach() * 2**20).round().long()
    rank = torch.arange(e - 1, -1, -1, device=importance.device)
    ids = (quantized * e + rank).topk(k, dim=1).indices
    return importance.gather(1, ids), ids


def patch_entities(sources: Tensor, region_entities: Tensor) -> Tensor:
    """The entity of every patch: that of the region holding it. sources `(B, T, R, P)`
    0/1 (each patch in exactly one region), region ids `(B, T, R)` -> ids `(B, T, P)`."""
    region_of_patch = sources.argmax(dim=2)  # (B, T, P)
    return region_entities.gather(2, region_of_patch)
