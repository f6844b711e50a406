"""The service on Ray against `alt serve`, on this machine: clips/s of the plain server and of
the Ray Serve application with 1 and 2 model replicas x 1 and 2 decode replicas, the same
load in one run; the Ray application's start-up time; `alt recognize-batch` videos/s run
locally and as a Ray Data job.

    python -m benchmarks.cluster                 # shipped default, 16 clients
    python -m benchmarks.cluster --requests 400 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from .common import machine, percentile, table
from .server import Server, free_port, load, sample_videos

os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", uuid.uuid4().hex + uuid.uuid4().hex)


def measure(url: str, videos: list[bytes], concurrency: int, requests: int) -> dict:
    asyncio.run(load(url, videos, concurrency, min(requests, 4 * concurrency)))  # warm up
    latencies, seconds = asyncio.run(load(url, videos, concurrency, requests))
    ms = np.array(latencies) * 1000
    return {"clips_s": requests / seconds, "p50": percentile(ms, 50), "p95": percentile(ms, 95)}


def ray_configs(args) -> list[tuple[int, int]]:
    return [(m, d) for m in args.model_replicas for d in args.decode_replicas]


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", default="checkpoints/default")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--requests", type=int, default=240)
    p.add_argument("--model-replicas", type=int, nargs="+", default=[1, 2])
    p.add_argument("--decode-replicas", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch-videos", type=int, default=96)
    args = p.parse_args()

    import ray
    from ray import serve

    from server.offline import recognize_batch
    from server.ray_serve import APP_NAME, build_app, load_config
    from server.settings import Settings
    from tests.conftest import write_world_videos

    print(machine())
    tmp = Path(tempfile.mkdtemp())
    videos = sample_videos(tmp)
    env = {"ALT_CHECKPOINT": args.checkpoint}
    rows = []

    plain = Server(env)
    try:
        r = measure(plain.url, videos, args.concurrency, args.requests)
    finally:
        plain.stop()
    rows.append(["alt serve", "-", "-", r["clips_s"], r["p50"], r["p95"]])
    print(rows[-1], flush=True)

    t0 = time.perf_counter()
    ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False)
    t_init = time.perf_counter() - t0
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    settings = Settings(checkpoint=args.checkpoint)
    startups = []
    for models, decoders in ray_configs(args):
        config = load_config()
        for d in config["applications"][0]["deployments"]:
            d.pop("autoscaling_config", None)
            d["num_replicas"] = {"Model": models, "Decode": decoders}.get(d["name"], 1)
        t0 = time.perf_counter()
        serve.run(build_app(settings, config), name=APP_NAME, route_prefix="/")
        startups.append(time.perf_counter() - t0)
        r = measure(f"http://127.0.0.1:{port}", videos, args.concurrency, args.requests)
        rows.append(["Ray Serve", models, decoders, r["clips_s"], r["p50"], r["p95"]])
        print(rows[-1], flush=True)
        serve.delete(APP_NAME)
    serve.shutdown()

    print(f"\n{args.concurrency} clients, {args.requests} requests, 320x240 50-frame mp4s; "
          f"this machine has {os.cpu_count()} cores, Ray was given 8 logical CPUs")  # fmt: skip
    print(
        table(["server", "model replicas", "decode replicas", "clips/s", "p50 ms", "p95 ms"], rows)
    )
    print(f"\nstart-up: ray.init {t_init:.1f} s; application deployed and ready "
          f"{', '.join(f'{s:.1f}' for s in startups)} s (per configuration above)")  # fmt: skip

    folder = tmp / "collection"
    folder.mkdir()
    write_world_videos(folder, args.batch_videos, seed=950_000)
    out_rows = []
    for name, kw in (("local (decode processes = cores)", {}),
                     ("--ray (1 decode actor, 1 model actor)", {"use_ray": True}),
                     ("--ray (2 decode actors, 1 model actor)", {"use_ray": True, "decoders": 2})):  # fmt: skip
        out = tmp / f"{uuid.uuid4().hex}.jsonl"
        t0 = time.perf_counter()
        summary = recognize_batch(settings, folder, out, progress=False, **kw)
        seconds = time.perf_counter() - t0
        out_rows.append([name, summary["answered"], seconds, summary["answered"] / seconds])
        print(out_rows[-1], flush=True)
    ray.shutdown()
    print(f"\nalt recognize-batch over {args.batch_videos} world clips (model load included)")
    print(table(["run", "videos", "seconds", "videos/s"], out_rows))


if __name__ == "__main__":
    main()
