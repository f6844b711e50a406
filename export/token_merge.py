"""The `ai.alt::TokenMerge` ONNX op: a custom node that carries its own function body.

In PyTorch the op is `TokenMerge.apply`, which runs our pure merge; the TorchScript exporter
turns it into one `ai.alt::TokenMerge` node. `function_proto()` builds the body from
standard ops (Slice, ReduceL2, MatMul, ArgMax, TopK, GatherElements, ScatterElements with
reduction="add"), so any runtime without a TokenMerge kernel inlines it, and TensorRT can map
the node to a plugin instead.

Node: inputs `x (B, N, C)`, `size (B, N, 1)`, `source (B, N, P)`, `metric (B, N, Cm)`;
attribute `r`; outputs the merged `x (B, N-r, C)`, `size`, `source`.
"""

from __future__ import annotations

import onnx
import torch
from onnx import TensorProto, helper
from torch import Tensor

from model.merge import bipartite_soft_matching, merge_tokens

DOMAIN = "ai.alt"
OP = "TokenMerge"
VERSION = 1
BODY_OPSET = 18  # ReduceL2/ReduceMax take axes as inputs; ScatterElements has reduction="add"


class TokenMerge(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, size: Tensor, source: Tensor, metric: Tensor, r: int):
        return merge_tokens(x, size, bipartite_soft_matching(metric, r), source)

    @staticmethod
    def symbolic(g, x, size, source, metric, r: int):
        return g.op(f"{DOMAIN}::{OP}", x, size, source, metric, r_i=r, outputs=3)


def merge_for_export(x: Tensor, size: Tensor, source: Tensor | None, metric: Tensor, r: int):
    """A `MergeFn` that exports as one TokenMerge node (source tracking is always on)."""
    assert source is not None, "the exported graph always tracks sources"
    return TokenMerge.apply(x, size, source, metric, r)


def _const(name: str, values: list[int]) -> onnx.NodeProto:
    return helper.make_node(
        "Constant",
        [],
        [name],
        value=helper.make_tensor(name, TensorProto.INT64, [len(values)], values),
    )


def function_proto() -> onnx.FunctionProto:
    nodes: list[onnx.NodeProto] = [
        _const("c0", [0]), _const("c1", [1]), _const("c2", [2]), _const("cm1", [-1]),
        _const("big", [2**62]), _const("ax1", [1]), _const("ax2", [2]),
        # r from the node attribute, as a 1-D tensor for Slice
        helper.make_node("Constant", [], ["r_s"], value_int=0),
        helper.make_node("Reshape", ["r_s", "cm1"], ["r"]),
    ]  # fmt: skip
    nodes[7].attribute[0].ref_attr_name = "r"
    n = nodes.append

    # Matching on the patch tokens' normalized metric.
    n(helper.make_node("Slice", ["metric", "c1", "big", "ax1"], ["mp"]))
    n(helper.make_node("ReduceL2", ["mp", "cm1"], ["mnorm"], keepdims=1))
    n(helper.make_node("Div", ["mp", "mnorm"], ["mn"]))
    n(helper.make_node("Slice", ["mn", "c0", "big", "ax1", "c2"], ["ma"]))
    n(helper.make_node("Slice", ["mn", "c1", "big", "ax1", "c2"], ["mb"]))
    n(helper.make_node("Transpose", ["mb"], ["mbt"], perm=[0, 2, 1]))
    n(helper.make_node("MatMul", ["ma", "mbt"], ["scores"]))
    n(helper.make_node("ReduceMax", ["scores", "cm1"], ["node_max"], keepdims=0))
    n(helper.make_node("ArgMax", ["scores"], ["node_idx"], axis=-1, keepdims=0))
    n(helper.make_node("Shape", ["ma"], ["ma_shape"]))
    n(helper.make_node("Slice", ["ma_shape", "c1", "c2", "c0"], ["na"]))
    n(helper.make_node("TopK", ["node_max", "na"], ["_", "order"], axis=-1, largest=1, sorted=1))
    n(helper.make_node("Slice", ["order", "c0", "r", "ax1"], ["src_idx"]))
    n(helper.make_node("Slice", ["order", "r", "big", "ax1"], ["unm_idx"]))
    n(helper.make_node("GatherElements", ["node_idx", "src_idx"], ["dst_idx"], axis=1))
    for idx in ("src_idx", "unm_idx", "dst_idx"):
        n(helper.make_node("Unsqueeze", [idx, "cm1"], [f"{idx}3"]))
        n(helper.make_node("Shape", [idx], [f"{idx}_shape"]))

    def merge_sum(t: str) -> str:
        """[cls, unmerged A, B + scatter-added merged A] of tensor `t`."""
        n(helper.make_node("Shape", [t], [f"{t}_shape"]))
        n(helper.make_node("Slice", [f"{t}_shape", "c2", "big", "c0"], [f"{t}_c"]))
        n(helper.make_node("Slice", [t, "c0", "c1", "ax1"], [f"{t}_cls"]))
        n(helper.make_node("Slice", [t, "c1", "big", "ax1"], [f"{t}_p"]))
        n(helper.make_node("Slice", [f"{t}_p", "c0", "big", "ax1", "c2"], [f"{t}_a"]))
        n(helper.make_node("Slice", [f"{t}_p", "c1", "big", "ax1", "c2"], [f"{t}_b"]))
        for idx in ("src_idx", "unm_idx", "dst_idx"):
            n(helper.make_node("Concat", [f"{idx}_shape", f"{t}_c"], [f"{t}_{idx}_s"], axis=0))
            n(helper.make_node("Expand", [f"{idx}3", f"{t}_{idx}_s"], [f"{t}_{idx}"]))
        n(helper.make_node("GatherElements", [f"{t}_a", f"{t}_unm_idx"], [f"{t}_unm"], axis=1))
        n(helper.make_node("GatherElements", [f"{t}_a", f"{t}_src_idx"], [f"{t}_src"], axis=1))
        n(
            helper.make_node(
                "ScatterElements",
                [f"{t}_b", f"{t}_dst_idx", f"{t}_src"],
                [f"{t}_dst"],
                axis=1,
                reduction="add",
            )
        )
        n(helper.make_node("Concat", [f"{t}_cls", f"{t}_unm", f"{t}_dst"], [f"{t}_merged"], axis=1))
        return f"{t}_merged"

    n(helper.make_node("Mul", ["x", "size"], ["xs"]))
    xs, sz, src = merge_sum("xs"), merge_sum("size"), merge_sum("source")
    n(helper.make_node("Div", [xs, sz], ["x_out"]))
    n(helper.make_node("Identity", [sz], ["size_out"]))
    n(helper.make_node("Identity", [src], ["source_out"]))
    return helper.make_function(
        DOMAIN, OP, ["x", "size", "source", "metric"], ["x_out", "size_out", "source_out"], nodes,
        opset_imports=[helper.make_opsetid("", BODY_OPSET)], attributes=["r"],
    )  # fmt: skip


def attach(model: onnx.ModelProto) -> onnx.ModelProto:
    """Add the TokenMerge function and its domain to an exported model."""
    if not any(f.domain == DOMAIN and f.name == OP for f in model.functions):
        model.functions.append(function_proto())
    if not any(o.domain == DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(DOMAIN, VERSION))
    return model
