"""`alt export tensorrt video.onnx video.plan [--fp16]`: a TensorRT engine for the video encoder.

TensorRT is imported lazily: nothing else in this project needs it. By default the ONNX
parser builds every `ai.alt::TokenMerge` node from its function body of standard ops; with
`--plugin` it maps them onto the Python TokenMerge plugin below (TensorRT 10.7+), which the
process that runs the engine must register as well. Unverified here: TensorRT cannot be installed on the machines this project
is built and tested on (see README).
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import helper

from .token_merge import DOMAIN, OP

PLUGIN_ID = f"{DOMAIN}::{OP}"


def require_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as err:
        raise RuntimeError(
            "TensorRT is not installed: `pip install alt-serve[tensorrt]` on a machine with an NVIDIA GPU"
        ) from err
    return trt


def register_plugin() -> bool:
    """Register the TokenMerge plugin (our torch merge on TensorRT's stream); False if the
    installed TensorRT has no Python plugin API."""
    try:
        import tensorrt.plugin as trtp
    except ImportError:
        return False
    import torch

    from model.merge import bipartite_soft_matching, merge_tokens

    if PLUGIN_ID in getattr(trtp, "_plugin_ids", set()):
        return True

    @trtp.register(PLUGIN_ID)
    def _desc(x: trtp.TensorDesc, size: trtp.TensorDesc, source: trtp.TensorDesc, metric: trtp.TensorDesc, r: int
              ) -> tuple[trtp.TensorDesc, trtp.TensorDesc, trtp.TensorDesc]:  # fmt: skip
        outs = (x.like(), size.like(), source.like())
        for out, inp in zip(outs, (x, size, source)):
            out.shape_expr[1] = inp.shape_expr[1] - r
        return outs

    @trtp.impl(PLUGIN_ID)
    def _impl(x: trtp.Tensor, size: trtp.Tensor, source: trtp.Tensor, metric: trtp.Tensor, r: int,
              outputs: tuple[trtp.Tensor], stream: int) -> None:  # fmt: skip
        with torch.cuda.stream(torch.cuda.ExternalStream(stream)):
            t = [torch.as_tensor(v, device="cuda") for v in (x, size, source, metric)]
            merged = merge_tokens(t[0], t[1], bipartite_soft_matching(t[3], r), t[2])
            for dst, src in zip(outputs, merged):
                torch.as_tensor(dst, device="cuda").copy_(src)

    trtp._plugin_ids = getattr(trtp, "_plugin_ids", set()) | {PLUGIN_ID}
    return True


def name_plugin_namespace(model: onnx.ModelProto) -> onnx.ModelProto:
    """Mark TokenMerge nodes with `plugin_namespace`, which tells TensorRT's parser to prefer
    a registered plugin over the function body."""
    for node in model.graph.node:
        if (
            node.domain == DOMAIN
            and node.op_type == OP
            and not any(a.name == "plugin_namespace" for a in node.attribute)
        ):
            node.attribute.append(helper.make_attribute("plugin_namespace", DOMAIN))
    for fn in model.functions:
        if fn.domain == DOMAIN and fn.name == OP and "plugin_namespace" not in fn.attribute:
            fn.attribute.append("plugin_namespace")
    return model


def build_engine(
    onnx_path: Path, out: Path, fp16: bool = False, max_batch: int = 8, use_plugin: bool = True
) -> Path:
    trt = require_tensorrt()
    plugin = use_plugin and register_plugin()
    model = onnx.load(str(onnx_path))
    if plugin:
        model = name_plugin_namespace(model)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if plugin and hasattr(trt.OnnxParserFlag, "ENABLE_PLUGIN_OVERRIDE"):
        parser.set_flag(trt.OnnxParserFlag.ENABLE_PLUGIN_OVERRIDE)
    if not parser.parse(model.SerializeToString()):
        errors = "\n".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}:\n{errors}")
    config = builder.create_builder_config()
    if fp16:
        # LayerNorm overflows in FP16 ViTs: keep normalization layers in FP32.
        config.set_flag(trt.BuilderFlag.FP16)
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            if layer.type == trt.LayerType.NORMALIZATION:
                layer.precision = trt.float32
    frames = network.get_input(0)
    shape = tuple(frames.shape)[1:]
    profile = builder.create_optimization_profile()
    profile.set_shape(
        frames.name, (1, *shape), (max(1, max_batch // 2), *shape), (max_batch, *shape)
    )
    config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise RuntimeError("TensorRT failed to build the engine (see the log above)")
    out = Path(out)
    out.write_bytes(bytes(engine))
    return out
