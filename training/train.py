"""What ALT and the baseline train: the embedders, the parameters that learn (frozen text
encoder, lower backbone LR), the losses (cross-entropy on scaled cosine scores, the region
and label-entity terms), the label map's placement and its stage. The loop is
`trainer.train`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset
from tqdm import tqdm

from model.alt import ALT

from .evaluate import embed
from .pretrain import patch_entity_targets, region_loss


class Dense(NamedTuple):
    """A video embedding with what the region term needs."""

    embedding: Tensor  # (B, D) normalized
    regions: Tensor  # (B, T, R, D)
    sources: Tensor | None  # (B, T, R, P) patches of each region; None: one patch each


class ALTVideo(nn.Module):
    """ALT as a video embedder. The embedders trained here (this and the baseline in
    baseline.py) share two methods: `video_embedding` and `dense_embedding`."""

    def __init__(self, alt: ALT) -> None:
        super().__init__()
        self.alt = alt

    def video_embedding(self, frames: Tensor, gumbel: bool = False) -> Tensor:
        """Normalized frames `(B, T, 3, H, W)` -> `(B, D)`."""
        return self.alt.encode_video(frames, gumbel=gumbel).embedding

    def dense_embedding(self, frames: Tensor, gumbel: bool = False) -> Dense:
        out = self.alt.encode_video(frames, track_source=True, gumbel=gumbel)
        return Dense(out.embedding, out.regions, out.sources)


class _Forward(nn.Module):
    # DDP wraps `forward`; the embedders expose `video_embedding` and `dense_embedding`.
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, frames: Tensor, gumbel: bool, dense: bool = False) -> Dense:
        if dense:
            return self.inner.dense_embedding(frames, gumbel)
        return Dense(self.inner.video_embedding(frames, gumbel), None, None)


@dataclass
class TrainConfig:
    epochs: int = 8
    batch_size: int = 16  # clips per step and process (the global batch: x accum x processes)
    lr: float = 1e-3  # the head (ALT's adapter, the baseline's temporal transformer)
    backbone_lr_scale: float = 0.1  # the CLIP image tower learns 10x slower
    weight_decay: float = 0.05
    warmup_epochs: float | None = None  # linear warm-up (None: the first 5% of the steps)
    seed: int = 0
    device: str = "cpu"  # cpu | cuda | cuda:N (with torchrun: each process its LOCAL_RANK)
    precision: str = "fp32"  # fp32 | bf16 | fp16 (fp16 with loss scaling, on a GPU)
    accum_steps: int = 1  # micro-batches per optimizer step
    grad_checkpointing: bool = False  # recompute the image tower's blocks in the backward pass
    clip_grad_norm: float | None = None
    workers: int | None = None  # DataLoader decode processes (None: the cores, one left)
    prefetch: int = 4  # batches each worker decodes ahead
    eval_every: int = 1  # epochs between validations (with a validation set; 0: never)
    save_every_steps: int = 0  # resumable state every N optimizer steps too (0: per epoch)
    max_steps: int = 0  # stop after this many optimizer steps (0: run every epoch)
    log_dir: Path | None = None  # TensorBoard logs
    progress: bool = True
    train_logit_scale: bool = True  # CLIP's temperature learns with the head (it is neither tower)
    # With a label map (ALTConfig.label_proj), start it as the whitening of the training labels'
    # features: a text encoder that never saw action words maps "jumping" and "walking" to
    # nearly the same vector (cos 0.999 in the generated world); whitening spreads them apart.
    whiten_labels: bool = True
    # ... and then map the whitened labels onto the mean video embedding of their training
    # clips, so that training starts from a nearest-class-mean classifier instead of labels
    # placed at random relative to the videos (the map's entries are too large after
    # whitening for the optimizer to move them far).
    label_prototypes: bool = True
    # Weight of the region term, for datasets with entity masks (the generated world): each
    # region's alignment distribution (cosine / tau over the corpus) against the entities
    # under its patches. Keeps the regions aligned while the image tower adapts to actions.
    region_weight: float = 0.0
    # Label-map stage (needs ALTConfig.label_proj): after the epochs, with the video side
    # fixed, the label map and the temperature train `label_map_steps` more steps on the
    # embeddings of up to `label_map_clips` training clips per class, plus the label-entity
    # term at `label_map_entity_weight`: a clip also scores, among the corpus entities put
    # through the label map, the entities its label names ("lifting a box" -> box) above the
    # rest. The corpus entities become extra anchors for a map otherwise fit on the training
    # labels alone, so new labels land better.
    label_map_steps: int = 0
    label_map_entity_weight: float = 0.05
    label_map_clips: int = 100
    state_dir: Path | None = None  # epoch checkpoints; training resumes from the last one


def split_params(
    module: nn.Module, logit_scale: bool = True
) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Freeze the text side; return (image-tower params, head params) to train.

    Head params are everything that is neither CLIP's (the adapter, alpha, the label map,
    the baseline's temporal transformer) plus, with `logit_scale`, CLIP's temperature; a baseline's unused ALT
    adapter stays frozen.
    """
    alt: ALT = module.alt
    for p in module.parameters():
        p.requires_grad_(False)
    backbone = list(alt.clip.visual.parameters())
    clip_ids = {id(p) for p in alt.clip.parameters()}
    shared = list(alt.label_proj.parameters()) if alt.label_proj is not None else []
    if isinstance(module, ALTVideo):
        head = list(alt.adapter.parameters()) + [alt.alpha] + shared
    else:
        alt_ids = {id(p) for p in alt.parameters()}
        head = [p for p in module.parameters() if id(p) not in alt_ids] + shared
    assert not any(id(p) in clip_ids for p in head)
    if logit_scale:
        head.append(alt.clip.logit_scale)
    for p in backbone + head:
        p.requires_grad_(True)
    return backbone, head


