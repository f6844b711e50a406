"""Training data at scale: memory and time to the first step against the dataset's size,
and how many clips one decode worker feeds.

1. `alt train` (B/16, 2 decode workers) on 200 and on 2,000 generated 10 s 320x240 videos,
   each run stopped after a few optimizer steps (`--max-steps`): the peak memory of the
   whole process tree (the trainer and its DataLoader workers, sampled every 0.2 s; RSS and
   PSS, which counts pages shared by forked workers once) and the time from the command's
   start to its first batch and its first optimizer step.
2. Clips/s of one DataLoader worker decoding 10 s 720p (and 320x240) videos into training
   clips (8 frames at 224 px, random resized crop and mirror), with 1 and 2 workers.
3. On paper: from the model's multiply-adds (`model.flops`) and a GPU's measured bf16 matmul
   rate, training clips/s per GPU for B/16 and L/14, and the decode workers (cores) it takes
   to keep one GPU busy.

    python -m benchmarks.train_data [--sizes 200 2000] [--distinct 200] [--steps 3]

Encoding 2,000 distinct videos takes about 25 CPU-minutes here; the first `--distinct` are
encoded (distinct noise per video), the rest are byte copies of them under their own names
and labels (what memory depends on is the number of items, not their pixels).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tests.procs import process_tree

from .common import machine, table
from .decode import make_video

# A GPU's bf16 dense matmul rate, measured by `benchmarks.model` on an H200
# (`results/gpu-h200-model.txt`), and the share of it ALT r=8 reached in inference at batch 8.
GPU_BF16_GFLOPS = 415304.0
GPU_UTILIZATION = 0.354


def _encode(args: tuple[Path, int, int, int, float]) -> Path:
    path, seed, height, width, seconds = args
    return make_video(path, height, width, seconds, keyframe_every=50, seed=seed)


def make_videos(folder: Path, n: int, distinct: int, size=(240, 320), seconds=10.0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    distinct = min(n, distinct)
    jobs = [(folder / f"v{i:05d}.mp4", i, *size, seconds) for i in range(distinct)]
    with ProcessPoolExecutor(max(1, (os.cpu_count() or 2))) as pool:
        made = list(pool.map(_encode, jobs))
    paths = list(made)
    for i in range(distinct, n):
        path = folder / f"v{i:05d}.mp4"
        if not path.is_file():
            shutil.copyfile(made[i % distinct], path)
        paths.append(path)
    return paths


def write_csv(path: Path, videos: list[Path], classes: int = 10) -> Path:
    rows = ["path,label"] + [f"{v},action {i % classes}" for i, v in enumerate(videos)]
    path.write_text("\n".join(rows) + "\n")
    return path


def _kib(path: str, key: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory(root: int) -> tuple[int, int, int]:
    """(RSS, PSS, processes) of a process and its descendants, in KiB."""
    pids = process_tree(root)
    rss = sum(_kib(f"/proc/{p}/status", "VmRSS:") for p in pids)
    pss = sum(_kib(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids)
    return rss, pss, len(pids)


def first_scalar_time(logdir: Path, tag: str = "train/loss") -> float | None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir))
    acc.Reload()
    if tag not in acc.Tags().get("scalars", []):
        return None
    return min(e.wall_time for e in acc.Scalars(tag))


def train_run(csv: Path, out: Path, steps: int, workers: int, batch: int) -> dict:
    alt = Path(sys.executable).with_name("alt")
    cmd = [str(alt), "train", "--train", str(csv), "--out", str(out), "--preset", "B/16",
           "--workers", str(workers), "--batch-size", str(batch), "--epochs", "1",
           "--max-steps", str(steps), "--device", "cpu", "--crop-scale", "0.4", "1"]  # fmt: skip
    peak_rss = peak_pss = procs = 0
    t0 = time.time()
    with open(out.with_suffix(".log"), "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            rss, pss, n = tree_memory(proc.pid)
            peak_rss, peak_pss, procs = max(peak_rss, rss), max(peak_pss, pss), max(procs, n)
            time.sleep(0.2)
    wall = time.time() - t0
    if proc.returncode != 0:
        raise SystemExit(f"alt train failed ({proc.returncode}): {out.with_suffix('.log')}")
    summary = json.loads((out / "training.json").read_text())
    first_loss = first_scalar_time(out / "tensorboard")
    return {
        "peak_rss_mb": peak_rss / 1024,
        "peak_pss_mb": peak_pss / 1024,
        "processes": procs,
        "wall_s": wall,
        "to_first_step_s": (first_loss - t0) if first_loss else float("nan"),
        "train_first_batch_s": summary["first_batch_s"],
        "train_first_step_s": summary["first_step_s"],
        "steps": summary["steps"],
    }


def decode_rate(videos: list[Path], workers: int, items: int, size: int = 224) -> float:
    """Training clips/s out of a DataLoader with `workers` processes (after one warm batch
    per worker), as the trainer draws them."""
    from torch.utils.data import DataLoader

    from training.data import Sample
    from training.video_data import Augment, VideoDataset, collate

    samples = [Sample(v, "a") for v in itertools.islice(itertools.cycle(videos), items + workers)]
    ds = VideoDataset(samples, ["a"], 8, size, train=True, augment=Augment(crop_scale=(0.4, 1.0)))
    loader = DataLoader(ds, batch_size=1, num_workers=workers, collate_fn=collate,
                        prefetch_factor=2, persistent_workers=False)  # fmt: skip
    it = iter(loader)
    for _ in range(workers):
        next(it)
    t = time.perf_counter()
    got = sum(1 for _ in it)
    return got / (time.perf_counter() - t)


def on_paper(per_worker: dict[str, float]) -> list[list]:
    from model import preset
    from model.flops import count

    rows = []
    for name in ("B/16", "L/14"):
        macs = count(preset(name)).per_view  # 8 frames, one view
        for recompute in (False, True):
            passes = 4 if recompute else 3  # forward + backward (2x), + a recomputed forward
            gpu = GPU_BF16_GFLOPS * GPU_UTILIZATION * 1e9 / (2 * macs * passes)
            rows.append([name, "yes" if recompute else "no", f"{macs / 1e9:.0f}", f"{gpu:.0f}",
                         *(f"{gpu / r:.0f}" for r in per_worker.values())])  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[200, 2000])
    ap.add_argument("--distinct", type=int, default=200)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--items", type=int, default=24, help="clips timed per decode rate")
    ap.add_argument("--dir", type=Path, default=None, help="keep the videos here")
    args = ap.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="alt-train-data-"))
    lines = [f"Machine: {machine()}, {os.cpu_count()} cores", ""]

    t = time.perf_counter()
    videos = make_videos(root / "small", max(args.sizes), args.distinct)
    lines.append(f"{max(args.sizes)} videos (10 s, 320x240, {min(args.distinct, max(args.sizes))} "
                 f"encoded, the rest copies) ready in {time.perf_counter() - t:.0f} s")  # fmt: skip
    rows = []
    for n in args.sizes:
        csv = write_csv(root / f"train-{n}.csv", videos[:n])
        out = root / f"run-{n}"
        shutil.rmtree(out, ignore_errors=True)
        r = train_run(csv, out, args.steps, args.workers, args.batch)
        rows.append([n, f"{r['peak_rss_mb']:.0f}", f"{r['peak_pss_mb']:.0f}", r["processes"],
                     f"{r['train_first_batch_s']:.1f}", f"{r['to_first_step_s']:.1f}",
                     f"{r['train_first_step_s']:.1f}", r["steps"], f"{r['wall_s']:.0f}"])  # fmt: skip
        print(rows[-1], flush=True)
    lines += [
        f"alt train --preset B/16 --workers {args.workers} --batch-size {args.batch} "
        f"--max-steps {args.steps} (fp32, CPU, random weights):",
        "",
        table(
            [
                "videos",
                "peak RSS MB (tree)",
                "peak PSS MB (tree)",
                "processes",
                "train(): first batch s",
                "command start to first step s",
                "train(): first step s",
                "steps",
                "wall s",
            ],
            rows,
        ),  # fmt: skip
        "",
    ]
    if len(rows) >= 2:
        a, b = float(rows[0][2]), float(rows[-1][2])
        lines.append(f"PSS {rows[-1][0]} / {rows[0][0]} videos: {b / a:.3f}")
        lines.append("")

    hd = make_videos(root / "720p", 6, 6, size=(720, 1280))
    rates = []
    for name, vids in (("320x240", videos[:12]), ("1280x720", hd)):
        for w in (1, 2):
            r = decode_rate(vids, w, args.items)
            rates.append([name, w, f"{r:.2f}", f"{r / w:.2f}"])
            print(rates[-1], flush=True)
    lines += [
        "Training clips (8 frames, 224 px, random resized crop 0.4-1, mirror) from 10 s videos:",
        "",
        table(["video", "workers", "clips/s", "clips/s per worker"], rates),
        "",
    ]
    per_worker = {row[0]: float(row[3]) for row in rates if row[1] == 1}
    lines += [
        f"On paper: a GPU at {GPU_BF16_GFLOPS / 1e3:.0f} TFLOP/s bf16 (H200, measured) x "
        f"{GPU_UTILIZATION:.1%} utilization (ALT r=8 inference, batch 8, measured); decode "
        "workers from the one-worker rates above:",
        "",
        table(
            [
                "model",
                "activation checkpointing",
                "GMACs/clip",
                "GPU training clips/s",
                *(f"cores per GPU, {k} videos" for k in per_worker),
            ],
            on_paper(per_worker),
        ),  # fmt: skip
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
