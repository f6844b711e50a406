"""ALT: align regions to entities, then let the aligned entities query the video."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import align
from .adapter import VideoAdapter
from .clip import pixel_stats, tokenizer
from .config import ALTConfig
from .schedule import parse_schedule
from .vit import MergeFn, check_visual, merge_plan, merge_step, num_patches, region_forward


class VideoOutput(NamedTuple):
    embedding: Tensor  # (B, D) L2-normalized video embedding
    entity_ids: Tensor  # (B, K) aligned entities, strongest first
    entity_scores: Tensor  # (B, K) share of the clip's patches assigned to each
    region_entities: Tensor  # (B, T, R) entity id of each region
    region_sizes: Tensor  # (B, T, R) patches per region
    sources: Tensor | None  # (B, T, R, P) 0/1 patch membership, when asked for
    regions: Tensor | None = None  # (B, T, R, D) region embeddings (what training supervises)


class ALT(nn.Module):
    """The ALT model around an open_clip CLIP (`clip`) and a fixed entity corpus."""

    def __init__(self, config: ALTConfig, clip: nn.Module, entity_embeddings: Tensor) -> None:
        super().__init__()
        visual = clip.visual
        check_visual(visual)
        if tuple(visual.image_size) != (config.image_size, config.image_size):
            raise ValueError(
                f"{config.clip_arch} takes {tuple(visual.image_size)} images, config says {config.image_size}"
            )
        dim = visual.output_dim
        if entity_embeddings.shape[-1] != dim:
            raise ValueError(
                f"entity embeddings have width {entity_embeddings.shape[-1]}, CLIP has {dim}"
            )
        self.config = config
        self.clip = clip
        layers = len(visual.transformer.resblocks)
        schedule = parse_schedule(layers, config.merge_r, config.merge_schedule)
        self.plan = merge_plan(visual, schedule)  # static r per layer
        self.grad_checkpointing = False  # training: recompute each block in the backward pass
        self.adapter = VideoAdapter(
            dim,
            frames=config.frames,
            layers=config.adapter_layers,
            heads=max(1, dim // config.adapter_head_dim),
            mlp_ratio=config.adapter_mlp_ratio,
        )
        self.alpha = nn.Parameter(torch.tensor(float(config.alpha_init)))
        self.label_proj = None
        if config.label_proj:
            self.label_proj = nn.Linear(dim, dim)
            nn.init.eye_(self.label_proj.weight)
            nn.init.zeros_(self.label_proj.bias)
        # The corpus is an offline artifact saved beside the weights, not part of them.
        self.register_buffer("entities", entity_embeddings.float().clone(), persistent=False)
        mean, std = pixel_stats(visual)
        self.register_buffer("pixel_mean", mean.view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", std.view(1, 1, 3, 1, 1), persistent=False)
        self._tokenize = tokenizer(config.clip_arch)

    @property
    def dim(self) -> int:
        return self.clip.visual.output_dim

    @property
    def num_patches(self) -> int:
        return num_patches(self.clip.visual)

    @property
    def grid_size(self) -> tuple[int, int]:
        return tuple(self.clip.visual.grid_size)

    # ---- video -------------------------------------------------------------------------

    def normalize(self, frames: Tensor) -> Tensor:
        """uint8 frames `(B, T, 3, H, W)` -> CLIP-normalized frames in the weights' dtype
        (the arithmetic in fp32)."""
        x = frames.to(self.pixel_mean.dtype) / 255.0
        return ((x - self.pixel_mean) / self.pixel_std).to(self.alpha.dtype)

    def cast_weights(self, dtype: torch.dtype) -> ALT:
        """Serve in bf16 or fp16 with every weight cast once, not autocast per forward; the
        pixel statistics and the entity embeddings stay fp32, and so do alignment and the
        final normalization, where a low-precision tie could change an answer."""
        self.to(dtype)
        for name in ("pixel_mean", "pixel_std", "entities"):
            setattr(self, name, getattr(self, name).float())
        return self

    def encode_frames(
        self, frames: Tensor, track_source: bool = False, merge: MergeFn = merge_step
    ):
        """Normalized frames `(B, T, 3, H, W)` -> per-frame `RegionOutput`, frames flattened."""
        b, t, c, h, w = frames.shape
        assert t == self.config.frames, f"model takes {self.config.frames} frames, got {t}"
        assert (h, w) == (self.config.image_size,) * 2, (
            f"model takes {self.config.image_size}px frames, got {h}x{w}"
        )
        return region_forward(
            self.clip.visual,
            frames.reshape(b * t, c, h, w),
            self.plan,
            prop_attn=self.config.prop_attn,
            track_source=track_source,
            merge=merge,
            checkpoint=self.grad_checkpointing,
        )

    def encode_video(
        self,
        frames: Tensor,
        track_source: bool = False,
        gumbel: bool = False,
        generator: torch.Generator | None = None,
        merge: MergeFn = merge_step,
    ) -> VideoOutput:
        """Normalized frames `(B, T, 3, H, W)` -> video embedding and what explains it.

        `gumbel=True` samples the alignment (training); the default argmax is deterministic.
        """
        b, t = frames.shape[:2]
        return self.align_and_adapt(self.encode_frames(frames, track_source, merge), b, t,
                                    gumbel, generator)  # fmt: skip

    def align_and_adapt(
        self,
        out,
        b: int,
        t: int,
        gumbel: bool = False,
        generator: torch.Generator | None = None,
    ) -> VideoOutput:
        """What follows the image tower: the frames' `RegionOutput` (`B*T` frames) ->
        alignment to the corpus, the adapter, the video embedding."""
        r = out.regions.shape[1]
        regions = out.regions.reshape(b, t, r, -1)  # (B, T, R, D)
        sizes = out.sizes.reshape(b, t, r)  # (B, T, R)
        logits = align.alignment_logits(regions, self.entities, self.config.tau)  # (B, T, R, E)
        num_entities = self.entities.shape[0]
        if gumbel:
            weights = align.gumbel_assign(logits, generator)
            importance = align.importance_from_weights(weights, sizes)
            region_entities = weights.argmax(dim=-1)
        else:
            region_entities = align.hard_assign(logits)
            importance = align.importance_from_ids(region_entities, sizes, num_entities)
        scores, ids = align.top_entities(importance, self.config.top_k)  # (B, K)
        # Forward: exactly the entity's text embedding; backward: gradient into its score,
        # and through the straight-through assignment into regions and entities.
        gate = (scores - scores.detach() + 1.0).unsqueeze(-1)
        queries = (self.entities[ids] * gate).to(regions.dtype)  # (B, K, D)
        cls = out.cls.reshape(b, t, -1)  # (B, T, D)
        # Fewer than K entities may be aligned in a clip: the empty slots (score 0) stay hidden.
        adapted = self.adapter(queries, regions, sizes, present=scores > 0)  # (B, D)
        pooled = cls.mean(dim=1)  # CLIP mean pooling of frame CLS
        video = pooled + self.alpha * adapted
        embedding = F.normalize(video.float(), dim=-1)
        return VideoOutput(
            embedding=embedding,
            entity_ids=ids,
            entity_scores=scores,
            region_entities=region_entities,
            region_sizes=sizes,
            sources=None if out.source is None else out.source.reshape(b, t, r, -1),
            regions=regions,
        )

    # ---- text --------------------------------------------------------------------------

    def tokenize(self, texts: Sequence[str]) -> Tensor:
        return self._tokenize(list(texts))

    def encode_text(self, tokens: Tensor) -> Tensor:
        """Token ids `(N, L)` -> L2-normalized text embeddings `(N, D)`.

        CLIP's text tower is causal and pools at the end-of-text token, so the positions after
        the longest prompt's end change nothing: they are cut (prompts are ~10 tokens of 77,
        which makes corpus and label encoding several times faster). Towers of another kind
        run whole through open_clip.
        """
        clip = self.clip
        mask = getattr(clip, "attn_mask", None)
        if mask is None or getattr(clip, "text_pool_type", None) != "argmax":
            return clip.encode_text(tokens, normalize=True)
        n = int(tokens.argmax(dim=-1).max()) + 1  # the end-of-text token has the largest id
        dtype = clip.transformer.get_cast_dtype()
        x = clip.token_embedding(tokens[:, :n]).to(dtype) + clip.positional_embedding[:n].to(dtype)
        x = clip.ln_final(clip.transformer(x, attn_mask=mask[:n, :n]))  # (N, n, W)
        x = x[torch.arange(x.shape[0]), tokens[:, :n].argmax(dim=-1)]  # (N, W)
        x = (
            clip.text_projection(x)
            if isinstance(clip.text_projection, nn.Linear)
            else x @ clip.text_projection
        )
        return F.normalize(x, dim=-1)

    def encode_strings(self, texts: Sequence[str]) -> Tensor:
        return self.encode_text(self.tokenize(texts).to(self.alpha.device))

    def label_features(
        self, labels: Sequence[str], templates: Sequence[str] | None = None
    ) -> Tensor:
        """The text side's part of label embeddings `(L, D)`: the normalized mean over prompt
        templates of normalized text features (docs/design.md §5). Frozen in training."""
        templates = tuple(templates or self.config.label_templates)
        prompts = [t.format(label) for label in labels for t in templates]
        feats = self.encode_strings(prompts).reshape(len(labels), len(templates), -1)
        return F.normalize(feats.mean(dim=1), dim=-1)

    def project_labels(self, features: Tensor) -> Tensor:
        """`label_features` -> label embeddings: the optional learned affine map, then normalization."""
        if self.label_proj is not None:
            features = self.label_proj(features)
        return F.normalize(features, dim=-1)

    def encode_labels(
        self, labels: Sequence[str], templates: Sequence[str] | None = None
    ) -> Tensor:
        """Label embeddings `(L, D)`, normalized."""
        return self.project_labels(self.label_features(labels, templates))

    # ---- scores ------------------------------------------------------------------------

    def logit_scale(self) -> Tensor:
        return self.clip.logit_scale.exp().clamp(max=100.0)

    def logits(self, video: Tensor, labels: Tensor) -> Tensor:
        """Scaled cosine: video `(B, D)`, labels `(L, D)`, both normalized -> `(B, L)`."""
        return self.logit_scale() * video @ labels.t()
