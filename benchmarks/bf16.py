"""bf16 vs fp32 on the shipped default model: speed and top-1 on fresh world clips, for
bf16 autocast (re-casting the weights every forward) and bf16 weights cast once (as served).

python -m benchmarks.bf16 [--checkpoint checkpoints/default] [--per-class 2]
"""

from __future__ import annotations

import argparse
import copy
import io
from pathlib import Path

import torch

from media import decode_clip, write_video
from model import load_checkpoint
from training.generate import render_clip

from .common import machine, median_seconds, table


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", type=Path, default=Path("checkpoints/default"))
    p.add_argument("--per-class", dest="per_class", type=int, default=2)
    p.add_argument("--seed", type=int, default=777)
    p.add_argument("--batch", type=int, default=16)
    a = p.parse_args()
    bundle = load_checkpoint(a.checkpoint)
    alt, labels = bundle.model, bundle.labels
    cfg = alt.config
    clips, targets = [], []
    for ci, label in enumerate(labels):
        for i in range(a.per_class):
            frames, _, _ = render_clip(label, a.seed * 1000 + ci * 10 + i)
            buf = io.BytesIO()
            write_video(buf, frames)
            clips.append(
                torch.from_numpy(decode_clip(buf.getvalue(), cfg.frames, cfg.image_size)[0][0])
            )
            targets.append(ci)
    frames = torch.stack(clips)
    y = torch.tensor(targets)
    with torch.inference_mode():
        label_emb = alt.encode_labels(labels)
    cast = copy.deepcopy(alt).cast_weights(torch.bfloat16)
    variants = {
        "fp32": (alt, None),
        "bf16 autocast": (alt, torch.bfloat16),
        "bf16 weights cast once": (cast, None),
    }
    rows, preds = [], {}
    for name, (model, autocast) in variants.items():

        def forward(model=model, autocast=autocast):
            out = []
            with (
                torch.inference_mode(),
                torch.autocast("cpu", dtype=autocast, enabled=autocast is not None),
            ):
                for i in range(0, len(frames), a.batch):
                    x = model.normalize(frames[i : i + a.batch])
                    out.append(model.encode_video(x).embedding.float())
            return torch.cat(out)

        preds[name] = (forward() @ label_emb.t()).argmax(1)
        secs = median_seconds(forward, reps=3)
        rows.append([name, len(frames) / secs, float((preds[name] == y).float().mean()) * 100])
    agree = {k: float((preds["fp32"] == preds[k]).float().mean()) * 100 for k in list(variants)[1:]}
    print(f"Machine: {machine()}\n{cfg.name}: {len(frames)} fresh clips, batch {a.batch}\n")
    print(table(["variant", "clips/s", "top-1 %"], rows))
    for k, (_, speed, _) in zip(list(variants)[1:], rows[1:]):
        print(f"{k}: {speed / rows[0][1]:.2f}x fp32; top-1 identical on {agree[k]:.1f}% of clips")


if __name__ == "__main__":
    main()
