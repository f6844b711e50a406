"""ONNX export: the custom TokenMerge op, the full graphs, and parity with PyTorch."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from export.onnx_export import VideoGraph, export_onnx
from export.token_merge import BODY_OPSET, DOMAIN, OP, attach
from media import decode_clip
from model import load_checkpoint
from model.merge import bipartite_soft_matching, merge_tokens
from server.engine.backends.onnx_backend import OnnxBackend
from server.engine.backends.torch_backend import TorchBackend


def _single_op_model(r: int) -> onnx.ModelProto:
    names = ["x", "size", "source", "metric"]
    inputs = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, ["b", "n", f"c_{n}"]) for n in names
    ]
    outputs = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, ["b", "m", f"c_{n}"])
        for n in ("xo", "so", "srco")
    ]
    node = helper.make_node(OP, names, ["xo", "so", "srco"], domain=DOMAIN, r=r)
    graph = helper.make_graph([node], "merge", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", BODY_OPSET)])
    return attach(model)


@pytest.mark.parametrize("n,r", [(17, 3), (50, 12), (197, 8)])
def test_token_merge_function_body_equals_torch(n, r):
    model = _single_op_model(r)
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(n)
    x, metric = torch.randn(3, n, 16, generator=g), torch.randn(3, n, 8, generator=g)
    size = torch.randint(1, 4, (3, n, 1), generator=g).float()
    source = torch.eye(n).expand(3, -1, -1).contiguous()
    got = sess.run(
        None,
        {"x": x.numpy(), "size": size.numpy(), "source": source.numpy(), "metric": metric.numpy()},
    )
    want = merge_tokens(x, size, bipartite_soft_matching(metric, r), source)
    for a, b in zip(got, want):
        assert a.shape == tuple(b.shape)
        np.testing.assert_allclose(a, b.numpy(), rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    export_onnx(tiny_checkpoint, out)
    return out


def test_graph_keeps_one_custom_node_per_merging_layer(exported, tiny_checkpoint):
    model = onnx.load(str(exported / "video.onnx"))
    custom = [n for n in model.graph.node if n.domain == DOMAIN and n.op_type == OP]
    plan = load_checkpoint(tiny_checkpoint).model.plan
    assert len(custom) == sum(1 for r in plan if r > 0)
    assert [a.i for n in custom for a in n.attribute if a.name == "r"] == [r for r in plan if r > 0]
    assert [(f.domain, f.name) for f in model.functions] == [(DOMAIN, OP)]
    assert not any(
        n.op_type == "ScatterND" or "reduce" in n.op_type.lower() and "Scatter" in n.op_type
        for n in model.graph.node
    )
    onnx.checker.check_model(model, full_check=True)


def test_onnx_runtime_matches_pytorch_on_decoded_videos(exported, tiny_checkpoint, video_dir):
    sess = ort.InferenceSession(str(exported / "video.onnx"), providers=["CPUExecutionProvider"])
    alt = load_checkpoint(tiny_checkpoint).model
    clips = torch.cat(
        [
            torch.from_numpy(decode_clip((video_dir / f"clip{i}.mp4").read_bytes(), 4, 64)[0])
            for i in range(4)
        ]
    )
    got = sess.run(None, {"frames": clips.numpy()})
    with torch.no_grad():
        want = VideoGraph(alt)(clips)
    assert np.abs(got[0] - want[0].numpy()).max() <= 1e-4  # embeddings
    for a, b in zip(got[1:], want[1:]):
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b.numpy(), atol=1e-5)
        else:
            assert np.array_equal(a, b.numpy())  # aligned entities, region and patch maps


def test_onnx_backend_gives_the_torch_backend_answers(exported, tiny_checkpoint, video_dir):
    onnx_backend, torch_backend = OnnxBackend(exported), TorchBackend(tiny_checkpoint)
    assert onnx_backend.info.entity_names == torch_backend.info.entity_names
    labels = ["waving", "surfing", "kicking a ball", "juggling", "knitting", "drinking from a cup"]
    la, lb = onnx_backend.encode_labels(labels), torch_backend.encode_labels(labels)
    assert np.abs(la - lb).max() <= 1e-4
    clips = np.concatenate(
        [decode_clip((video_dir / f"clip{i}.mp4").read_bytes(), 4, 64)[0] for i in range(4)]
    )
    for a, b in zip(
        onnx_backend.encode_video(clips, True), torch_backend.encode_video(clips, True)
    ):
        assert np.abs(a.embedding - b.embedding).max() <= 1e-4
        top_a, top_b = np.argsort(-(la @ a.embedding))[:5], np.argsort(-(lb @ b.embedding))[:5]
        assert list(top_a) == list(top_b)
        assert list(a.entity_ids) == list(b.entity_ids)
        assert np.array_equal(a.patch_entities, b.patch_entities)
