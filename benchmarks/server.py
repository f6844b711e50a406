"""Server throughput and latency on loopback: clips/s and p50/p95/p99 at several concurrency
levels, the time split (decode, queue, inference) from /metrics, the raw model throughput of
the same backend and batch size, the server's efficiency against the pipeline bound, and
open-vocabulary label-set cost. With `--baseline REF` the server of an earlier commit runs
the same load in the same run (from a temporary git worktree), side by side; with
`--variant NAME:KEY=VALUE,...` this tree's server under other environment variables does;
`--rounds N` runs the servers in turn N times, so that a drift of the machine falls on all.

The pipeline bound is `cores / (decode CPU-s per clip + inference CPU-s per clip)`, each
measured alone in this run: what the machine could serve if neither stage ever waited.

    python -m benchmarks.server --checkpoint checkpoints/default --baseline 8f3b2e1
    python -m benchmarks.server --preset B/16          # random-weight B/16 checkpoint
    python -m benchmarks.server --variant passive:OMP_WAIT_POLICY=PASSIVE --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch

from media import decode_clip, write_video
from model import build_alt, load_checkpoint, preset, save_checkpoint

from .common import machine, median_seconds, percentile, table

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, env: dict[str, str], root: Path = ROOT) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        port = self.url.rsplit(":", 1)[1]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "server.api:create_app", "--port", port, "--log-level", "warning"],
            env={**os.environ, **env, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))},
            cwd=root,
        )  # fmt: skip
        for _ in range(600):
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


def stage_means(before: str, after: str) -> dict[str, float]:
    def read(text: str) -> dict[str, tuple[float, float]]:
        out = {}
        for stage in ("decode", "queue", "inference", "total"):
            s = re.search(rf'alt_stage_seconds_sum{{stage="{stage}"}} (\S+)', text)
            c = re.search(rf'alt_stage_seconds_count{{stage="{stage}"}} (\S+)', text)
            out[stage] = (float(s.group(1)) if s else 0.0, float(c.group(1)) if c else 0.0)
        return out

    a, b = read(before), read(after)
    return {k: 1000 * (b[k][0] - a[k][0]) / max(1.0, b[k][1] - a[k][1]) for k in a}


async def load(
    url: str, videos: list[bytes], concurrency: int, requests: int
) -> tuple[list[float], float]:
    latencies: list[float] = []
    counter = iter(range(requests))

    async def worker(client: httpx.AsyncClient) -> None:
        for i in counter:
            t = time.perf_counter()
            r = await client.post("/recognize", content=videos[i % len(videos)], params={"explain": "none"},
                                  headers={"content-type": "video/mp4"})  # fmt: skip
            r.raise_for_status()
            latencies.append(time.perf_counter() - t)

    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*[worker(client) for _ in range(concurrency)])
        return latencies, time.perf_counter() - t0


def sample_videos(folder: Path, n: int = 8) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        frames = np.full((50, 240, 320, 3), rng.integers(0, 255, 3), np.uint8)
        for t in range(50):
            frames[t, 100:140, 4 * t : 4 * t + 40] = 255 - frames[t, 0, 0]
        write_video(folder / f"v{i}.mp4", frames, fps=25)
        out.append((folder / f"v{i}.mp4").read_bytes())
    return out


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def raw_throughput(
    checkpoint: Path, videos: list[bytes], batch: int, device: str, dtype: str
) -> tuple[float, float, float]:
    """(clips/s of the model alone at `batch`, its CPU-s per clip, decode CPU-s per clip)."""
    from server.engine.backends.torch_backend import TorchBackend

    backend = TorchBackend(checkpoint, device, dtype)
    info = backend.info

    def decode_all():
        return [
            decode_clip(v, info.frames, info.image_size, info.clips, info.crops, threads=1)[0]
            for v in videos
        ]

    decode_all()
    t = cpu_seconds()
    clips = np.concatenate(decode_all())
    decode_cpu = (cpu_seconds() - t) / len(clips)
    reps = int(np.ceil(batch / len(clips)))
    frames = np.concatenate([clips] * reps)[:batch]
    secs = median_seconds(lambda: backend.encode_video(frames, False), device, reps=3)
    t = cpu_seconds()
    for _ in range(3):
        backend.encode_video(frames, False)
    model_cpu = (cpu_seconds() - t) / (3 * batch)
    return batch / secs, model_cpu, decode_cpu


@contextlib.contextmanager
def worktree(ref: str):
    """The repository at `ref`, checked out in a temporary folder (the shipped checkpoint
    is taken from this tree, so an old commit is measured on today's model files)."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(path), ref], cwd=ROOT,
                       check=True, capture_output=True)  # fmt: skip
        try:
            yield path
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT,
                           check=False, capture_output=True)  # fmt: skip


