"""From per-window model outputs to a timeline: which action, when, and what was seen.

Each window (a span of the video sampled as one clip, `media.windows`) gets the softmax
over the label set, as a short video does. Windows are then labelled jointly by the path
that maximizes the sum of the windows' log-probabilities minus `smoothing` for every
change of label (a switch penalty), solved exactly by dynamic programming (Viterbi) in
O(windows x labels). A stretch shorter than the evidence against it is absorbed into its
neighbours; a real change of action, seen over enough windows, is kept. With
`min_similarity`, "none of these" joins the label set as one more class whose cosine is
that floor, so a stretch where every label's similarity stays under it is labelled null
rather than with the least bad label. docs/design.md §7 has the reasoning.

Segments are runs of one label; each window owns the time from the midpoint with its
previous window to the midpoint with its next (or the cut between them, with shots), so
segments tile the video without overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from media.windows import Window, WindowedInfo

from .answer import center_crop_box
from .backends import ClipResult, ModelInfo
from .schemas import TimelineRecognition

MAX_ENTITY_TIMES = 16  # frame times listed per entity of a segment


@dataclass(frozen=True)
class TimelineOptions:
    window_s: float = 4.0
    stride_s: float = 2.0
    smoothing: float = 4.0  # nats per change of label
    min_similarity: float | None = None
    shots: bool = False
    windows: bool = False  # per-window scores in the answer
    top_k: int = 5


def window_scores(
    views: Sequence[Sequence[ClipResult]], label_emb: np.ndarray, scale: float, floor: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """-> probabilities `(W, L[+1])` (averaged over each window's views; the last column is
    "none of these" when `floor` is set) and cosines `(W, L)`."""
    emb = np.array([[v.embedding for v in window] for window in views])  # (W, V, D)
    cosine = emb @ label_emb.T  # (W, V, L)
    logits = scale * cosine
    if floor is not None:
        none = np.full((*logits.shape[:2], 1), scale * floor, logits.dtype)
        logits = np.concatenate([logits, none], axis=2)
    logits = logits - logits.max(axis=2, keepdims=True)
    probs = np.exp(logits)
    probs = probs / probs.sum(axis=2, keepdims=True)
    return probs.mean(axis=1), cosine.mean(axis=1)


def smooth(probs: np.ndarray, penalty: float) -> np.ndarray:
    """The label path `(W,)` maximizing sum(log p) - penalty x (changes of label)."""
    return best_path(np.log(np.clip(probs, 1e-12, None)), penalty)


def best_path(logp: np.ndarray, penalty: float) -> np.ndarray:
    """`smooth` over log-probabilities `(W, L)`."""
    n, k = logp.shape
    score = logp[0].copy()
    back = np.zeros((n, k), np.int64)
    for w in range(1, n):
        best = int(score.argmax())
        switch = score[best] - penalty
        stay = score >= switch
        back[w] = np.where(stay, np.arange(k), best)
        score = np.where(stay, score, switch) + logp[w]
    path = np.empty(n, np.int64)
    path[-1] = int(score.argmax())
    for w in range(n - 1, 0, -1):
        path[w - 1] = back[w, path[w]]
    return path


def window_bounds(windows: Sequence[Window], duration: float) -> list[tuple[float, float]]:
    """The stretch of time each window stands for: midpoints between neighbouring windows'
    centres, or the cut between them when a cut separates them."""
    cuts = [0.0]
    for prev, cur in zip(windows, windows[1:]):
        if cur.start_s >= prev.end_s - 1e-6:  # a gap or a cut: the next window's start
            cuts.append(cur.start_s)
        else:
            cuts.append(((prev.start_s + prev.end_s) / 2 + (cur.start_s + cur.end_s) / 2) / 2)
    cuts.append(duration)
    return [(round(a, 3), round(max(a, b), 3)) for a, b in zip(cuts, cuts[1:])]


def _entities(
    views: Sequence[Sequence[ClipResult]], windows: Sequence[Window], names: Sequence[str], k: int
) -> list[dict]:
    """Entities over some windows: area share averaged over their views (ties: the entity
    listed first), with the times of the frames (of each window's first view) in which
    each was aligned."""
    ids = np.array([[v.entity_ids for v in w] for w in views])  # (W, V, K)
    scores = np.array([[v.entity_scores for v in w] for w in views])
    totals = np.bincount(
        ids.ravel(), weights=scores.ravel().astype(np.float64), minlength=len(names)
    ) / (ids.shape[0] * ids.shape[1])
    listed, first = np.unique(ids.ravel(), return_index=True)
    listed = listed[np.argsort(first, kind="stable")]  # in the order they first appear
    listed = listed[totals[listed] > 0]
    ranked = listed[np.argsort(-totals[listed], kind="stable")][:k]
    regions = np.array([w[0].region_entities for w in views])  # (W, T, R)
    shown = (regions[..., None] == ranked[None, None, None, :]).any(axis=2)  # (W, T, ranked)
    times = np.array([w.times_s for w in windows], np.float64)  # (W, T)
    out = []
    for j, eid in enumerate(ranked.tolist()):
        found = sorted(set(times[shown[:, :, j]].tolist()))
        if len(found) > MAX_ENTITY_TIMES:  # evenly thinned, first and last kept
            pick = np.linspace(0, len(found) - 1, MAX_ENTITY_TIMES).round().astype(int)
            found = [found[i] for i in pick]
        out.append({"id": eid, "name": names[eid], "score": round(float(totals[eid]), 6),
                    "times_s": found})  # fmt: skip
    return out


def build_timeline(
    info: ModelInfo,
    video: WindowedInfo,
    rotation: int,
    views: Sequence[Sequence[ClipResult]],
    labels: Sequence[str],
    label_emb: np.ndarray,
    options: TimelineOptions,
    timings: dict[str, float],
    warnings: Sequence[str] = (),
) -> TimelineRecognition:
    windows = video.windows
    assert len(views) == len(windows), "one result per window"
    floor = options.min_similarity
    probs, cosine = window_scores(views, label_emb, info.logit_scale, floor)
    path = smooth(probs, options.smoothing)
    none = len(labels) if floor is not None else -1
    bounds = window_bounds(windows, video.duration_s)
    k = len(views[0][0].entity_ids)

    segments: list[dict] = []
    start = 0
    for w in range(1, len(windows) + 1):
        if w < len(windows) and path[w] == path[start]:
            continue
        state = int(path[start])
        span = range(start, w)
        is_none = state == none
        segments.append({
            "start_s": bounds[start][0],
            "end_s": bounds[w - 1][1],
            "label": None if is_none else labels[state],
            "score": round(float(probs[span, state].mean()), 6),
            "similarity": round(
                float(floor) if is_none and floor is not None else float(cosine[span, state].mean()),
                6,
            ),
            "windows": len(span),
            "entities": [
                {k_: e[k_] for k_ in ("name", "score", "times_s")}
                for e in _entities(views[start:w], windows[start:w], info.entity_names, 5)
            ],
        })  # fmt: skip
        start = w

    seconds: dict[str, list[float]] = {}
    for s in segments:
        if s["label"] is not None:
            seconds.setdefault(s["label"], []).append(s["end_s"] - s["start_s"])
    duration = max(video.duration_s, 1e-9)
    summary = [
        {"label": lab, "seconds": round(sum(t), 3), "share": round(sum(t) / duration, 4),
         "segments": len(t)}
        for lab, t in sorted(seconds.items(), key=lambda item: -sum(item[1]))
    ]  # fmt: skip

    label_probs = probs[:, : len(labels)]
    overall = label_probs.mean(axis=0)
    overall_sim = cosine.mean(axis=0)
    order = np.argsort(-overall, kind="stable")[: options.top_k]

    def ranked(p: np.ndarray, c: np.ndarray) -> list[dict]:
        top = np.argsort(-p, kind="stable")[: options.top_k]
        return [{"label": labels[i], "score": round(float(p[i]), 6),
                 "similarity": round(float(c[i]), 6)} for i in top]  # fmt: skip

    width, height = (video.height, video.width) if rotation % 180 else (video.width, video.height)
    entities = _entities(views, windows, info.entity_names, k)
    out: dict = {
        "actions": [
            {
                "label": labels[i],
                "score": round(float(overall[i]), 6),
                "similarity": round(float(overall_sim[i]), 6),
            }
            for i in order
        ],  # fmt: skip
        "entities": [{k_: e[k_] for k_ in ("name", "score", "times_s")} for e in entities],
        "timeline": segments,
        "summary": summary,
        "params": {
            "window_s": options.window_s,
            "stride_s": options.stride_s,
            "smoothing": options.smoothing,
            "min_similarity": floor,
            "shots": options.shots,
        },
        "video": {
            "duration_s": video.duration_s,
            "fps": video.fps,
            "width": width,
            "height": height,
            "frames": video.num_frames,
            "rotation": rotation,
            "windows": len(windows),
            "crop": center_crop_box(width, height),
        },
        "timings": {
            f"{stage}_ms": round(timings[f"{stage}_s"] * 1000, 2)
            for stage in ("decode", "queue", "inference", "total")
        },
        "model": {"name": info.name, "version": info.version, "backend": info.backend},
        "warnings": [*video.warnings, *warnings],
    }
    if options.windows:
        out["windows"] = [
            {
                "start_s": w.start_s,
                "end_s": w.end_s,
                "actions": ranked(label_probs[i], cosine[i]),
            }  # fmt: skip
            for i, w in enumerate(windows)
        ]
    if options.shots:
        out["shots"] = [{"start_s": a, "end_s": b} for a, b in video.shots] or [
            {"start_s": 0.0, "end_s": video.duration_s}
        ]
    return TimelineRecognition.model_validate(out)
