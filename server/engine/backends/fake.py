"""A deterministic model with no weights and no torch, for tests of everything around the
model: routes, errors, admission, batching, jobs. Its answers are a pure function of the
pixels and the label text, so two runs, or two servers, answer alike.

A video's embedding is its mean colour per channel and sampled frame, mapped through a
fixed random projection; a label's is a random vector seeded by the label's text. The
regions are a 2 x 2 grid of cells, each aligned to its dominant colour, or to "dark" or
"bright" by its mean. Nothing here means anything about actions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from model.contract import ModelMeta

from .base import ClipResult, ModelInfo

META = ModelMeta(
    name="fake",
    version="fake",
    clip_arch="none",
    frames=4,
    image_size=32,
    clips=1,
    crops=1,
    grid=(2, 2),
    entity_names=("red", "green", "blue", "dark", "bright"),
    default_labels=("waving", "jumping", "running", "sitting"),
    label_templates=("a video of a person {}.",),
    logit_scale=50.0,
    card={"domain": "nothing: a deterministic stand-in for tests"},
)
DIM = 16


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


class FakeBackend:
    def __init__(self, meta: ModelMeta = META) -> None:
        self.info = ModelInfo.of(meta, "fake", "cpu", "fp32")
        features = 3 * meta.frames
        self._proj = np.random.default_rng(0).standard_normal((features, DIM))

    def encode_video(self, frames: np.ndarray, explain_regions: bool) -> list[ClipResult]:
        """uint8 `(N, T, 3, H, W)` -> one result per clip."""
        n, t, _, h, w = frames.shape
        gh, gw = self.info.grid
        x = frames.astype(np.float32) / 255.0
        means = x.mean(axis=(3, 4)).reshape(n, -1)  # (N, T*3)
        emb = _unit(means @ self._proj + 1e-6)
        # Regions: the grid's cells; each cell's entity is its dominant channel, or
        # dark/bright by its mean.
        cells = x.reshape(n, t, 3, gh, h // gh, gw, w // gw).mean(axis=(4, 6))  # (N,T,3,gh,gw)
        cells = cells.reshape(n, t, 3, gh * gw).transpose(0, 1, 3, 2)  # (N, T, R, 3)
        level = cells.mean(axis=-1)
        region = np.where(level < 0.2, 3, np.where(level > 0.8, 4, cells.argmax(axis=-1)))
        out = []
        for i in range(n):
            counts = np.bincount(region[i].reshape(-1), minlength=len(self.info.entity_names))
            ids = np.argsort(-counts, kind="stable")[:3]
            scores = counts[ids] / counts.sum()
            patches = None
            if explain_regions:
                patches = region[i]  # one patch per region: the grid is the patch grid
            out.append(ClipResult(emb[i], ids, scores.astype(np.float32), region[i], patches))
        return out

    def encode_labels(self, labels: Sequence[str]) -> np.ndarray:
        rows = []
        for label in labels:
            seed = int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "little")
            rows.append(np.random.default_rng(seed).standard_normal(DIM))
        return _unit(np.stack(rows)).astype(np.float32)

    def stored_label_embeddings(self) -> None:
        return None
