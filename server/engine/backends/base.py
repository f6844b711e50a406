"""What the server needs from a model runtime: videos in, embeddings and explanations out."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from model.contract import ModelMeta


@dataclass(frozen=True, kw_only=True)
class ModelInfo(ModelMeta):
    """The served model: the contract's facts, and where and how it runs."""

    backend: str
    device: str
    dtype: str

    @classmethod
    def of(cls, meta: ModelMeta, backend: str, device: str, dtype: str) -> ModelInfo:
        fields = {f.name: getattr(meta, f.name) for f in dataclasses.fields(ModelMeta)}
        return cls(**fields, backend=backend, device=device, dtype=dtype)

    @property
    def domain(self) -> str:
        return self.card.get("domain", "unknown (this checkpoint does not say)")


@dataclass
class ClipResult:
    """One view of one video."""

    embedding: np.ndarray  # (D,) normalized
    entity_ids: np.ndarray  # (K,) strongest first
    entity_scores: np.ndarray  # (K,)
    region_entities: np.ndarray  # (T, R) entity id per region
    patch_entities: np.ndarray | None  # (T, P) entity id per patch, with explain=regions


class Backend(Protocol):
    info: ModelInfo

    def encode_video(self, frames: np.ndarray, explain_regions: bool) -> list[ClipResult]:
        """uint8 `(N, T, 3, H, W)` clips -> one result per clip."""
        ...

    def encode_labels(self, labels: Sequence[str]) -> np.ndarray:
        """Label embeddings `(L, D)`, normalized, averaged over the model's templates."""
        ...

    def stored_label_embeddings(self) -> np.ndarray | None:
        """The default labels' embeddings as the checkpoint stores them, if it does."""
        ...


def split_results(
    embedding: np.ndarray,
    ids: np.ndarray,
    scores: np.ndarray,
    regions: np.ndarray,
    patches: np.ndarray | None,
) -> list[ClipResult]:
    return [
        ClipResult(
            embedding[i], ids[i], scores[i], regions[i], None if patches is None else patches[i]
        )
        for i in range(embedding.shape[0])
    ]
