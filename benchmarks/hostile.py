"""The server under a hostile load, on loopback: mutated videos, small bombs, overload with a
short queue, and a soak. Prints status histograms, 5xx, hangs, process deaths, peak memory
and latency; asserts nothing (the tests in tests/server/ do, at small sizes).

    python -m benchmarks.hostile --checkpoint checkpoints/default \\
        [--mutants 2000] [--overload-requests 800] [--soak 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

from tests import videos

from .common import percentile, table
from .server import Server

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def post(client: httpx.Client, data: bytes, **params) -> tuple[int, float]:
    t = time.perf_counter()
    try:
        r = client.post("/recognize", content=data, params=params,
                        headers={"content-type": "application/octet-stream"})  # fmt: skip
        return r.status_code, time.perf_counter() - t
    except httpx.TimeoutException:
        return -1, time.perf_counter() - t  # a hang
    except httpx.TransportError:
        return -2, time.perf_counter() - t  # connection reset or refused


def fuzz(server: Server, n: int) -> str:
    by_kind: dict[str, Counter] = {}
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for _, kind, data in videos.mutants(n, seed=7):
            status, _ = post(client, data, explain="none")
            by_kind.setdefault(kind, Counter())[status] += 1
        ready = client.get("/readyz").status_code
    statuses = sorted({s for c in by_kind.values() for s in c})
    rows = [[k, sum(c.values()), *(c[s] for s in statuses)] for k, c in sorted(by_kind.items())]
    total = Counter()
    for c in by_kind.values():
        total.update(c)
    return (
        f"{n} mutants; 5xx {sum(v for s, v in total.items() if s >= 500)}, hangs {total[-1]}, "
        f"resets {total[-2]}, server alive {server.proc.poll() is None}, /readyz {ready}\n\n"
        + table(["mutation", "tried", *map(str, statuses)], rows)
    )


BOMBS = {
    "8000x2 MKV": lambda: videos.wide_mkv(8000, 2),
    "2000x2 MKV": lambda: videos.wide_mkv(2000, 2),
    "300 static 4K frames, raw H.264": lambda: videos.static_4k_h264(300),
    "header 160x120, frames 4096x2304": videos.size_changing_h264,
    "size changes mid-stream": lambda: videos.size_changing_h264(second=(96, 128)),
    "65536x1 FFV1": videos.needle_mkv,
}


def bombs(server: Server) -> str:
    rows = []
    with httpx.Client(base_url=server.url, timeout=120) as client:
        for name, make in BOMBS.items():
            data = make()
            status, secs = post(client, data)
            workers = children(server.proc.pid)
            rows.append([name, f"{len(data) / 1024:.0f} KB", status, 1000 * secs,
                         max(rss_mb(p, "VmHWM") for p in workers) if workers else 0,
                         rss_mb(server.proc.pid)])  # fmt: skip
    return table(["bomb", "size", "status", "ms", "peak worker RSS MB", "server RSS MB"], rows)


async def overload(url: str, clips: list[bytes], clients: int, requests: int) -> str:
    statuses: Counter = Counter()
    latencies: list[float] = []
    counter = iter(range(requests))

    async def worker(client: httpx.AsyncClient) -> None:
        for i in counter:
            t = time.perf_counter()
            r = await client.post("/recognize", content=clips[i % len(clips)],
                                  headers={"content-type": "video/mp4"})  # fmt: skip
            statuses[r.status_code] += 1
            if r.status_code == 200:
                latencies.append(time.perf_counter() - t)

    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        await asyncio.gather(*[worker(client) for _ in range(clients)])
    return (
        f"{clients} clients, {requests} requests: statuses {dict(sorted(statuses.items()))}; "
        f"429 share {100 * statuses[429] / requests:.1f}%; 200s p50 "
        f"{1000 * percentile(latencies, 50):.0f} ms, p99 {1000 * percentile(latencies, 99):.0f} ms"
    )


def soak(server: Server, clips: list[bytes], n: int) -> str:
    mix = [*clips, *(d for _, _, d in videos.mutants(40, seed=3)), videos.animated_gif()]
    marks = {}
    statuses: Counter = Counter()
    with httpx.Client(base_url=server.url, timeout=120) as client:
        for i in range(n):
            if i in (0, n // 2):
                marks[i] = rss_mb(server.proc.pid)
            params = {"labels": f"label {i % 50},other {i % 7}"} if i % 5 == 0 else {}
            status, _ = post(client, mix[i % len(mix)], **params)
            statuses[status] += 1
    marks[n] = rss_mb(server.proc.pid)
    return (
        f"{n} mixed requests (good clips, mutants, a GIF; every 5th a new label set): statuses "
        f"{dict(sorted(statuses.items()))}; server RSS start {marks[0]:.0f} MB, middle "
        f"{marks[n // 2]:.0f} MB, end {marks[n]:.0f} MB (growth {marks[n] - marks[0]:+.0f} MB)"
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "default")
    p.add_argument("--mutants", type=int, default=2000)
    p.add_argument("--overload-clients", type=int, default=64)
    p.add_argument("--overload-requests", type=int, default=800)
    p.add_argument("--soak", type=int, default=2000)
    a = p.parse_args()
    base = {"ALT_CHECKPOINT": str(a.checkpoint), "ALT_DECODE_TIMEOUT_S": "20"}
    clips = [videos.keyframed_mp4(frames=50, keyframe_every=25, size=(240, 320)),
             videos.faststart_mp4(frames=40)]  # fmt: skip
    server = Server(base)
    try:
        if a.mutants:
            print("## Mutants\n\n" + fuzz(server, a.mutants) + "\n")
        print("## Bombs\n\n" + bombs(server) + "\n")
        if a.soak:
            print("## Soak\n\n" + soak(server, clips, a.soak) + "\n")
    finally:
        server.stop()
    if a.overload_requests:
        server = Server({**base, "ALT_MAX_IN_FLIGHT": "8"})
        try:
            out = asyncio.run(overload(server.url, clips, a.overload_clients, a.overload_requests))
            print(f"## Overload (queue of 8)\n\n{out}\n")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
