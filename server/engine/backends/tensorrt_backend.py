"""TensorRT runtime for the video encoder (`video.plan` beside an ONNX export); label
embeddings run on ONNX Runtime's text graph. Serves engines whose TokenMerge nodes TensorRT
built from the function body (`alt export tensorrt` without `--plugin`): the plugin lives in
export/, which the server does not import. Unverified: see the README."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from model.contract import VIDEO_INPUT, VIDEO_OUTPUTS

from .base import ClipResult, split_results
from .onnx_backend import OnnxBackend


class TensorRTBackend(OnnxBackend):
    def __init__(self, onnx_dir: Path) -> None:
        import tensorrt as trt
        import torch

        super().__init__(onnx_dir, device="cpu")  # the text graph only
        plan = Path(onnx_dir) / "video.plan"
        if not plan.is_file():
            raise FileNotFoundError(f"no TensorRT engine at {plan}: run `alt export tensorrt`")
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(plan.read_bytes())
        self.context = self.engine.create_execution_context()
        self.torch = torch
        self.info = dataclasses.replace(self.info, backend="tensorrt", device="cuda")

    def encode_video(self, frames: np.ndarray, explain_regions: bool) -> list[ClipResult]:
        torch = self.torch
        x = torch.as_tensor(frames, dtype=torch.uint8, device="cuda").contiguous()
        self.context.set_input_shape(VIDEO_INPUT, tuple(x.shape))
        self.context.set_tensor_address(VIDEO_INPUT, x.data_ptr())
        outs = {}
        for name in VIDEO_OUTPUTS:
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = torch.int64 if name.endswith(("ids", "entities")) else torch.float32
            outs[name] = torch.empty(shape, dtype=dtype, device="cuda")
            self.context.set_tensor_address(name, outs[name].data_ptr())
        stream = torch.cuda.current_stream()
        self.context.execute_async_v3(stream.cuda_stream)
        stream.synchronize()
        emb, ids, scores, regions, patches = (outs[name].cpu().numpy() for name in VIDEO_OUTPUTS)
        return split_results(emb, ids, scores, regions, patches if explain_regions else None)
