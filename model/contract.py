"""The serving contract: what a model carries for a runtime, written once here and read by
both sides. export/ writes it into `meta.json` beside the ONNX graphs; the server's backends
read it from there (ONNX Runtime, TensorRT) or build it from a checkpoint (PyTorch). Imports
neither torch nor open_clip, so a server without PyTorch reads it too.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# The exported graphs' inputs and outputs, in order.
VIDEO_INPUT = "frames"  # uint8 (B, T, 3, H, W)
VIDEO_OUTPUTS = ("embedding", "entity_ids", "entity_scores", "region_entities", "patch_entities")
TEXT_INPUT = "tokens"  # int64 (N, context)
TEXT_OUTPUTS = ("text_embedding",)


@dataclass(frozen=True)
class ClipShape:
    """What one video becomes for a model: `clips` x `crops` views, each `frames` frames of
    `size` x `size` pixels. The decoder produces it; the model consumes it."""

    frames: int
    size: int
    clips: int = 1  # temporal views
    crops: int = 1  # spatial views

    @property
    def views(self) -> int:
        return self.clips * self.crops


@dataclass(frozen=True)
class ModelMeta:
    """What a runtime needs besides the weights."""

    name: str
    version: str  # the checkpoint directory's name
    clip_arch: str
    frames: int  # T frames per clip
    image_size: int
    clips: int  # temporal views per video
    crops: int  # spatial views per video
    grid: tuple[int, int]  # patch grid of a frame
    entity_names: tuple[str, ...]
    default_labels: tuple[str, ...]
    label_templates: tuple[str, ...]
    logit_scale: float
    card: dict = field(default_factory=dict)  # what the model knows (`domain`), its sources
    context_length: int = 77  # the text graph's token count

    @property
    def clip_shape(self) -> ClipShape:
        return ClipShape(self.frames, self.image_size, self.clips, self.crops)

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelMeta:
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(n for n in names - set(data) if n not in ("card", "context_length"))
        if missing:
            raise ValueError(f"meta.json lacks {', '.join(missing)}")
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names
        }
        return cls(**values)


def label_head(
    prompt_features: np.ndarray, label_map: tuple[np.ndarray, np.ndarray] | None = None
) -> np.ndarray:
    """Label embeddings `(L, D)` from the text tower's features of each label's prompts
    `(L, templates, D)`: averaged over the templates, normalized, through the label map
    (`x W^T + b`) when the model has one, normalized again. `ALT.project_labels` after
    `ALT.label_features` computes the same in torch (tested equal)."""
    feats = prompt_features.mean(axis=1)
    feats = feats / np.linalg.norm(feats, axis=-1, keepdims=True)
    if label_map is not None:
        weight, bias = label_map
        feats = feats @ weight.T + bias
        feats = feats / np.linalg.norm(feats, axis=-1, keepdims=True)
    return feats
