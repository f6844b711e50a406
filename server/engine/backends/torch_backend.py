"""PyTorch runtime: cpu or cuda; fp32, or bf16/fp16 weights cast once at load; eager, or
compiled per batch bucket (static shapes; CUDA graphs for the small buckets on a GPU)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from model.align import patch_entities
from model.checkpoint import load_checkpoint

from .base import ClipResult, ModelInfo, split_results

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class TorchBackend:
    def __init__(
        self,
        checkpoint: Path,
        device: str = "cpu",
        dtype: str = "fp32",
        threads: int = 0,
        buckets: Sequence[int] = (),
    ) -> None:
        """`buckets`: batch sizes to compile the video forward for (empty: eager). A batch
        is padded up to the next bucket and the padding's results dropped."""
        self.device = torch.device(device)
        if threads:
            torch.set_num_threads(threads)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was asked for but CUDA is not available")
        bundle = load_checkpoint(checkpoint, map_location=self.device)
        self.model = bundle.model
        self.dtype = dtype
        if dtype != "fp32":
            self.model.cast_weights(_DTYPES[dtype])
        self.buckets = sorted(set(buckets))
        self._compiled = None
        if self.buckets:
            # Static shapes per bucket; on a GPU, small buckets replay CUDA graphs.
            small = self.device.type == "cuda" and self.buckets[0] <= 8
            self._compiled = torch.compile(
                self._forward, dynamic=False, mode="reduce-overhead" if small else None
            )
        meta = bundle.meta(Path(checkpoint).resolve().name)
        self.info = ModelInfo.of(meta, "torch", str(self.device), dtype)
        self._stored_labels = bundle.label_embeddings

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model.encode_video(self.model.normalize(x))
        return out.embedding, out.entity_ids, out.entity_scores, out.region_entities

    def bucket(self, n: int) -> int:
        """The compiled batch size that holds `n` clips (`n` itself past the largest)."""
        i = bisect.bisect_left(self.buckets, n)
        return self.buckets[i] if i < len(self.buckets) else n

    def warmup(self, max_clips: int) -> None:
        """Compile every bucket up to `max_clips` now, not on a user's request."""
        info = self.info
        for b in self.buckets:
            if b <= self.bucket(max_clips):
                shape = (b, info.frames, 3, info.image_size, info.image_size)
                self.encode_video(np.zeros(shape, np.uint8), False)

    @torch.inference_mode()
    def encode_video(self, frames: np.ndarray, explain_regions: bool) -> list[ClipResult]:
        n = len(frames)
        x = torch.as_tensor(frames).to(self.device)
        patches = None
        if explain_regions or self._compiled is None:
            # Region maps need the source matrices: that (rarer) path runs eager.
            out = self.model.encode_video(self.model.normalize(x), track_source=explain_regions)
            emb, ids, scores, regions = (
                out.embedding,
                out.entity_ids,
                out.entity_scores,
                out.region_entities,
            )
            if explain_regions:
                assert out.sources is not None  # asked for with track_source
                patches = patch_entities(out.sources.float(), regions).cpu().numpy()
        else:
            size = self.bucket(n)
            if size > n:  # pad with copies of the last clip; their results are dropped
                x = torch.cat([x, x[-1:].expand(size - n, *x.shape[1:])])
            emb, ids, scores, regions = (t[:n] for t in self._compiled(x))
        return split_results(
            emb.float().cpu().numpy(),
            ids.cpu().numpy(),
            scores.float().cpu().numpy(),
            regions.cpu().numpy(),
            patches,
        )

    def stored_label_embeddings(self) -> np.ndarray | None:
        if self._stored_labels is None:
            return None
        return torch.nn.functional.normalize(self._stored_labels.float(), dim=-1).numpy()

    @torch.inference_mode()
    def encode_labels(self, labels: Sequence[str]) -> np.ndarray:
        emb = self.model.encode_labels(list(labels))
        return torch.nn.functional.normalize(emb.float(), dim=-1).cpu().numpy()
