"""Evaluation: top-1/top-5 for any label set, and how well ALT's alignment matches the truth."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from model.alt import ALT

from .video_data import VideoDataset, collate


@torch.no_grad()
def embed(
    module: nn.Module,
    dataset: VideoDataset,
    batch_size: int = 32,
    indices: Sequence[int] | None = None,
) -> tuple[Tensor, Tensor]:
    """Video embeddings `(N, D)` of the first view, and targets `(N,)`, of the dataset's clips
    (or `indices`) that decode, as the dataset samples them; the module in eval mode."""
    module.eval()
    alt: ALT = module.alt
    indices = list(range(len(dataset))) if indices is None else list(indices)
    embs, targets = [], []
    for i in range(0, len(indices), batch_size):
        items = [dataset[j] for j in indices[i : i + batch_size]]
        items = [item for item in items if isinstance(item, tuple)]  # skipped: left out
        if not items:
            continue
        frames = torch.stack([item[0][0] for item in items])
        embs.append(module.video_embedding(alt.normalize(frames)))
        targets.extend(item[1] for item in items)
    if not embs:
        raise ValueError("no video of the dataset decodes")
    return torch.cat(embs), torch.tensor(targets)


@torch.no_grad()
def evaluate_views(
    module: nn.Module,
    dataset: VideoDataset,
    label_features: Tensor,
    batch_size: int = 8,
    workers: int = 0,
    device: torch.device | None = None,
    hits: bool = False,
    projected: bool = False,
) -> dict:
    """Top-1/top-5 over the dataset's label set with its test views (temporal clips x
    spatial crops), each video's softmax averaged over its views: what the server computes
    for the same views. Videos that do not decode are counted apart (`skipped`). `hits`
    adds each decoded video's top-1 result (1 right, 0 wrong), in the dataset's order.
    `projected`: `label_features` are already label embeddings (normalized, mapped)."""
    from torch.utils.data import DataLoader

    module.eval()
    alt: ALT = module.alt
    device = device or torch.device("cpu")
    label_emb = label_features.to(device)
    if not projected:
        label_emb = alt.project_labels(label_emb)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate)
    probs, targets, skipped = [], [], 0
    for items, bad in loader:
        skipped += len(bad)
        if not items:
            continue
        frames, target = items[0], items[1]
        b, v = frames.shape[:2]
        x = alt.normalize(frames.flatten(0, 1).to(device))
        emb = module.video_embedding(x)  # (B V, D)
        p = alt.logits(emb, label_emb).softmax(dim=-1).reshape(b, v, -1).mean(dim=1)
        probs.append(p.float().cpu())
        targets.append(target)
    if not probs:
        raise ValueError("no video of the evaluation set decodes")
    probs_, targets_ = torch.cat(probs), torch.cat(targets)
    result = accuracy_from_probs(probs_, targets_)
    result["skipped"] = skipped
    if hits:
        result["hits"] = (probs_.argmax(dim=1) == targets_).int().tolist()
    return result


def accuracy_from_probs(probs: Tensor, targets: Tensor) -> dict:
    k = min(5, probs.shape[1])
    top = probs.topk(k, dim=1).indices
    return {
        "top1": float((top[:, 0] == targets).float().mean()) * 100,
        "top5": float((top == targets[:, None]).any(1).float().mean()) * 100,
        "n": int(targets.numel()),
    }


def accuracy(embeddings: Tensor, targets: Tensor, label_emb: Tensor) -> dict[str, float]:
    scores = embeddings @ label_emb.t()
    k = min(5, label_emb.shape[0])
    top = scores.topk(k, dim=1).indices
    return {
        "top1": float((top[:, 0] == targets).float().mean()) * 100,
        "top5": float((top == targets[:, None]).any(1).float().mean()) * 100,
        "n": int(targets.numel()),
    }


@torch.no_grad()
def alignment_quality(
    alt: ALT, dataset: VideoDataset, entity_names: Sequence[str], world_entities: Sequence[str]
) -> dict:
    """Share of the top-K aligned entities that truly appear in the clip's sampled frames
    (precision) and of the entities that appear that are aligned (recall); per-region
    accuracy, a region's entity against the most common true entity of its pixels, over all
    regions and as the mean of each entity's own accuracy (balanced: sky and walls fill most
    regions, and the plain accuracy barely notices a ball that is never found); and that
    per-entity accuracy itself.

    `dataset` is a test set with masks (entity ids `(N, M, M)` per clip, 1-based into
    `world_entities`): its items carry the masks of the sampled frames.
    """
    alt.eval()
    gh, gw = alt.grid_size
    correct = aligned_total = present_total = 0.0
    region_hits: Counter[str] = Counter()
    region_total: Counter[str] = Counter()
    name_of = {i + 1: n for i, n in enumerate(world_entities)}
    for i in range(len(dataset)):
        item = dataset[i]
        if not isinstance(item, tuple):
            continue  # did not decode
        frames, _, truth = item[0][0], item[1], item[2].numpy()  # view 0; truth (T, M, M)
        out = alt.encode_video(alt.normalize(frames[None]), track_source=True)
        present = {name_of[v] for v in np.unique(truth) if v > 0}
        aligned = {
            entity_names[eid]
            for eid, score in zip(out.entity_ids[0].tolist(), out.entity_scores[0].tolist())
            if score > 0
        }
        correct += len(aligned & present)
        aligned_total += len(aligned)
        present_total += len(present)
        m = truth.shape[-1]
        # The true entity of each patch: the most common id among its mask cells.
        cells = (
            truth.reshape(truth.shape[0], gh, m // gh, gw, m // gw)
            .transpose(0, 1, 3, 2, 4)
            .reshape(truth.shape[0], gh * gw, -1)
        )
        sources = out.sources[0].numpy()  # (T, R, P)
        for t in range(truth.shape[0]):
            for r in range(sources.shape[1]):
                patches = sources[t, r] > 0
                ids = cells[t][patches].ravel()
                if ids.size == 0:
                    continue
                true_id = np.bincount(ids).argmax()
                if true_id == 0:
                    continue
                true_name = name_of[int(true_id)]
                region_total[true_name] += 1
                region_hits[true_name] += (
                    entity_names[int(out.region_entities[0, t, r])] == true_name
                )
    per_entity = {name: 100 * region_hits[name] / n for name, n in sorted(region_total.items())}
    return {
        "entity_precision": 100 * correct / max(1, aligned_total),
        "entity_recall": 100 * correct / max(1, present_total),
        "region_accuracy": 100 * sum(region_hits.values()) / max(1, sum(region_total.values())),
        "region_balanced_accuracy": sum(per_entity.values()) / max(1, len(per_entity)),
        "region_accuracy_per_entity": per_entity,
    }
