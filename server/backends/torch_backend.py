"""PyTorch runtime: cpu or cuda, fp32 or bf16/fp16 autocast."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from model.checkpoint import load_checkpoint

from .base import ClipResult, ModelInfo, patch_entities, split_results

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class TorchBackend:
    def __init__(
        self, checkpoint: Path, device: str = "cpu", dtype: str = "fp32", threads: int = 0
    ) -> None:
        self.device = torch.device(device)
        if threads:
            torch.set_num_threads(threads)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was asked for but CUDA is not available")
        bundle = load_checkpoint(checkpoint, map_location=self.device)
        self.model = bundle.model
        self.dtype = dtype
        cfg = self.model.config
        self.info = ModelInfo(
            name=cfg.name,
            version=Path(checkpoint).resolve().name,
            backend="torch",
            device=str(self.device),
            dtype=dtype,
            frames=cfg.frames,
            image_size=cfg.image_size,
            clips=cfg.test_clips,
            crops=cfg.test_crops,
            grid=self.model.grid_size,
            entity_names=tuple(bundle.corpus.names),
            default_labels=tuple(bundle.labels),
            label_templates=cfg.label_templates,
            logit_scale=float(self.model.logit_scale().detach()),
            card=dict(bundle.card),
        )
        self._stored_labels = bundle.label_embeddings

    def _autocast(self):
        if self.dtype == "fp32":
            return nullcontext()
        return torch.autocast(self.device.type, dtype=_DTYPES[self.dtype])

    @torch.inference_mode()
    def encode_video(self, frames: np.ndarray, explain_regions: bool) -> list[ClipResult]:
        x = torch.as_tensor(frames).to(self.device)
        with self._autocast():
            out = self.model.encode_video(self.model.normalize(x), track_source=explain_regions)
        regions = out.region_entities.cpu().numpy()
        patches = None
        if explain_regions:
            patches = patch_entities(out.sources.float().cpu().numpy(), regions)
        return split_results(
            out.embedding.float().cpu().numpy(),
            out.entity_ids.cpu().numpy(),
            out.entity_scores.float().cpu().numpy(),
            regions,
            patches,
        )

    def stored_label_embeddings(self) -> np.ndarray | None:
        if self._stored_labels is None:
            return None
        return torch.nn.functional.normalize(self._stored_labels.float(), dim=-1).numpy()

    @torch.inference_mode()
    def encode_labels(self, labels: Sequence[str]) -> np.ndarray:
        with self._autocast():
            emb = self.model.encode_labels(list(labels))
        return torch.nn.functional.normalize(emb.float(), dim=-1).cpu().numpy()