@torch.no_grad()
def whiten_label_map(alt: ALT, features: Tensor, shrink: float = 0.1) -> None:
    """Set the label map to x -> C^(-1/2) (x - mean), C the (shrunk) covariance of `features`."""
    mean = features.mean(dim=0)
    centered = features - mean
    cov = centered.t() @ centered / features.shape[0]
    cov += shrink * cov.diagonal().mean() * torch.eye(cov.shape[0], dtype=cov.dtype)
    values, vectors = torch.linalg.eigh(cov)
    white = vectors @ torch.diag(values.rsqrt()) @ vectors.t()
    alt.label_proj.weight.copy_(white)
    alt.label_proj.bias.copy_(-white @ mean)


@torch.no_grad()
def class_means(module: nn.Module, dataset: Dataset, classes: int, per_class: int = 16) -> Tensor:
    """Normalized mean video embedding `(classes, D)` of up to `per_class` clips per class."""
    picked: dict[int, list[int]] = {}
    for i in _per_class(list(dataset.targets), per_class):
        picked.setdefault(dataset.targets[i], []).append(i)
    was_training = module.training
    module.eval()
    alt: ALT = module.alt
    sums = torch.zeros(classes, alt.dim)
    for target, indices in picked.items():
        items = [dataset[i] for i in indices]
        clips = [item[0][0] for item in items if isinstance(item, tuple)]  # view 0; decoded
        if clips:
            sums[target] = module.video_embedding(alt.normalize(torch.stack(clips))).sum(0)
    module.train(was_training)
    return F.normalize(sums, dim=-1)


@torch.no_grad()
def fit_label_map(alt: ALT, features: Tensor, targets: Tensor) -> None:
    """Compose the label map with the least-squares (minimum-norm) affine map that sends the
    mapped `features` onto `targets` (classes without clips keep their mapped feature)."""
    mapped = alt.label_proj(features)
    known = targets.norm(dim=-1) > 0
    goal = torch.where(known[:, None], targets * mapped.norm(dim=-1, keepdim=True), mapped)
    design = torch.cat([mapped, torch.ones(len(mapped), 1)], dim=1)  # (L, D + 1)
    solution = torch.linalg.pinv(design) @ goal  # (D + 1, D)
    a, c = solution[:-1].t(), solution[-1]
    weight, bias = alt.label_proj.weight.clone(), alt.label_proj.bias.clone()
    alt.label_proj.weight.copy_(a @ weight)
    alt.label_proj.bias.copy_(a @ bias + c)


