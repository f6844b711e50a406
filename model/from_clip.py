"""ALT from real CLIP weights, with no video read: `alt init`.

At initialization ALT is CLIP mean pooling (the adapter's output layer starts at zero) plus
region alignment against an entity corpus: already a zero-shot video classifier that
explains itself. This writes such a checkpoint for any preset, from an open_clip pretrained
tag or a local weights file, with the real-world corpus and a named label set whose
embeddings are computed here once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from . import catalog
from .catalog import presets_help
from .checkpoint import STORED_DTYPES, build_alt, save_checkpoint
from .clip import arch_config
from .config import PRESETS, preset
from .corpus import Entity

# A small zero-shot ensemble in the style of CLIP's action-recognition prompts.
INIT_LABEL_TEMPLATES: tuple[str, ...] = (
    "a photo of a person {}.",
    "a photo of a person doing {}.",
    "a photo of a person performing {}.",
    "a photo of {}.",
    "a video of a person {}.",
    "a video of a person doing {}.",
    "a video of a person performing {}.",
    "a video of {}.",
)
INIT_ENTITY_TEMPLATES: tuple[str, ...] = ("a photo of a {}.", "a photo of the {}.", "a {}.")


class InitError(ValueError):
    """What the user asked for cannot be built; the message says what would work."""


def _vision_shape(arch: str) -> tuple[int, int, int]:
    v = arch_config(arch)["vision_cfg"]
    return v["width"], v["patch_size"], v["image_size"]


def guess_preset(weights: Path) -> str | None:
    """Which preset a weights file looks like, from its patch embedding and positions."""
    try:
        if weights.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: dict = load_file(str(weights))
        else:
            loaded = torch.load(weights, map_location="cpu", weights_only=True)
            state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else {}
    except Exception:  # noqa: BLE001 - unreadable: no guess
        return None
    state = {k.removeprefix("module."): v for k, v in state.items()}
    conv, pos = state.get("visual.conv1.weight"), state.get("visual.positional_embedding")
    if conv is None or pos is None:
        return None
    width, patch = conv.shape[0], conv.shape[-1]
    side = round((pos.shape[0] - 1) ** 0.5) * patch
    for name in PRESETS:
        try:
            if _vision_shape(PRESETS[name].clip_arch) == (width, patch, side):
                return name
        except ValueError:
            continue
    return None


def init_checkpoint(
    out: Path,
    preset_name: str,
    pretrained: str | None,
    dtype: str = "fp32",
    entities: Sequence[Entity] | None = None,
    label_set: str = "kinetics400",
    merge_r: int | None = None,
) -> dict:
    """Write an ALT checkpoint that serves at once; returns a summary of what it holds."""
    if preset_name not in PRESETS:
        raise InitError(f"unknown preset {preset_name!r}; {presets_help(one_line=True)}")
    if dtype not in STORED_DTYPES:
        raise InitError(f"unknown dtype {dtype!r}; choose fp32, fp16 or bf16")
    labels = catalog.label_set(label_set)  # KeyError names the sets
    config = preset(preset_name).replace(
        label_templates=INIT_LABEL_TEMPLATES, entity_templates=INIT_ENTITY_TEMPLATES
    )
    if merge_r is not None:
        config = config.replace(merge_r=merge_r)
    weights = Path(pretrained) if pretrained and Path(pretrained).suffix else None
    if weights is not None and not weights.is_file():
        raise InitError(f"weights file not found: {weights}")
    entities = list(entities) if entities is not None else catalog.real_world_entities()
    try:
        model, corpus = build_alt(config, pretrained, entities)
    except (RuntimeError, AssertionError, KeyError):
        # open_clip: size mismatches, missing keys, or its own asserts on resized embeddings
        if weights is None:
            raise
        looks = guess_preset(weights)
        hint = f"; they look like preset {looks} ({PRESETS[looks].clip_arch})" if looks else ""
        raise InitError(
            f"the weights in {weights} do not fit preset {preset_name} ({config.clip_arch}){hint}"
        ) from None
    model.eval()
    with torch.no_grad():
        label_emb = model.encode_labels(labels)
    card = {
        "domain": "real videos: CLIP zero-shot (ALT at initialization, no video training)",
        "pretrained": str(pretrained) if pretrained else "random (no weights)",
        "label_set": label_set,
        "entities": len(corpus),
    }
    save_checkpoint(out, model, corpus, labels, dtype=dtype, card=card, label_embeddings=label_emb)
    size = sum(f.stat().st_size for f in Path(out).iterdir() if f.is_file())
    return {**card, "preset": preset_name, "dtype": dtype, "labels": len(labels), "bytes": size}
