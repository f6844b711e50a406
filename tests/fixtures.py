"""Constants and builders shared by tests."""

from pathlib import Path

import torch

from model import ALTConfig, Entity, build_alt, preset, save_checkpoint

LABELS = [
    "waving",
    "clapping",
    "jumping",
    "kicking a ball",
    "throwing a ball",
    "drinking from a cup",
]
ENTITIES = [
    "hand",
    "arm",
    "leg",
    "head",
    "ball",
    "cup",
    "box",
    "grass",
    "floor",
    "red",
    "blue",
    "sky",
]


def save_tiny_checkpoint(path: Path, config: ALTConfig | None = None) -> Path:
    """A tiny ALT (seed 0, alpha 0.5, a speaking adapter) with the ENTITIES corpus, saved."""
    torch.manual_seed(0)
    config = config or preset("tiny").replace(alpha_init=0.5)
    model, corpus = build_alt(config, entities=[Entity(n) for n in ENTITIES])
    torch.nn.init.normal_(model.adapter.proj.weight, std=0.1)  # as if trained: the adapter speaks
    save_checkpoint(path, model, corpus, LABELS)
    return path
