"""`alt export onnx CHECKPOINT OUTDIR`: the video encoder and the text encoder as ONNX graphs.

    video.onnx   frames uint8 (B, T, 3, H, W) -> embedding (B, D), entity_ids (B, K),
                 entity_scores (B, K), region_entities (B, T, R), patch_entities (B, T, P)
    text.onnx    tokens int64 (N, L) -> prompt embeddings (N, D), normalized
    label_map.npz  the affine label map, when the model has one (weight, bias)
    meta.json    what a runtime needs besides: sizes, entities, labels, templates, scale

Batch is dynamic; T, H, W are fixed per export. Token merging is one `ai.alt::TokenMerge`
node per layer, with its function body attached (export/token_merge.py).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import Tensor, nn

from model.align import patch_entities
from model.alt import ALT
from model.checkpoint import load_checkpoint
from model.clip import tokenizer
from model.contract import TEXT_INPUT, TEXT_OUTPUTS, VIDEO_INPUT, VIDEO_OUTPUTS
from model.tokenizer import tokenizer_spec

from .token_merge import BODY_OPSET, attach, merge_for_export

OPSET = BODY_OPSET  # a model's functions must use the opset of the model itself


class VideoGraph(nn.Module):
    def __init__(self, alt: ALT) -> None:
        super().__init__()
        self.alt = alt

    def forward(self, frames: Tensor) -> tuple[Tensor, ...]:
        out = self.alt.encode_video(
            self.alt.normalize(frames), track_source=True, merge=merge_for_export
        )
        patches = patch_entities(out.sources, out.region_entities)
        return out.embedding, out.entity_ids, out.entity_scores, out.region_entities, patches


class TextGraph(nn.Module):
    def __init__(self, alt: ALT) -> None:
        super().__init__()
        self.alt = alt

    def forward(self, tokens: Tensor) -> Tensor:
        # The whole context through open_clip's tower: shapes must not depend on the tokens.
        return self.alt.clip.encode_text(tokens, normalize=True)


def export_onnx(checkpoint: Path, out: Path, batch: int = 2) -> dict:
    """Export both graphs; returns the metadata written to `meta.json`."""
    bundle = load_checkpoint(checkpoint)
    alt, cfg = bundle.model.eval(), bundle.model.config
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frames = torch.randint(
        0, 256, (batch, cfg.frames, 3, cfg.image_size, cfg.image_size), dtype=torch.uint8
    )
    tokens = alt.tokenize(["a video of a person waving.", "a cup."])
    fastpath = torch.backends.mha.get_fastpath_enabled()
    # The TorchScript exporter cannot trace nn.MultiheadAttention's fused fast path.
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        # The tracer warns about every shape assert and int() it freezes; T, H, W are fixed
        # per export by design.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                VideoGraph(alt), (frames,), str(out / "video.onnx"), opset_version=OPSET, dynamo=False,
                input_names=[VIDEO_INPUT], output_names=list(VIDEO_OUTPUTS),
                dynamic_axes={VIDEO_INPUT: {0: "batch"}, **{name: {0: "batch"} for name in VIDEO_OUTPUTS}},
                custom_opsets={"ai.alt": 1},
            )  # fmt: skip
            torch.onnx.export(
                TextGraph(alt), (tokens,), str(out / "text.onnx"), opset_version=OPSET, dynamo=False,
                input_names=[TEXT_INPUT], output_names=list(TEXT_OUTPUTS),
                dynamic_axes={TEXT_INPUT: {0: "n"}, TEXT_OUTPUTS[0]: {0: "n"}},
            )  # fmt: skip
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    (out / "tokenizer.json").write_text(json.dumps(tokenizer_spec(tokenizer(cfg.clip_arch))))
    video = attach(onnx.load(str(out / "video.onnx")))
    meta = bundle.meta(Path(checkpoint).resolve().name, int(tokens.shape[1])).to_json()
    for key in ("name", "frames", "image_size", "grid"):
        entry = video.metadata_props.add()
        entry.key, entry.value = key, json.dumps(meta[key])
    onnx.checker.check_model(video, full_check=True)
    onnx.save(video, str(out / "video.onnx"))
    onnx.checker.check_model(onnx.load(str(out / "text.onnx")), full_check=True)
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    if alt.label_proj is not None:
        np.savez(
            out / "label_map.npz",
            weight=alt.label_proj.weight.detach().numpy(),
            bias=alt.label_proj.bias.detach().numpy(),
        )
    return meta
