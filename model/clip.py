"""The CLIP backbone: open_clip builds the model and loads its weights; we never do it by hand."""

from __future__ import annotations

import contextlib
import functools
import logging
from pathlib import Path
from typing import Any

import open_clip
import torch
from torch import nn

ARCH_DIR = Path(__file__).parent / "archs"


@functools.cache
def _register_archs() -> None:
    # Our small architectures (tests, the shipped demo model) live next to this file.
    open_clip.add_model_config(ARCH_DIR)


def arch_config(arch: str) -> dict[str, Any]:
    """open_clip's architecture dict (`embed_dim`, `vision_cfg`, `text_cfg`)."""
    _register_archs()
    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        raise ValueError(f"unknown open_clip architecture {arch!r}")
    return cfg


class _DropRandomInitNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()


@contextlib.contextmanager
def _quiet_random_init():
    # open_clip warns on every random init; ours are deliberate (weights load right after).
    flt = _DropRandomInitNotice()
    logging.getLogger().addFilter(flt)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(flt)


def create_clip(arch: str, pretrained: str | None = None, device: str = "cpu") -> nn.Module:
    """Build an open_clip CLIP model.

    `pretrained` is an open_clip pretrained tag (needs internet on first use), a path to a
    local checkpoint file (an open_clip state dict), or None for random initialization.
    """
    arch_config(arch)  # clear error for unknown names before open_clip's own
    if (
        pretrained
        and ("/" in pretrained or Path(pretrained).suffix)
        and not Path(pretrained).is_file()
    ):
        raise FileNotFoundError(f"CLIP weights file not found: {pretrained}")
    if pretrained:
        return open_clip.create_model(arch, pretrained=pretrained, device=device)
    with _quiet_random_init():
        return open_clip.create_model(arch, device=device)


# OpenAI CLIP's pixel statistics, for towers whose config names none.
_MEAN = (0.48145466, 0.4578275, 0.40821073)
_STD = (0.26862954, 0.26130258, 0.27577711)


def pixel_stats(visual: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The image tower's normalization: mean and std, each a `(3,)` tensor."""
    return torch.tensor(visual.image_mean or _MEAN), torch.tensor(visual.image_std or _STD)


def tokenizer(arch: str):
    """open_clip's tokenizer for `arch`: strings -> `(N, context_length)` int64 token ids."""
    _register_archs()
    return open_clip.get_tokenizer(arch)
