"""bf16 vs fp32 on the shipped default model: speed and top-1 agreement on fresh world clips.

python -m benchmarks.bf16 [--checkpoint checkpoints/default] [--per-class 2]
"""

from __future__ import annotations

import argparse
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
    x = alt.normalize(torch.stack(clips))
    y = torch.tensor(targets)
    with torch.inference_mode():
        label_emb = alt.encode_labels(labels)
    rows, preds = [], {}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):

        def forward(dtype=dtype):
            out = []
            with (
                torch.inference_mode(),
                torch.autocast("cpu", dtype=dtype, enabled=dtype is not None),
            ):
                for i in range(0, len(x), a.batch):
                    out.append(alt.encode_video(x[i : i + a.batch]).embedding.float())
            return torch.cat(out)

        preds[name] = (forward() @ label_emb.t()).argmax(1)
        secs = median_seconds(forward, reps=3)
        rows.append([name, len(x) / secs, float((preds[name] == y).float().mean()) * 100])
    agree = float((preds["fp32"] == preds["bf16"]).float().mean()) * 100
    print(f"Machine: {machine()}\n{cfg.name}: {len(x)} fresh clips, batch {a.batch}\n")
    print(table(["dtype", "clips/s", "top-1 %"], rows))
    print(
        f"\nbf16 speed-up {rows[1][1] / rows[0][1]:.2f}x; top-1 predictions identical on {agree:.1f}% of clips"
    )


if __name__ == "__main__":
    main()
