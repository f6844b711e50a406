"""Decoding: CPU time to get a model's frames out of a video, the decoder before `media/`
(`model/video.py` at commit 8f3b2e1, read from git: full-size RGB and a torch resize; the
server's old defaults) against `media.decode_clip`
(the sampled frames only, seeks planned on keyframes, scaled in libswscale; one codec
thread, as a decode worker runs it), and as a share of a ViT-B/16 clip's CPU time.

    python -m benchmarks.decode [--frames 8 --size 224] [--reps 3]
"""

from __future__ import annotations

import argparse
import resource
from pathlib import Path

import numpy as np
import torch

from media import decode_clip, write_video
from tests.videos import gradient_frames

from .common import LEGACY_DECODER, module_at, table

SIZES = {"480p": (480, 854), "720p": (720, 1280), "1080p": (1080, 1920)}


def make_video(
    path: Path, height: int, width: int, seconds: float, fps: int = 25, keyframe_every=None,
    seed: int = 0,
) -> Path:  # fmt: skip
    """Moving gradients with noise: compresses like camera footage more than flat color does.
    Written whole or not at all, so a file found there is a finished one."""
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = gradient_frames(int(seconds * fps), height, width, seed=seed)
    part = path.with_suffix(".part" + path.suffix)
    write_video(part, frames, fps=fps, crf=28, keyframe_every=keyframe_every)
    part.replace(path)
    return path


def cpu_seconds() -> float:
    """CPU time of this process, all its threads (FFmpeg's and torch's) included."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def median_cpu(fn, reps: int) -> float:
    fn()  # warm
    times = []
    for _ in range(reps):
        t = cpu_seconds()
        fn()
        times.append(cpu_seconds() - t)
    return float(np.median(times))


def vit_clip_cpu(frames: int, reps: int) -> float:
    """CPU-seconds of one ViT-B/16 ALT (r = 8) forward over one clip of `frames` frames."""
    from model import build_alt, preset

    torch.manual_seed(0)
    alt, _ = build_alt(preset("B/16").replace(frames=frames))
    alt.eval()
    x = torch.randn(1, frames, 3, 224, 224)
    with torch.inference_mode():
        return median_cpu(lambda: alt.encode_video(x), reps)


def world_clips(folder: Path, n: int = 4) -> list[Path]:
    from training.actions import SEEN
    from training.generate import render_clip

    out = []
    for i, action in enumerate(list(SEEN)[:n]):
        path = folder / f"world-{i}.mp4"
        if not path.is_file():
            write_video(path, render_clip(action, 1000 + i)[0])
        out.append(path)
    return out


def cases(folder: Path, names: list[str], seconds: float) -> list[tuple[str, list[Path], int]]:
    """(name, files, frame size the model takes)."""
    out = []
    for name in names:
        h, w = SIZES[name]
        for gop, tag in ((None, "1 keyframe"), (50, "keyframe / 2 s")):
            path = make_video(
                folder / f"{name}-{seconds:g}s-{gop}.mp4", h, w, seconds, keyframe_every=gop
            )
            out.append((f"{name} {seconds:g} s, {tag}", [path], 224))
    if "720p" in names and seconds < 60:
        path = make_video(folder / "720p-60s.mp4", 720, 1280, 60, keyframe_every=50)
        out.append(("720p 60 s, keyframe / 2 s", [path], 224))
    out.append(("generated world clip (128 px, 2 s)", world_clips(folder), 96))
    return out


def nvdec_rows(folder: Path, frames: int, reps: int, names: list[str], seconds: float) -> str:
    """Wall ms per video, CPU decoding (one codec thread, as a worker) against NVDEC."""
    import time

    from media.worker import _hwaccel

    def wall(fn) -> float:
        fn()
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return float(np.median(times))

    rows = []
    for name, paths, size in cases(folder, names, seconds):
        data = paths[0].read_bytes()
        cpu = wall(lambda d=data, s=size: decode_clip(d, frames, s, threads=1))
        gpu = wall(lambda d=data, s=size: decode_clip(d, frames, s, hwaccel=_hwaccel("cuda")))
        used = decode_clip(data, frames, size, hwaccel=_hwaccel("cuda"))[1].decoder
        rows.append([name, 1000 * cpu, 1000 * gpu, cpu / gpu, used])
    return table(["video", "CPU wall ms", "NVDEC wall ms", "CPU / NVDEC", "decoded on"], rows)


def run(folder: Path, frames: int, reps: int, names: list[str], seconds: float, model: bool) -> str:
    torch.set_num_threads(1)  # one core's CPU time, as one decode worker spends it
    rows = []
    legacy = module_at(*LEGACY_DECODER, "legacy_video")
    vit = vit_clip_cpu(frames, reps) if model else None
    for name, paths, size in cases(folder, names, seconds):
        datas = [p.read_bytes() for p in paths]

        def old(size=size, datas=datas):
            for d in datas:
                legacy.decode_clip(d, frames, size)

        def new(size=size, datas=datas):
            for d in datas:
                decode_clip(d, frames, size, threads=1)

        o, n = median_cpu(old, reps) / len(datas), median_cpu(new, reps) / len(datas)
        share = f"{100 * n / (n + vit):.1f}%" if vit and size == 224 else "-"
        old_share = f"{100 * o / (o + vit):.1f}%" if vit and size == 224 else "-"
        rows.append([name, 1000 * o, 1000 * n, o / n, old_share, share])
    head = f"{frames} frames from each video, CPU ms per video (median of {reps}); " + (
        f"a ViT-B/16 ALT r=8 clip costs {1000 * vit:.0f} CPU ms here" if vit else ""
    )
    return (
        head
        + "\n\n"
        + table(["video", "old CPU ms", "new CPU ms", "old / new", "old share", "new share"], rows)
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--folder", type=Path, default=Path("runs/bench-videos"))
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--no-model", action="store_true", help="skip the ViT-B/16 share column")
    p.add_argument("--nvdec", action="store_true", help="also compare NVDEC (needs CUDA)")
    a = p.parse_args()
    print(run(a.folder, a.frames, a.reps, a.sizes, a.seconds, not a.no_model))
    if a.nvdec:
        print("\n" + nvdec_rows(a.folder, a.frames, a.reps, a.sizes, a.seconds))


if __name__ == "__main__":
    main()
