"""Model runtimes behind one interface; the rest of the server never touches torch models."""

from __future__ import annotations

from ..settings import Settings
from .base import Backend, ClipResult, ModelInfo


def create_backend(settings: Settings) -> Backend:
    if settings.backend == "torch":
        from .torch_backend import TorchBackend

        buckets = ()
        if settings.compile:
            buckets = tuple(b for b in (1, 2, 4, 8, 16, 32, 64, 128) if b < settings.max_batch_size)
            buckets += (settings.max_batch_size,)
        return TorchBackend(
            settings.checkpoint, settings.device, settings.dtype, settings.model_threads, buckets
        )
    if settings.backend == "onnxruntime":
        from .onnx_backend import OnnxBackend

        return OnnxBackend(settings.onnx_dir, settings.device, settings.model_threads)
    from .tensorrt_backend import TensorRTBackend

    return TensorRTBackend(settings.onnx_dir)


__all__ = ["Backend", "ClipResult", "ModelInfo", "create_backend"]
