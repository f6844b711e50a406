"""ONNX Runtime runtime over an `alt export onnx` directory: no PyTorch at all (the label
tokenizer is `model/tokenizer.py`, fed by the export's `tokenizer.json`).

The CPU execution provider everywhere; CUDA (and TensorRT) providers with onnxruntime-gpu.
A GPU build silently falls back to the CPU when CUDA libraries are missing, so the providers
the session really got are checked and reported.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from model.contract import TEXT_INPUT, VIDEO_INPUT, ModelMeta, label_head
from model.tokenizer import BpeTokenizer

from .base import ClipResult, ModelInfo, split_results

log = logging.getLogger(__name__)


def choose_providers(device: str) -> list[str]:
    available = ort.get_available_providers()
    wanted = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        wanted = [
            p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in available
        ] + wanted
    return wanted


class OnnxBackend:
    def __init__(self, onnx_dir: Path, device: str = "cpu", threads: int = 0) -> None:
        onnx_dir = Path(onnx_dir)
        for name in ("video.onnx", "text.onnx", "meta.json"):
            if not (onnx_dir / name).is_file():
                raise FileNotFoundError(f"{onnx_dir} is not an ONNX export: {name} is missing")
        meta = ModelMeta.from_json(json.loads((onnx_dir / "meta.json").read_text()))
        providers = choose_providers(device)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        self.video = ort.InferenceSession(
            str(onnx_dir / "video.onnx"), options, providers=providers
        )
        self.text = ort.InferenceSession(str(onnx_dir / "text.onnx"), options, providers=providers)
        active = self.video.get_providers()
        if device.startswith("cuda") and "CUDAExecutionProvider" not in active:
            log.warning("CUDA was asked for, but ONNX Runtime runs on %s (is onnxruntime-gpu installed "
                        "with its CUDA libraries?)", active)  # fmt: skip
        if (onnx_dir / "tokenizer.json").is_file():
            self._tokenize = BpeTokenizer.load(onnx_dir / "tokenizer.json")  # no torch needed
        else:  # an export from before tokenizer.json: open_clip's tokenizer (imports torch)
            from model.clip import tokenizer

            self._tokenize = tokenizer(meta.clip_arch)
        self.label_map = None
        if (onnx_dir / "label_map.npz").is_file():
            with np.load(onnx_dir / "label_map.npz") as m:
                self.label_map = (m["weight"], m["bias"])
        device = active[0].removesuffix("ExecutionProvider").lower()
        self.info = ModelInfo.of(meta, "onnxruntime", device, "fp32")

    def stored_label_embeddings(self) -> None:
        return None

    def encode_video(self, frames: np.ndarray, explain_regions: bool) -> list[ClipResult]:
        emb, ids, scores, regions, patches = self.video.run(
            None, {VIDEO_INPUT: np.ascontiguousarray(frames, np.uint8)}
        )
        return split_results(emb, ids, scores, regions, patches if explain_regions else None)

    def encode_labels(self, labels: Sequence[str]) -> np.ndarray:
        templates = self.info.label_templates
        prompts = [t.format(label) for label in labels for t in templates]
        tokens = np.asarray(self._tokenize(prompts), dtype=np.int64)
        (feats,) = self.text.run(None, {TEXT_INPUT: tokens})
        return label_head(feats.reshape(len(labels), len(templates), -1), self.label_map)
