"""A timeline that grows as windows arrive: the labels of `engine.timeline`, chosen online.

The offline timeline labels all windows at once by the path that maximizes the sum of
their log-probabilities minus `smoothing` per change of label (Viterbi). Online, the label
of a window is committed `lag` windows after it arrived: the best path from the last
committed label through every window seen so far is found again (O(lag x labels) per
window) and its first step is committed. A committed label never changes, so events can be
sent as they happen. With `lag` = 0 the label changes only when a window's log-probability
for another label beats the current one's by more than `smoothing` (hysteresis); as `lag`
grows the answer converges to the offline one (equal once `lag` spans the stream). Memory holds the uncommitted windows and the
open segment's running totals, never the stream.

Each window owns the time from the midpoint with its previous window's centre to the
midpoint with its next, as offline; a segment is a run of one committed label.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..engine.backends import ClipResult
from ..engine.timeline import MAX_ENTITY_TIMES, best_path, window_scores

RECENT_SEGMENTS = 50  # closed segments kept for GET /streams/{id}


@dataclass(frozen=True)
class AlertRule:
    label: str
    min_score: float | None = None
    min_similarity: float | None = None
    min_duration_s: float = 0.0


@dataclass
class _Window:
    start_s: float
    end_s: float
    times: tuple[float, ...]
    probs: np.ndarray  # (L[+1],)
    cosine: np.ndarray  # (L,)
    views: Sequence[ClipResult]


@dataclass
class _Segment:
    state: int
    start_s: float
    end_s: float = 0.0
    windows: int = 0
    score: float = 0.0  # sums over its windows
    similarity: float = 0.0
    entity_scores: dict[int, float] = field(default_factory=dict)
    entity_times: dict[int, list[float]] = field(default_factory=dict)
    views: int = 0
    alerted: set[int] = field(default_factory=set)


class OnlineTimeline:
    """`push(window)` -> the events it causes: ("segment", data) when a segment opens
    (`end_s` None) and when it closes, ("alert", data) when a rule is first met."""

    def __init__(
        self,
        labels: Sequence[str],
        label_emb: np.ndarray,
        logit_scale: float,
        entity_names: Sequence[str],
        *,
        window_s: float,
        stride_s: float,
        smoothing: float,
        min_similarity: float | None,
        lag: int,
        alerts: Sequence[AlertRule] = (),
    ) -> None:
        assert lag >= 0
        self.labels, self.label_emb, self.scale = list(labels), label_emb, logit_scale
        self.names = entity_names
        self.window_s, self.stride_s = window_s, stride_s
        self.smoothing, self.floor, self.lag = smoothing, min_similarity, lag
        self.alerts = list(alerts)
        self.none = len(self.labels) if min_similarity is not None else -1
        self._pending: list[_Window] = []  # arrived, not committed
        self._committed: int | None = None  # the last committed label
        self._last_end = 0.0  # the end of the last committed window
        self.segment: _Segment | None = None
        self.recent: list[dict] = []  # closed segments, newest last
        self.windows = 0  # windows pushed

    @property
    def lag_s(self) -> float:
        return self.lag * self.stride_s

    def push(self, start_s: float, end_s: float, times: Sequence[float],
             views: Sequence[ClipResult]) -> list[tuple[str, dict]]:  # fmt: skip
        probs, cosine = window_scores([views], self.label_emb, self.scale, self.floor)
        self._pending.append(_Window(start_s, end_s, tuple(times), probs[0], cosine[0], views))
        self.windows += 1
        events: list[tuple[str, dict]] = []
        while len(self._pending) > self.lag:
            events += self._commit(self._best_first())
        return events

    def flush(self) -> list[tuple[str, dict]]:
        """The source ended or was lost: commit what is pending and close the open segment
        (at the end of its last window's time); what comes next starts afresh."""
        events: list[tuple[str, dict]] = []
        while self._pending:
            events += self._commit(self._best_first())
        if self.segment is not None:  # the last window owns its time to its end
            events += self._close(self._last_end)
        self._committed = None
        return events

    def _best_first(self) -> int:
        """The label of the oldest pending window on the best path from the last commit."""
        logp = np.log(np.clip(np.stack([w.probs for w in self._pending]), 1e-12, None))
        if self._committed is not None:  # a first step that only the last label can take
            start = np.full((1, logp.shape[1]), -1e9)
            start[0, self._committed] = 0.0
            return int(best_path(np.concatenate([start, logp]), self.smoothing)[1])
        return int(best_path(logp, self.smoothing)[0])

    def _bound(self, w: _Window) -> float:
        """Where the time `w` owns begins: the midpoint of its and its predecessor's centres."""
        if w.start_s <= 0:
            return 0.0
        return round(w.start_s + (self.window_s - self.stride_s) / 2, 3)

    def _commit(self, state: int) -> list[tuple[str, dict]]:
        w = self._pending.pop(0)
        self._committed, self._last_end = state, w.end_s
        events: list[tuple[str, dict]] = []
        seg = self.segment
        if seg is not None and seg.state != state:
            events += self._close(self._bound(w))
            seg = None
        opened = seg is None
        if seg is None:
            seg = self.segment = _Segment(state, self._bound(w))
        seg.end_s = round(w.start_s + (self.window_s + self.stride_s) / 2, 3)
        seg.windows += 1
        seg.score += float(w.probs[state])
        seg.similarity += (
            float(self.floor)
            if state == self.none and self.floor is not None
            else float(w.cosine[state])
        )
        self._add_entities(seg, w)
        if opened and state != self.none:
            events.append(("segment", self.describe(seg, open_=True)))
        events += self._check_alerts(seg)
        return events

    def _add_entities(self, seg: _Segment, w: _Window) -> None:
        for v in w.views:
            for eid, score in zip(v.entity_ids.tolist(), v.entity_scores.tolist()):
                seg.entity_scores[eid] = seg.entity_scores.get(eid, 0.0) + float(score)
            seg.views += 1
        regions = w.views[0].region_entities  # (T, R): where each entity was aligned
        for t, row in zip(w.times, regions):
            for eid in set(row.tolist()):
                if eid in seg.entity_scores:
                    found = seg.entity_times.setdefault(eid, [])
                    i = bisect.bisect_left(found, t)
                    if i == len(found) or found[i] != t:  # windows overlap: times repeat
                        found.insert(i, t)
                        if len(found) > 4 * MAX_ENTITY_TIMES:  # evenly thinned, bounded
                            del found[1:-1:2]

    def _close(self, end_s: float) -> list[tuple[str, dict]]:
        seg = self.segment
        assert seg is not None
        seg.end_s = end_s
        self.segment = None
        body = self.describe(seg)
        self.recent = [*self.recent, body][-RECENT_SEGMENTS:]
        return [] if seg.state == self.none else [("segment", body)]

    def _check_alerts(self, seg: _Segment) -> list[tuple[str, dict]]:
        if seg.state == self.none:
            return []
        events = []
        label = self.labels[seg.state]
        for i, rule in enumerate(self.alerts):
            if i in seg.alerted or rule.label != label:
                continue
            if rule.min_score is not None and seg.score / seg.windows < rule.min_score:
                continue
            if (
                rule.min_similarity is not None
                and seg.similarity / seg.windows < rule.min_similarity
            ):
                continue
            if seg.end_s - seg.start_s < rule.min_duration_s:
                continue
            seg.alerted.add(i)
            events.append(("alert", {"rule": i, "label": label,
                                     "segment": self.describe(seg, open_=True)}))  # fmt: skip
        return events

    def describe(self, seg: _Segment, open_: bool = False) -> dict:
        top = sorted(seg.entity_scores.items(), key=lambda kv: -kv[1])[:5]
        entities = []
        for eid, total in top:
            times = seg.entity_times.get(eid, [])
            if len(times) > MAX_ENTITY_TIMES:
                pick = np.linspace(0, len(times) - 1, MAX_ENTITY_TIMES).round().astype(int)
                times = [times[i] for i in pick]
            entities.append({"name": self.names[eid], "score": round(total / max(seg.views, 1), 6),
                             "times_s": times})  # fmt: skip
        return {
            "label": None if seg.state == self.none else self.labels[seg.state],
            "start_s": seg.start_s,
            "end_s": None if open_ else seg.end_s,
            "score": round(seg.score / seg.windows, 6),
            "similarity": round(seg.similarity / seg.windows, 6),
            "windows": seg.windows,
            "entities": entities,
        }

    def current(self) -> dict | None:
        return None if self.segment is None else self.describe(self.segment, open_=True)
