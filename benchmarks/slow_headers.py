"""Slow headers on loopback: connections that send half a request head and stall, against
`alt serve` (fake backend, real decoding). Prints, per scenario, how many stalled
connections the server still holds after the header timeout plus a second, how long it
took to close them, what their first answer line was, and the statuses and latency of a
normal client from another address (127.0.0.2, a new connection per request: `/healthz`,
then `POST /recognize` of a small video) while they stall. With `--baseline REF` the server of an earlier commit runs the
same scenarios in the same run (from a temporary git worktree), side by side. With `--ray`,
the entry point of `alt serve --ray` instead (a private local cluster, fake backend): Serve's
own proxy, and the shipped nginx front door (docker/nginx.conf, its 5 s header timeout) in
front of it.

    python -m benchmarks.slow_headers [--baseline efd070f] [--header-timeout 3]
    python -m benchmarks.slow_headers --ray
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import httpx

from tests import videos

from .common import percentile, table
from .server import free_port, worktree

ROOT = Path(__file__).resolve().parents[1]
HALF_HEAD = b"POST /recognize HTTP/1.1\r\nHost: bench\r\nContent-Ty"


class Serve:
    """`alt serve` from the tree at `root`, with the fake backend."""

    def __init__(self, root: Path, env: dict[str, str], args: tuple[str, ...] = (),
                 ready_s: float = 60) -> None:  # fmt: skip
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--host", "127.0.0.1", "--port", str(self.port), *args],
            env={**os.environ, "ALT_BACKEND": "fake", "ALT_DECODE_WORKERS": "1", **env, "PYTHONPATH": path},
            cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(int(ready_s / 0.2)):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            time.sleep(0.2)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


async def stall(port: int, source: str, hold_s: float) -> tuple[float | None, str]:
    """Open a connection from `source`, send half a head and wait up to `hold_s` for the
    server to close it: (seconds until closed or None if still open, first answer line)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    except OSError as e:
        return 0.0, f"connect failed: {e.strerror}"
    t = time.perf_counter()
    try:
        writer.write(HALF_HEAD)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), hold_s)
        line = data.split(b"\r\n", 1)[0].decode(errors="replace") or "(closed, no answer)"
        return time.perf_counter() - t, line
    except TimeoutError:
        return None, "(held)"
    except OSError:
        return time.perf_counter() - t, "(reset)"
    finally:
        writer.close()


async def normal_client(url: str, video: bytes, n: int) -> tuple[Counter, list[float]]:
    statuses: Counter = Counter()
    times = []
    for i in range(n):
        # A new connection per request, from another address: a client that arrives while
        # others stall.
        transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx.AsyncClient(base_url=url, timeout=30, transport=transport) as c:
            t = time.perf_counter()
            try:
                if i % 2:
                    r = await c.post("/recognize", content=video,
                                     headers={"content-type": "application/octet-stream"})  # fmt: skip
                else:
                    r = await c.get("/healthz")
                statuses[r.status_code] += 1
            except httpx.HTTPError as e:
                statuses[type(e).__name__] += 1
            times.append(time.perf_counter() - t)
    return statuses, times


async def scenario(server: Serve, video: bytes, stalled: int, hold_s: float) -> dict:
    attack = [asyncio.create_task(stall(server.port, "127.0.0.1", hold_s)) for _ in range(stalled)]
    await asyncio.sleep(1.0 if stalled else 0)  # every stalled connection is open
    statuses, times = await normal_client(server.url, video, 20)
    closes = await asyncio.gather(*attack)
    closed = [t for t, _ in closes if t is not None]
    lines = Counter(line for _, line in closes)
    return {
        "held": sum(t is None for t, _ in closes),
        "close_p50": percentile(closed, 50) if closed else None,
        "close_max": max(closed) if closed else None,
        "answers": ", ".join(f"{k} x{v}" for k, v in lines.most_common(3)) or "-",
        "normal": ", ".join(f"{k} x{v}" for k, v in sorted(statuses.items(), key=str)),
        "p50_ms": percentile(times, 50) * 1000,
        "max_ms": max(times) * 1000,
    }


def run(root: Path, name: str, args, video: bytes) -> list[list[str]]:
    env = {"ALT_HEADER_TIMEOUT_S": str(args.header_timeout), "ALT_MAX_CONNECTIONS": "1000"}
    rows = []
    for stalled, per_client in ((0, 0), (300, 0), (1000, 0), (1000, 300)):
        server = Serve(root, {**env, "ALT_MAX_CONNECTIONS_PER_CLIENT": str(per_client)})
        try:
            r = asyncio.run(scenario(server, video, stalled, args.header_timeout + 1 + 8))
        finally:
            server.stop()
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        rows.append([name, str(stalled), str(per_client or "off"), str(r["held"]), fmt(r["close_p50"]), fmt(r["close_max"]),
                     r["answers"], r["normal"], f"{r['p50_ms']:.0f}", f"{r['max_ms']:.0f}"])  # fmt: skip
    return rows


def run_ray(args, video: bytes) -> list[list[str]]:
    """Serve's proxy and the nginx front door in front of it, one cluster for both."""
    from tests.front import Nginx

    server = Serve(ROOT, {}, ("--ray",), ready_s=300)
    door = Nginx(f"127.0.0.1:{server.port}", free_port())
    rows = []
    try:
        for name, port, url, hold in (("ray serve proxy", server.port, server.url, 14.0),
                                      ("nginx -> ray", door.port, door.url, 5 + 1 + 8.0)):  # fmt: skip
            target = SimpleNamespace(port=port, url=url)  # what `scenario` reads of a server
            for stalled in (0, 100, 300, 1000):
                r = asyncio.run(scenario(target, video, stalled, hold))  # type: ignore[arg-type]
                fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
                rows.append([name, str(stalled), "64 requests" if "nginx" in name else "none",
                             str(r["held"]), fmt(r["close_p50"]), fmt(r["close_max"]), r["answers"],
                             r["normal"], f"{r['p50_ms']:.0f}", f"{r['max_ms']:.0f}"])  # fmt: skip
    finally:
        door.stop()
        server.stop()
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", help="also measure the server of this git ref")
    p.add_argument("--header-timeout", type=float, default=3.0)
    p.add_argument("--ray", action="store_true", help="the entry point of `alt serve --ray`")
    args = p.parse_args()
    video = videos.faststart_mp4(frames=16, size=(64, 64))
    headers = ["server", "stalled", "per-client limit", "held at end", "close p50 s", "close max s",
               "their answer", "normal client (20)", "p50 ms", "max ms"]  # fmt: skip
    if args.ray:
        os.environ.setdefault("ALT_BACKEND", "fake")
        rows = run_ray(args, video)
        print("stalled connections wait up to 14 s for the server to close them; nginx's header "
              "timeout is 5 s (docker/nginx.conf)")  # fmt: skip
        print(table(headers, rows))
        return
    rows = []
    if args.baseline:
        with worktree(args.baseline) as tree:
            rows += run(tree, args.baseline, args, video)
    rows += run(ROOT, "this tree", args, video)
    print(f"header timeout {args.header_timeout:g} s; stalled connections wait up to "
          f"{args.header_timeout + 9:g} s for the server to close them")  # fmt: skip
    print(table(headers, rows))


if __name__ == "__main__":
    main()
