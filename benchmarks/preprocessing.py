"""Accuracy of a checkpoint under two preprocessings of the same clips: the decoder before
`media/` (full-size RGB, torch antialiased bilinear resize) and `media/` (libswscale
bilinear straight to the model's size). For the shipped default: the seed-0 world's test
split (seen classes) and zero-shot split, the ones its report was measured on.

    python -m benchmarks.preprocessing [--checkpoint checkpoints/default] [--per-class 16]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from media import decode_frames
from model import load_checkpoint
from training.data import ClipDataset, read_csv
from training.evaluate import accuracy, embed
from training.generate import generate_world
from training.train import ALTVideo

from .common import LEGACY_DECODER, module_at, table

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "default"


def evaluate(checkpoint: Path, world: Path, decode) -> dict[str, dict]:
    bundle = load_checkpoint(checkpoint)
    alt = bundle.model.eval()
    held = json.loads((world / "world.json").read_text())["held_out"]
    out = {}
    for split, labels in (("test", bundle.labels), ("zeroshot", held)):
        samples = read_csv(world / f"{split}.csv")
        cache = {
            (s.path, alt.config.image_size): decode(s.path, alt.config.image_size) for s in samples
        }
        ds = ClipDataset(samples, labels, alt.config.frames, alt.config.image_size, train=False,
                         cache=cache, progress=False)  # fmt: skip
        module = ALTVideo(alt)
        with torch.no_grad():
            emb, targets = embed(module, ds)
            out[split] = accuracy(emb, targets, alt.encode_labels(labels))
    return out


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    p.add_argument("--per-class", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        world = Path(tmp) / "world"
        n = a.per_class
        generate_world(
            world, {"train": 0, "val": 0, "test": n, "fewshot": 0, "zeroshot": n}, seed=a.seed
        )
        legacy = module_at(*LEGACY_DECODER, "legacy_video")
        decoders = {
            "before media/ (torch resize)": lambda p, s: legacy.decode_frames(p, s),
            "media/ (libswscale)": lambda p, s: torch.from_numpy(decode_frames(p, s)),
        }
        rows = []
        for name, fn in decoders.items():
            r = evaluate(a.checkpoint, world, fn)
            rows.append(
                [
                    name,
                    r["test"]["top1"],
                    r["test"]["top5"],
                    r["zeroshot"]["top1"],
                    r["zeroshot"]["top5"],
                ]
            )
        print(f"{a.checkpoint}: world seed {a.seed}, {n} clips per class\n")
        print(
            table(
                ["preprocessing", "seen top-1", "seen top-5", "zero-shot top-1", "zero-shot top-5"],
                rows,
            )
        )


if __name__ == "__main__":
    main()
