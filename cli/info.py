"""`alt info`: what a preset costs, counted the way the video-CLIP papers count it."""

from __future__ import annotations

import sys

from model.config import PRESETS, preset


def describe(name: str, num_entities: int) -> str:
    from model.flops import PAPER_B16_GFLOPS, count, count_params

    config = preset(name)
    cost, cost_r0 = (
        count(config, num_entities),
        count(config.replace(merge_r=0, merge_schedule=()), num_entities),
    )
    params = count_params(config)
    views = f"{config.frames} frames x ({config.test_clips} clips x {config.test_crops} crops)"
    lines = [
        f"{name}  ({config.clip_arch}, {config.image_size}px, {views})",
        f"  tokens per layer   {' -> '.join(map(str, cost.tokens))}",
        f"  params (M)         visual {params.visual / 1e6:.1f}  text {params.text / 1e6:.1f}  "
        f"adapter {params.adapter / 1e6:.1f}  total {params.total / 1e6:.1f}",
        f"  GFLOPs             per view {cost.per_view / 1e9:.1f}  per clip {cost.per_clip / 1e9:.1f}"
        f"   (r = 0: {cost_r0.per_view / 1e9:.1f} / {cost_r0.per_clip / 1e9:.1f})",
        f"  text encoder       {cost.text_per_prompt / 1e9:.2f} GFLOPs per prompt, cached per label set",
    ]
    if name == "B/16":
        lines.append(f"  paper (ALT-B/16)   {PAPER_B16_GFLOPS:.0f} GFLOPs per clip")
    return "\n".join(lines)


def run_info(names: list[str], num_entities: int) -> int:
    names = names or list(PRESETS)
    unknown = [n for n in names if n not in PRESETS]
    if unknown:
        print(f"unknown preset(s) {unknown}; choose from {list(PRESETS)}", file=sys.stderr)
        return 2
    print(
        f"Multiply-adds of matmuls and convolutions (fvcore style); corpus of {num_entities} entities.\n"
    )
    for name in names:
        print(describe(name, num_entities) + "\n")
    return 0
