"""Model runtimes behind one interface; the rest of the engine never touches torch models."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .base import Backend, ClipResult, ModelInfo

Kind = Literal["torch", "onnxruntime", "tensorrt", "fake"]


@dataclass(frozen=True)
class BackendSpec:
    """Which runtime serves which model, and how."""

    kind: Kind = "torch"
    checkpoint: Path | None = None  # torch: an ALT checkpoint directory
    onnx_dir: Path | None = None  # onnxruntime, tensorrt: an export directory
    device: str = "cpu"
    dtype: str = "fp32"  # torch: fp32, bf16 or fp16 weights
    threads: int = 0  # intra-op threads on the CPU (0: the runtime's choice)
    compile_buckets: tuple[int, ...] = ()  # torch: batch sizes to compile for (empty: eager)


def create_backend(spec: BackendSpec) -> Backend:
    if spec.kind == "torch":
        from .torch_backend import TorchBackend

        assert spec.checkpoint is not None, "the torch backend needs a checkpoint"
        return TorchBackend(
            spec.checkpoint, spec.device, spec.dtype, spec.threads, spec.compile_buckets
        )
    if spec.kind == "fake":
        from .fake import FakeBackend

        return FakeBackend()
    assert spec.onnx_dir is not None, f"the {spec.kind} backend needs an ONNX export"
    if spec.kind == "onnxruntime":
        from .onnx_backend import OnnxBackend

        return OnnxBackend(spec.onnx_dir, spec.device, spec.threads)
    from .tensorrt_backend import TensorRTBackend

    return TensorRTBackend(spec.onnx_dir)


__all__ = ["Backend", "BackendSpec", "ClipResult", "ModelInfo", "create_backend"]
