"""Answers from stored windows, without decoding: a video's timeline for any label set,
and the moments that match a text.

A timeline is `build_timeline` over the stored views, the very arrays a job's timeline is
built from, so a stored video relabelled with a job's labels and options answers the
job's timeline. A search ranks windows by the mean cosine of their views with the text
(the timeline's `similarity`), then grows each of the best windows into a moment over its
neighbours that match about as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from media.windows import Window, WindowedInfo

from ..engine.backends import ModelInfo
from ..engine.schemas import TimelineRecognition
from ..engine.timeline import MAX_ENTITY_TIMES, TimelineOptions, build_timeline
from .store import Library, StoredWindows, VideoRow

ENTITIES_PER_MOMENT = 5
# Neighbouring windows within this many nats (logit units: cosine x the model's scale) of
# a moment's best window belong to it.
MOMENT_NATS = 2.0
MAX_CANDIDATES = 1000  # windows fetched per query before merging them into moments


def stored_timeline(
    info: ModelInfo,
    video: VideoRow,
    windows: StoredWindows,
    labels: Sequence[str],
    label_emb: np.ndarray,
    options: TimelineOptions,
    elapsed_s: float,
) -> TimelineRecognition:
    facts = video.facts
    planned = tuple(
        Window(float(a), float(b), (), tuple(float(t) for t in times))
        for a, b, times in zip(windows.start_s, windows.end_s, windows.times_s)
    )
    windowed = WindowedInfo(
        duration_s=facts["duration_s"], fps=facts["fps"], width=facts["coded_width"],
        height=facts["coded_height"], num_frames=facts["frames"], windows=planned,
        shots=tuple(tuple(s) for s in facts.get("shots", ())),
        warnings=tuple(facts.get("warnings", ())),
    )  # fmt: skip
    timings = {"decode_s": 0.0, "queue_s": 0.0, "inference_s": 0.0, "total_s": elapsed_s}
    return build_timeline(
        info, windowed, facts.get("rotation", 0), windows.clip_results(), labels, label_emb,
        options, timings,
    )  # fmt: skip


def query_scores(
    views: np.ndarray, query: np.ndarray, others: np.ndarray, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """views `(W, V, D)`, the query's embedding `(D,)`, the model's own labels `(L, D)` ->
    per window the probability of the query against those labels and the query's mean
    cosine over the views, `(W,)` each."""
    sim = views @ query  # (W, V)
    logits = scale * np.concatenate([sim[..., None], views @ others.T], axis=2)  # (W, V, 1+L)
    logits -= logits.max(axis=2, keepdims=True)
    probs = np.exp(logits)
    probs = probs[..., 0] / probs.sum(axis=2)
    return probs.mean(axis=1), sim.mean(axis=1)


def moments(
    rows: Sequence[dict[str, Any]],
    arrays: StoredWindows,
    query: np.ndarray,
    others: np.ndarray,
    info: ModelInfo,
    k: int,
    min_similarity: float | None,
) -> list[dict[str, Any]]:
    """The best `k` moments among candidate windows (`rows`, with their `arrays`).

    The best window not yet taken seeds a moment, which grows over its neighbouring
    windows (consecutive indices of the same video) while their similarity stays within
    `MOMENT_NATS` of the seed's, in the model's logit units: windows the model can hardly
    tell apart on this query are one moment, a drop ends it. A seed that overlaps a moment
    already found by half its length or more is a shoulder of that moment and is skipped.
    Each moment is ranked by its seed (its `score` and `similarity`) and names the
    entities aligned over all its windows."""
    if not rows:
        return []
    score, similarity = query_scores(arrays.views, query, others, info.logit_scale)
    margin = MOMENT_NATS / info.logit_scale
    at = {(r["video_id"], r["idx"]): i for i, r in enumerate(rows)}
    taken: set[int] = set()
    found: list[dict[str, Any]] = []
    spans: dict[str, list[tuple[float, float]]] = {}
    for seed in np.argsort(-similarity, kind="stable").tolist():
        if len(found) == k:
            break
        row = rows[seed]
        if seed in taken or (min_similarity is not None and similarity[seed] < min_similarity):
            continue
        a, b = row["start_s"], row["end_s"]
        if any(min(b, e) - max(a, s) >= (b - a) / 2 for s, e in spans.get(row["video_id"], ())):
            continue
        group = [seed]
        for step in (-1, 1):
            idx = row["idx"] + step
            while (j := at.get((row["video_id"], idx))) is not None and j not in taken:
                if similarity[j] < similarity[seed] - margin:
                    break
                group.append(j)
                idx += step
        taken.update(group)
        group.sort(key=lambda i: rows[i]["idx"])
        moment = _moment(row["video_id"], group, seed, rows, arrays, score, similarity, info)
        spans.setdefault(row["video_id"], []).append((moment["start_s"], moment["end_s"]))
        found.append(moment)
    return found


def _moment(video_id, group, best, rows, arrays, score, similarity, info) -> dict[str, Any]:
    totals: dict[int, float] = {}
    seen: dict[int, set[float]] = {}
    count = len(group) * arrays.entity_ids.shape[1]
    for i in group:
        for v in range(arrays.entity_ids.shape[1]):
            for eid, s in zip(
                arrays.entity_ids[i, v].tolist(), arrays.entity_scores[i, v].tolist()
            ):
                totals[eid] = totals.get(eid, 0.0) + s / count
        for t, regions in enumerate(arrays.regions(i)):
            for eid in set(regions.tolist()) - {-1}:
                seen.setdefault(eid, set()).add(float(arrays.times_s[i, t]))
    ranked = sorted((e for e in totals if totals[e] > 0), key=lambda e: -totals[e])
    entities = []
    for eid in ranked[:ENTITIES_PER_MOMENT]:
        times = sorted(seen.get(eid, ()))
        if len(times) > MAX_ENTITY_TIMES:
            pick = np.linspace(0, len(times) - 1, MAX_ENTITY_TIMES).round().astype(int)
            times = [times[j] for j in pick]
        entities.append({"name": info.entity_names[eid], "score": round(totals[eid], 6),
                         "times_s": times})  # fmt: skip
    return {
        "video_id": video_id,
        "start_s": round(min(rows[i]["start_s"] for i in group), 3),
        "end_s": round(max(rows[i]["end_s"] for i in group), 3),
        "score": round(float(score[best]), 6),
        "similarity": round(float(similarity[best]), 6),
        "windows": len(group),
        "entities": entities,
    }


def search_moments(
    library: Library,
    info: ModelInfo,
    queries: Sequence[str],
    query_emb: np.ndarray,
    own_emb: np.ndarray,
    k: int,
    video_id: str | None = None,
    min_similarity: float | None = None,
) -> list[dict[str, Any]]:
    """Each query's best `k` moments, in the order of the queries, each with the query and
    its video's name. `own_emb`: the model's own labels' embeddings (for `score`)."""
    candidates = min(MAX_CANDIDATES, max(64, 8 * k))
    found: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for text, vector in zip(queries, query_emb):
        rows, arrays = library.nearest(vector, candidates, video_id)
        if arrays is None:
            continue
        others = own_emb[[i for i, label in enumerate(info.default_labels) if label != text]]
        for m in moments(rows, arrays, vector, others, info, k, min_similarity):
            if m["video_id"] not in names:
                row = library.video(m["video_id"])
                names[m["video_id"]] = row.name if row else ""
            found.append({"query": text, "name": names[m["video_id"]], **m})
    return found


def relabel_options(
    video: VideoRow, smoothing: float, min_similarity: float | None, windows: bool, top_k: int
) -> TimelineOptions:
    """A question's options over the windows the video was indexed with."""
    o = video.options
    return TimelineOptions(o["window_s"], o["stride_s"], smoothing, min_similarity, o["shots"],
                           windows, top_k)  # fmt: skip
