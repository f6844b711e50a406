"""ALT model configuration: one frozen dataclass, saved next to the weights, and named presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .contract import ClipShape

# The label prompts of the video-CLIP literature; averaged per label (docs/design.md §5).
DEFAULT_LABEL_TEMPLATES: tuple[str, ...] = (
    "a video of a person {}.",
    "a photo of a person {}.",
    "a person is {}.",
    "a video of {}.",
)

# Entity prompts: entities are visual units (objects, body parts, scenes), not actions.
DEFAULT_ENTITY_TEMPLATES: tuple[str, ...] = (
    "a photo of {}.",
    "a video frame showing {}.",
)


# Fields of earlier versions (experiments that did not help; docs/results.md keeps what
# they measured), with the value that switched each off.
_RETIRED = {"merge_inflection": 0.0, "adapter_frame_tokens": False,
            "adapter_temporal_layers": 0, "temporal_branch_layers": 0}  # fmt: skip


@dataclass(frozen=True)
class ALTConfig:
    """Everything needed to rebuild an ALT model around an open_clip architecture."""

    name: str  # preset or user-given name, reported by the server
    clip_arch: str  # open_clip model name, e.g. "ViT-B-16"
    image_size: int = 224  # square input side; must match the architecture's
    frames: int = 8  # T frames sampled per clip (TSN segments)
    # Token merging (docs/design.md §1): `merge_r` tokens per layer, or `merge_schedule` (r per
    # layer) when non-empty.
    merge_r: int = 8
    merge_schedule: tuple[int, ...] = ()
    prop_attn: bool = True  # add log(size) of the key to attention logits
    tau: float = 0.05  # alignment temperature on cosine similarities (ours)
    top_k: int = 16  # aligned entities per clip that query the adapter (ours)
    adapter_layers: int = 4  # video adapter depth (ours)
    adapter_head_dim: int = 64  # heads = D / head_dim (ours)
    adapter_mlp_ratio: float = 4.0
    # Learnable gate on the adapter. The adapter's output layer starts at zero, so ALT equals
    # CLIP mean pooling at start whatever alpha is; alpha must not be 0, or no gradient flows.
    alpha_init: float = 1.0
    # A learned D x D map on label embeddings, identity at start (ours; off = the paper's fixed
    # text side). For text encoders that never saw action words, as in the generated world.
    label_proj: bool = False
    test_clips: int = 3  # temporal views at inference
    test_crops: int = 1  # spatial views at inference
    label_templates: tuple[str, ...] = field(default=DEFAULT_LABEL_TEMPLATES)
    entity_templates: tuple[str, ...] = field(default=DEFAULT_ENTITY_TEMPLATES)

    def __post_init__(self) -> None:
        assert self.frames >= 1, f"frames must be >= 1, got {self.frames}"
        assert self.merge_r >= 0, f"merge_r must be >= 0, got {self.merge_r}"
        assert all(r >= 0 for r in self.merge_schedule), "merge_schedule entries must be >= 0"
        assert self.tau > 0, f"tau must be > 0, got {self.tau}"
        assert self.alpha_init != 0, (
            "alpha_init = 0 starves the zero-initialized adapter of gradients"
        )
        assert self.top_k >= 1, f"top_k must be >= 1, got {self.top_k}"
        assert self.test_clips >= 1 and self.test_crops >= 1, "views must be >= 1"
        assert self.label_templates and all("{}" in t for t in self.label_templates), (
            "every label template needs a '{}' placeholder"
        )
        assert self.entity_templates and all("{}" in t for t in self.entity_templates), (
            "every entity template needs a '{}' placeholder"
        )

    @property
    def views(self) -> int:
        return self.test_clips * self.test_crops

    @property
    def clip_shape(self) -> ClipShape:
        """What a served video becomes for this model (the test views)."""
        return ClipShape(self.frames, self.image_size, self.test_clips, self.test_crops)

    def replace(self, **changes: Any) -> ALTConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ALTConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        data = dict(data)
        for name, inert in _RETIRED.items():  # older checkpoints store them, switched off
            if name in data and data.pop(name) != inert:
                raise ValueError(f"this checkpoint uses {name}, which this version no longer has")
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown ALTConfig fields: {unknown}")
        tuples = {"merge_schedule", "label_templates", "entity_templates"}
        values: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in data.items()}
        return cls(**values)


# Named presets are data. `tiny` is our own open_clip architecture (model/archs/ALT-tiny.json)
# sized for tests; the others name open_clip's stock ViTs.
PRESETS: dict[str, ALTConfig] = {
    "tiny": ALTConfig(
        name="tiny",
        clip_arch="ALT-tiny",
        image_size=64,
        frames=4,
        merge_r=4,
        top_k=8,
        adapter_layers=1,
        adapter_head_dim=32,
        test_clips=1,
    ),
    # The shipped default model, trained on the generated action world (training/).
    "demo": ALTConfig(
        name="demo",
        clip_arch="ALT-demo",
        image_size=96,
        frames=8,
        merge_r=4,
        top_k=16,  # every entity of the generated world
        adapter_layers=2,
        adapter_head_dim=32,
        label_proj=True,
        test_clips=1,
        label_templates=("a video of a person {}.", "a person {}.", "{}"),
        entity_templates=("a photo of a {}.", "a {}."),
    ),
    # 49 patches at 224: r = 2 over 12 layers keeps 26 tokens.
    "B/32": ALTConfig(name="B/32", clip_arch="ViT-B-32", merge_r=2),
    # The paper's ALT-B/16 cost: r = 8 over 12 layers, 197 -> 101 tokens.
    "B/16": ALTConfig(name="B/16", clip_arch="ViT-B-16", merge_r=8),
    # 257 tokens over 24 layers: r = 8 keeps 65.
    "L/14": ALTConfig(name="L/14", clip_arch="ViT-L-14", merge_r=8),
    # 577 tokens over 24 layers: r = 16 keeps 193.
    "L/14-336": ALTConfig(name="L/14-336", clip_arch="ViT-L-14-336", image_size=336, merge_r=16),
}


def preset(name: str) -> ALTConfig:
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]
