"""TensorRT: the engine build needs TensorRT and a GPU; the ONNX preparation does not."""

from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from export.onnx_export import export_onnx
from export.tensorrt import build_engine, name_plugin_namespace
from export.token_merge import DOMAIN, OP

HAS_TRT = importlib.util.find_spec("tensorrt") is not None
needs_trt = pytest.mark.skipif(
    not HAS_TRT or not torch.cuda.is_available(),
    reason="TensorRT and a CUDA GPU are needed; TensorRT cannot be installed on this machine",
)


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx-trt")
    export_onnx(tiny_checkpoint, out)
    return out


def test_plugin_namespace_marks_nodes_and_keeps_the_graph_runnable(exported):
    model = name_plugin_namespace(onnx.load(str(exported / "video.onnx")))
    nodes = [n for n in model.graph.node if n.domain == DOMAIN and n.op_type == OP]
    assert nodes and all(
        any(a.name == "plugin_namespace" and a.s == DOMAIN.encode() for a in n.attribute)
        for n in nodes
    )
    frames = np.random.default_rng(0).integers(0, 255, (1, 4, 3, 64, 64), dtype=np.uint8)
    plain = ort.InferenceSession(
        str(exported / "video.onnx"), providers=["CPUExecutionProvider"]
    ).run(None, {"frames": frames})
    marked = ort.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    ).run(None, {"frames": frames})
    np.testing.assert_allclose(plain[0], marked[0], atol=1e-6)


@pytest.mark.skipif(HAS_TRT, reason="checks the message shown where TensorRT is missing")
def test_missing_tensorrt_is_a_clear_error(exported, tmp_path):
    with pytest.raises(RuntimeError, match="TensorRT is not installed"):
        build_engine(exported / "video.onnx", tmp_path / "video.plan")


@pytest.mark.tensorrt
@pytest.mark.gpu
@needs_trt
@pytest.mark.parametrize("fp16", [False, True])
def test_engine_top5_agrees_with_onnx_runtime(exported, fp16):
    from server.engine.backends.onnx_backend import OnnxBackend
    from server.engine.backends.tensorrt_backend import TensorRTBackend

    build_engine(exported / "video.onnx", exported / "video.plan", fp16=fp16)
    trt_backend, ort_backend = TensorRTBackend(exported), OnnxBackend(exported)
    labels = list(ort_backend.info.default_labels)
    label_emb = ort_backend.encode_labels(labels)
    frames = np.random.default_rng(1).integers(0, 255, (4, 4, 3, 64, 64), dtype=np.uint8)
    for a, b in zip(
        trt_backend.encode_video(frames, False), ort_backend.encode_video(frames, False)
    ):
        top_a = np.argsort(-(label_emb @ a.embedding))[:5]
        top_b = np.argsort(-(label_emb @ b.embedding))[:5]
        assert list(top_a) == list(top_b)
        if not fp16:
            assert np.abs(a.embedding - b.embedding).max() <= 1e-3
