"""From per-view model outputs to the answer of `POST /recognize` (the `Recognition` schema):
ranked actions, aligned-entity explanations, region maps, the video's facts and timings.
Built here wherever the parts ran (a server, a Ray cluster, a batch job)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from media import VideoInfo

from .backends import ClipResult, ModelInfo
from .schemas import Explain, Recognition


def build_answer(
    info: ModelInfo,
    video: VideoInfo,
    views: Sequence[ClipResult],
    labels: Sequence[str],
    label_emb: np.ndarray,
    top_k: int,
    explain: Explain,
    timings: dict[str, float],
) -> Recognition:
    """`timings` holds `decode_s`, `queue_s`, `inference_s` and `total_s`."""
    embeddings = np.stack([v.embedding for v in views])
    out: dict = {
        "actions": rank_actions(embeddings, label_emb, labels, info.logit_scale, top_k),
        "video": {
            "duration_s": video.duration_s,
            "fps": video.fps,
            "width": video.width,
            "height": video.height,
            "frames": video.num_frames,
            "rotation": video.rotation,
            "frames_sampled": list(video.sampled[0]),
            "times_s": video.timestamps(0),
            "crop": center_crop_box(video.width, video.height),
        },
        "model": {"name": info.name, "version": info.version, "backend": info.backend},
        "warnings": list(video.warnings),
    }
    if explain != Explain.none:
        entities = aligned_entities(views, info.entity_names, k=len(views[0].entity_ids))
        if explain == Explain.regions:
            out["regions"] = region_maps(views[0], entities, info.grid, video.timestamps(0))
        out["entities"] = [{k: e[k] for k in ("name", "score", "frames")} for e in entities]
    out["timings"] = {
        f"{stage}_ms": round(timings[f"{stage}_s"] * 1000, 2)
        for stage in ("decode", "queue", "inference", "total")
    }
    return Recognition.model_validate(out)


def rank_actions(
    embeddings: np.ndarray, label_emb: np.ndarray, labels: Sequence[str], scale: float, top_k: int
) -> list[dict]:
    """embeddings `(V, D)`, label_emb `(L, D)` -> top-k `{label, score, similarity}`: the
    softmax over the label set and the raw cosine, each averaged over views."""
    cosine = embeddings @ label_emb.T  # (V, L)
    logits = scale * cosine
    logits = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs = (probs / probs.sum(axis=1, keepdims=True)).mean(axis=0)
    similarity = cosine.mean(axis=0)
    order = np.argsort(-probs, kind="stable")[:top_k]
    return [
        {"label": labels[i], "score": round(float(probs[i]), 6),
         "similarity": round(float(similarity[i]), 6)}
        for i in order
    ]  # fmt: skip


def aligned_entities(views: Sequence[ClipResult], names: Sequence[str], k: int) -> list[dict]:
    """Entities ranked by area share averaged over views; frames from the first view."""
    totals: dict[int, float] = {}
    for view in views:
        for eid, score in zip(view.entity_ids.tolist(), view.entity_scores.tolist()):
            totals[eid] = totals.get(eid, 0.0) + score / len(views)
    ranked = sorted((e for e in totals if totals[e] > 0), key=lambda e: -totals[e])[:k]
    first = views[0].region_entities  # (T, R)
    return [
        {
            "id": eid,
            "name": names[eid],
            "score": round(totals[eid], 6),
            "frames": [t for t in range(first.shape[0]) if (first[t] == eid).any()],
        }
        for eid in ranked
    ]


def region_maps(
    view: ClipResult, entities: Sequence[dict], grid: tuple[int, int], times: Sequence[float]
) -> list[dict]:
    """Per sampled frame, the patch grid labelled with indices into `entities` (-1: other)."""
    assert view.patch_entities is not None, "region maps need patch_entities"
    ids = view.patch_entities
    lookup = np.full(int(max(ids.max(), max((e["id"] for e in entities), default=0))) + 1, -1)
    for i, e in enumerate(entities):
        lookup[e["id"]] = i
    maps = []
    for t, patches in enumerate(ids):
        labelled = lookup[patches].reshape(grid)
        maps.append({"frame": t, "time_s": times[t], "grid": labelled.tolist()})
    return maps


def center_crop_box(width: int, height: int) -> dict:
    side = min(width, height)
    return {"x": (width - side) // 2, "y": (height - side) // 2, "width": side, "height": side}