def region_entity_loss(alt: ALT, regions: Tensor, sources: Tensor | None, masks: Tensor) -> Tensor:
    """Cross-entropy of each region's alignment (cosine / tau over the corpus) against the
    entity shares of the patches it holds. `regions` `(B, T, R, D)`; `sources` `(B, T, R, P)`
    or None when every region is one patch; `masks` `(B, T, M, M)` with 1-based corpus ids."""
    targets = patch_entity_targets(masks.flatten(0, 1), alt.grid_size, alt.entities.shape[0])
    if sources is not None:
        targets = sources.flatten(0, 1).to(targets.dtype) @ targets  # (B T, R, E)
        targets = targets / targets.sum(dim=-1, keepdim=True).clamp(min=1e-6)
    regions = F.normalize(regions.flatten(0, 1), dim=-1)
    return region_loss(regions, alt.entities, targets, torch.tensor(1.0 / alt.config.tau))


def label_entity_loss(alt: ALT, video: Tensor, named: Tensor) -> Tensor:
    """Cross-entropy of the videos' scores over the corpus entities (through the label map)
    against the entities their labels name, `named` `(B, E)`; rows of zeros are left out."""
    logp = F.log_softmax(alt.logits(video, alt.project_labels(alt.entities)), dim=-1)
    keep = named.sum(dim=-1)
    return -(named * logp).sum() / keep.sum().clamp(min=1.0)


def _per_class(targets: list[int], limit: int) -> list[int]:
    """Indices of the first `limit` items of each target."""
    counts: Counter[int] = Counter()
    picked = []
    for i, target in enumerate(targets):
        if counts[target] < limit:
            counts[target] += 1
            picked.append(i)
    return picked


def refit_label_map(
    module: nn.Module,
    dataset: Dataset,
    label_features: Tensor,
    cfg: TrainConfig,
    label_entities: Tensor | None = None,
) -> list[float]:
    """The label-map stage (see `TrainConfig.label_map_steps`); returns the loss per step."""
    alt: ALT = module.alt
    if alt.label_proj is None:
        raise ValueError("the label-map stage needs a model with a label map (label_proj)")
    weight = cfg.label_map_entity_weight
    if weight > 0 and label_entities is None:
        raise ValueError("the label-map stage's entity term needs label_entities")
    picked = _per_class(list(dataset.targets), cfg.label_map_clips)
    video, targets = embed(module, dataset, indices=picked)
    params = list(alt.label_proj.parameters())
    if cfg.train_logit_scale:
        params.append(alt.clip.logit_scale)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    draws = torch.Generator().manual_seed(cfg.seed)
    label_features = label_features.detach()
    losses = []
    for _ in tqdm(range(cfg.label_map_steps), desc="label map", unit="step", leave=False):
        i = torch.randint(0, len(targets), (64,), generator=draws)
        loss = F.cross_entropy(alt.logits(video[i], alt.project_labels(label_features)), targets[i])
        if weight > 0:
            loss = loss + weight * label_entity_loss(alt, video[i], label_entities[targets[i]])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def batch_loss(
    alt: ALT, out: Dense, target: Tensor, label_features: Tensor, masks: Tensor | None,
    cfg: TrainConfig,
) -> Tensor:  # fmt: skip
    """The terms of one training step: classification over the labels, and with masks the
    region term."""
    loss = F.cross_entropy(alt.logits(out.embedding, alt.project_labels(label_features)), target)
    if masks is not None:
        loss = loss + cfg.region_weight * region_entity_loss(alt, out.regions, out.sources, masks)
    return loss


def _optimizer(backbone: list, head: list, cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        [{"params": backbone, "lr": cfg.lr * cfg.backbone_lr_scale}, {"params": head, "lr": cfg.lr}],
        weight_decay=cfg.weight_decay,
    )  # fmt: skip
