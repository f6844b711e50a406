"""Building ALT models and saving/loading checkpoint directories.

A checkpoint is one directory:

    config.json          ALTConfig (includes the label and entity prompt templates)
    model.safetensors    all weights: CLIP, adapter, alpha
    corpus.json          the entities
    corpus.safetensors   their (E, D) text embeddings
    labels.json          the default label set
    labels.safetensors   optional: its (L, D) embeddings under the config's label templates

`config.json` may also hold a `card`: what the model knows (`domain`), where its weights
came from, its label set. Weights may be stored in fp16 or bf16 (`dtype`); they load into
an fp32 model either way.

A comparison model that pools frames another way (the training baseline) is stored the same
way, with its own tensors under `head.` and `config.json`'s `head` naming it: it loads only
where asked for (`with_head`, what `alt evaluate` does); the server refuses it by name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .alt import ALT
from .clip import create_clip
from .config import ALTConfig
from .contract import ModelMeta
from .corpus import BODY_PARTS, Entity, EntityCorpus, build_corpus

FORMAT_VERSION = 1
HEAD_PREFIX = "head."


class CheckpointError(ValueError):
    """A checkpoint directory that is incomplete or does not match its config."""


@dataclass
class Bundle:
    """A loaded model with what travels with it."""

    model: ALT
    corpus: EntityCorpus
    labels: list[str]
    card: dict = field(default_factory=dict)
    label_embeddings: torch.Tensor | None = None  # (L, D) for `labels`, when stored
    head: dict | None = None  # a comparison model's own config (`with_head` only)
    head_state: dict[str, torch.Tensor] = field(default_factory=dict)

    def meta(self, version: str, context_length: int = 77) -> ModelMeta:
        """The serving contract's facts of this model (`version`: the directory's name)."""
        alt, cfg = self.model, self.model.config
        return ModelMeta(
            name=cfg.name, version=version, clip_arch=cfg.clip_arch, frames=cfg.frames,
            image_size=cfg.image_size, clips=cfg.test_clips, crops=cfg.test_crops,
            grid=tuple(alt.grid_size), entity_names=tuple(self.corpus.names),
            default_labels=tuple(self.labels), label_templates=tuple(cfg.label_templates),
            logit_scale=float(alt.logit_scale().detach()), card=dict(self.card),
            context_length=context_length,
        )  # fmt: skip


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


STORED_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def save_checkpoint(
    directory: Path,
    model: ALT,
    corpus: EntityCorpus,
    labels: Sequence[str],
    dtype: str = "fp32",
    card: dict | None = None,
    label_embeddings: torch.Tensor | None = None,
    head: tuple[dict, dict[str, torch.Tensor]] | None = None,
) -> None:
    """`dtype` stores floating weights in fp16 or bf16 (half the bytes); `card` says what the
    model knows; `label_embeddings` `(L, D)` spare the server encoding `labels` at start;
    `head` (config, tensors) stores a comparison model's own part beside ALT's."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = model.config.to_dict()
    top = {"format_version": FORMAT_VERSION, "alt": config}
    if head:
        top["head"] = head[0]
    if card:
        top["card"] = card
    (directory / "config.json").write_text(json.dumps(top, indent=2) + "\n")
    store = STORED_DTYPES[dtype]
    tensors = dict(model.state_dict())
    if head:
        tensors |= {HEAD_PREFIX + k: v for k, v in head[1].items()}
    state = {
        k: (v.to(store) if v.is_floating_point() else v).detach().contiguous().cpu()
        for k, v in tensors.items()
    }
    save_file(state, str(directory / "model.safetensors"), metadata={"dtype": dtype})
    corpus.save(directory)
    (directory / "labels.json").write_text(json.dumps(list(labels), indent=1) + "\n")
    cached = directory / "labels.safetensors"
    if label_embeddings is not None:
        assert label_embeddings.shape[0] == len(labels), "one embedding per label"
        meta = {"templates": json.dumps(list(model.config.label_templates))}
        save_file({"embeddings": label_embeddings.float().contiguous().cpu()}, str(cached), meta)
    elif cached.exists():
        cached.unlink()


def read_config(directory: Path) -> ALTConfig:
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{directory} is not an ALT checkpoint: config.json is missing")
    data = json.loads(path.read_text())
    if data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: unsupported format_version {data.get('format_version')!r}")
    return ALTConfig.from_dict(data["alt"])


def load_checkpoint(
    directory: Path, map_location: str | torch.device = "cpu", with_head: bool = False
) -> Bundle:
    """Load strictly: a missing or unexpected tensor is an error that names it. A comparison
    model's checkpoint (a `head`) loads only `with_head`."""
    directory = Path(directory)
    config = read_config(directory)
    for name in ("model.safetensors", "corpus.json", "corpus.safetensors", "labels.json"):
        if not (directory / name).is_file():
            raise CheckpointError(f"{directory} is incomplete: {name} is missing")
    top = json.loads((directory / "config.json").read_text())
    head = top.get("head")
    if head is not None and not with_head:
        raise CheckpointError(
            f"{directory} holds a {head.get('kind', 'comparison')} model "
            f"({head.get('about', 'not ALT')}), for alt evaluate; serve an ALT checkpoint"
        )
    corpus = EntityCorpus.load(directory)
    labels = json.loads((directory / "labels.json").read_text())
    card = top.get("card", {})
    model = ALT(config, create_clip(config.clip_arch), corpus.embeddings)
    state = load_file(str(directory / "model.safetensors"))
    head_state = {k[len(HEAD_PREFIX):]: state.pop(k) for k in list(state)
                  if k.startswith(HEAD_PREFIX)}  # fmt: skip
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
    return Bundle(
        model.to(map_location).eval(),
        corpus,
        labels,
        card,
        _label_embeddings(directory, config),
        head,
        head_state,
    )


def _label_embeddings(directory: Path, config: ALTConfig) -> torch.Tensor | None:
    """The stored default-label embeddings, if made with this config's templates."""
    path = directory / "labels.safetensors"
    if not path.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        templates = json.loads((f.metadata() or {}).get("templates", "[]"))
        if tuple(templates) != tuple(config.label_templates):
            return None
        return f.get_tensor("embeddings")
