"""Building ALT models and saving/loading checkpoint directories.

A checkpoint is one directory:

    config.json          ALTConfig (includes the label and entity prompt templates)
    model.safetensors    all weights: CLIP, adapter, alpha
    corpus.json          the entities
    corpus.safetensors   their (E, D) text embeddings
    labels.json          the default label set
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .alt import ALT
from .clip import create_clip
from .config import ALTConfig
from .corpus import BODY_PARTS, Entity, EntityCorpus, build_corpus

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint directory that is incomplete or does not match its config."""


@dataclass
class Bundle:
    """A loaded model with what travels with it."""

    model: ALT
    corpus: EntityCorpus
    labels: list[str]


def build_alt(
    config: ALTConfig,
    pretrained: str | None = None,
    entities: Sequence[Entity] | None = None,
) -> tuple[ALT, EntityCorpus]:
    """A fresh ALT model: CLIP from open_clip (`pretrained` tag, local file, or random) and a
    corpus embedded with its own text encoder (body parts when no entities are given)."""
    clip = create_clip(config.clip_arch, pretrained)
    dim = clip.visual.output_dim
    model = ALT(config, clip, torch.zeros(1, dim))
    entities = list(entities) if entities else [Entity(p, kind="body part") for p in BODY_PARTS]
    with torch.no_grad():
        corpus = build_corpus(entities, model.encode_strings, config.entity_templates)
    model.entities = corpus.embeddings.clone()
    return model, corpus


def save_checkpoint(
    directory: Path, model: ALT, corpus: EntityCorpus, labels: Sequence[str]
) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = model.config.to_dict()
    (directory / "config.json").write_text(
        json.dumps({"format_version": FORMAT_VERSION, "alt": config}, indent=2) + "\n"
    )
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(directory / "model.safetensors"), metadata={"format_version": "1"})
    corpus.save(directory)
    (directory / "labels.json").write_text(json.dumps(list(labels), indent=1) + "\n")


def read_config(directory: Path) -> ALTConfig:
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{directory} is not an ALT checkpoint: config.json is missing")
    data = json.loads(path.read_text())
    if data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: unsupported format_version {data.get('format_version')!r}")
    return ALTConfig.from_dict(data["alt"])


def load_checkpoint(directory: Path, map_location: str | torch.device = "cpu") -> Bundle:
    """Load strictly: a missing or unexpected tensor is an error that names it."""
    directory = Path(directory)
    config = read_config(directory)
    for name in ("model.safetensors", "corpus.json", "corpus.safetensors", "labels.json"):
        if not (directory / name).is_file():
            raise CheckpointError(f"{directory} is incomplete: {name} is missing")
    corpus = EntityCorpus.load(directory)
    labels = json.loads((directory / "labels.json").read_text())
    model = ALT(config, create_clip(config.clip_arch), corpus.embeddings)
    state = load_file(str(directory / "model.safetensors"))
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"{directory / 'model.safetensors'} does not match {config.clip_arch}: "
            f"missing tensors {missing}, unexpected tensors {unexpected}"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:  # shape mismatches
        raise CheckpointError(f"{directory / 'model.safetensors'}: {err}") from err
    return Bundle(model.to(map_location).eval(), corpus, labels)