def open_vocab(url: str, video: bytes, n_labels: int, reps: int) -> tuple[float, float]:
    def post(params):
        t = time.perf_counter()
        httpx.post(
            url + "/recognize",
            content=video,
            params=params,
            headers={"content-type": "video/mp4"},
            timeout=600,
        ).raise_for_status()
        return time.perf_counter() - t

    cached = [post({"explain": "none"}) for _ in range(reps)]
    fresh = [
        post(
            {
                "explain": "none",
                "labels": ",".join(f"action {k} number {j}" for j in range(n_labels)),
            }
        )
        for k in range(reps)
    ]
    return float(np.median(cached)), float(np.median(fresh))


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--checkpoint", type=Path, help="default: a random-weight checkpoint of --preset"
    )
    p.add_argument("--preset", default="B/16")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    p.add_argument(
        "--requests", type=int, default=0, help="per level (default: max(16, 2 x concurrency))"
    )
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="fp32")
    p.add_argument("--baseline", help="a git revision whose server runs the same load")
    p.add_argument(
        "--env", nargs="*", default=[], help="extra ALT_* settings for the server, KEY=VALUE"
    )
    p.add_argument(
        "--variant", action="append", default=[],
        help="this tree's server with other environment variables too: NAME:KEY=VALUE,...",
    )  # fmt: skip
    p.add_argument("--rounds", type=int, default=1, help="run the servers in turn this often")
    p.add_argument(
        "--labels",
        type=int,
        default=400,
        help="size of the new label set for the open-vocabulary test",
    )
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        tmp = Path(tmp)
        checkpoint = a.checkpoint
        if checkpoint is None:
            torch.manual_seed(0)
            model, corpus = build_alt(preset(a.preset))
            checkpoint = tmp / "ckpt"
            save_checkpoint(checkpoint, model, corpus, [f"action {i}" for i in range(400)])
        config = load_checkpoint(checkpoint).model.config
        name, views = config.name, config.views  # each video is `views` clips
        videos = sample_videos(tmp)
        raw, model_cpu, decode_cpu = raw_throughput(checkpoint, videos, a.batch, a.device, a.dtype)
        cores = len(os.sched_getaffinity(0))
        bound = cores / (model_cpu + decode_cpu)
        print(
            f"Machine: {machine()}\nModel {name} on {a.device} {a.dtype}; raw model throughput at "
            f"batch {a.batch}: {raw:.2f} clips/s\nAlone, per clip: decode {1000 * decode_cpu:.1f} "
            f"CPU ms, inference {1000 * model_cpu:.1f} CPU ms; pipeline bound on {cores} cores: "
            f"{bound:.1f} clips/s\n"
        )
        extra = dict(kv.split("=", 1) for kv in a.env)
        servers: list[tuple[str, Path, dict[str, str]]] = [("this", ROOT, {})]
        if a.baseline:
            servers.append((a.baseline, stack.enter_context(worktree(a.baseline)), {}))
        for variant in a.variant:
            name, _, pairs = variant.partition(":")
            servers.append((name, ROOT, dict(kv.split("=", 1) for kv in pairs.split(",") if kv)))
        rows = []
        cached = fresh = float("nan")
        for turn, (label, root, own) in enumerate(servers * a.rounds):
            env = {"ALT_CHECKPOINT": str(checkpoint), "ALT_DEVICE": a.device, "ALT_DTYPE": a.dtype,
                   "ALT_MAX_BATCH_SIZE": str(a.batch), "ALT_MAX_WAIT_MS": "5",
                   "ALT_MAX_IN_FLIGHT": "1024", "ALT_REQUEST_TIMEOUT_S": "600", **extra, **own}  # fmt: skip
            server = Server(env, root)
            try:
                asyncio.run(load(server.url, videos, 2, 4))  # warm
                for c in a.concurrency:
                    n = a.requests or max(16, 2 * c)
                    before = httpx.get(server.url + "/metrics").text
                    lat, wall = asyncio.run(load(server.url, videos, c, n))
                    split = stage_means(before, httpx.get(server.url + "/metrics").text)
                    clips = views * n / wall
                    rows.append([label, c, n, n / wall, clips, 100 * clips / raw, 100 * clips / bound,
                                 1000 * percentile(lat, 50), 1000 * percentile(lat, 95), 1000 * percentile(lat, 99),
                                 split["decode"], split["queue"], split["inference"]])  # fmt: skip
                if turn == 0:  # this tree's server, in the first round
                    cached, fresh = open_vocab(server.url, videos[0], a.labels, 3)
            finally:
                server.stop()
        print(table(["server", "clients", "requests", "videos/s", "clips/s", "% of raw", "% of bound", "p50 ms",
                     "p95 ms", "p99 ms", "decode ms", "queue ms", "inference ms"], rows))  # fmt: skip
        print(
            f"\nOpen vocabulary: request with the cached default label set {1000 * cached:.0f} ms; "
            f"with a new set of {a.labels} labels {1000 * fresh:.0f} ms (median of 3)"
        )


if __name__ == "__main__":
    main()
