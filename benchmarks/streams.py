"""Live streams against `alt serve` (the shipped default, CPU): how soon a segment event
follows the action it names, how often the labels are right, and how many streams one
server holds with no window dropped.

1. Latency and labels: a generated video of `--actions` actions (8 s each) pushed at real
   time as MPEG-TS over UDP; per action, the time from its start to the first `segment`
   event naming it (opened), and the share of time labelled right by the closed segments.
2. Capacity: N sources played at their own rate (file://, decoded by the reader as a
   camera's stream would be) for `--seconds`, side by side; windows labelled, dropped, and
   the delay from a window's last frame to its label.

    python -m benchmarks.streams [--actions 8] [--seconds 40] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from media import write_video
from tests.live import Events, UdpPush
from training.generate import render_clip, render_timeline

from .common import percentile, table
from .server import free_port
from .slow_headers import Serve

ROOT = Path(__file__).resolve().parents[1]
WINDOW_S, STRIDE_S, LAG = 4.0, 2.0, 1


def latency(server: Serve, actions: list[str], seed: int) -> dict:
    frames, truth = render_timeline(actions, 8.0, seed=seed)
    port = free_port()
    r = httpx.post(server.url + "/streams", json={
        "url": f"udp://127.0.0.1:{port}", "window_s": WINDOW_S, "stride_s": STRIDE_S,
        "lag_windows": LAG})  # fmt: skip
    r.raise_for_status()
    sid = r.json()["id"]
    events = Events(server.url + f"/streams/{sid}/events")
    time.sleep(1.0)
    push = UdpPush(frames, port)
    push.thread.join()
    time.sleep(WINDOW_S + STRIDE_S * (LAG + 1) + 3)  # the source goes silent: segments close
    status = httpx.get(server.url + f"/streams/{sid}").json()
    httpx.delete(server.url + f"/streams/{sid}")
    got = events.got
    assert push.started is not None
    opened = [(t, d) for t, e, d in got if e == "segment" and d["end_s"] is None]
    closed = [d for _, e, d in got if e == "segment" and d["end_s"] is not None]
    delays = []
    for start, _, action in truth:
        first = next(
            (t for t, d in opened if d["label"] == action and t >= push.started + start - 2), None
        )
        if first is not None:
            delays.append(first - (push.started + start))
    spans = [(d["start_s"], d["end_s"], d["label"]) for d in closed]
    grid = np.arange(0, truth[-1][1], 0.1)

    def at(t, ss):
        return next((lab for a, b, lab in ss if a <= t < b), None)

    right = float(np.mean([at(t, spans) == at(t, truth) for t in grid]))
    # The same video as a file, labelled offline (all windows at once): what the lag costs.
    with tempfile.TemporaryDirectory() as tmp:
        write_video(Path(tmp) / "v.mp4", frames)
        offline = httpx.post(server.url + "/recognize", params={
            "timeline": "true", "window_s": WINDOW_S, "stride_s": STRIDE_S},
            content=(Path(tmp) / "v.mp4").read_bytes(),
            headers={"content-type": "video/mp4"}, timeout=300).json()  # fmt: skip
    off = [(x["start_s"], x["end_s"], x["label"]) for x in offline["timeline"]]
    right_offline = float(np.mean([at(t, off) == at(t, truth) for t in grid]))
    return {"delays": delays, "found": len(delays), "actions": len(truth), "right": right,
            "right_offline": right_offline, "dropped": status["counts"]["windows_dropped"]}  # fmt: skip


def _reader_cpu_s() -> float:
    """CPU seconds used so far by the stream reader processes (`python -m media.live`)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if b"media.live" not in (proc / "cmdline").read_bytes():
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        except OSError:
            continue
    return total


def capacity(server: Serve, n: int, size: tuple[int, int], seconds: float, folder: Path) -> dict:
    """N file sources of `size` (w, h) at their own rate, side by side."""
    w, h = size
    path = folder / f"{w}x{h}.mp4"
    if not path.exists():
        clips = [render_clip(a, 50 + i, size=max(w, h))[0] for i, a in enumerate(
            ["waving", "jumping", "clapping", "walking", "kicking a ball", "punching"])]  # fmt: skip
        video = np.concatenate(clips)
        reps = int(np.ceil(seconds * 25 / len(video))) + 1
        video = np.concatenate([video] * reps)[: int((seconds + 2) * 25)]
        top = (video.shape[1] - h) // 2
        left = (video.shape[2] - w) // 2
        write_video(path, np.ascontiguousarray(video[:, top : top + h, left : left + w]))
    ids = []
    for _ in range(n):
        r = httpx.post(server.url + "/streams", json={
            "url": f"file://{path}", "window_s": WINDOW_S, "stride_s": STRIDE_S, "lag_windows": LAG})  # fmt: skip
        r.raise_for_status()
        ids.append(r.json()["id"])
    delays: list[float] = []
    cpu = 0.0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds + 12:
        states = [httpx.get(server.url + f"/streams/{i}").json() for i in ids]
        delays += [s["delay_s"] for s in states if s.get("delay_s") is not None]
        cpu = max(cpu, _reader_cpu_s())  # the readers exit when their file ends
        if all(s["state"] in ("stopped", "failed") for s in states):
            break
        time.sleep(1.0)
    states = [httpx.get(server.url + f"/streams/{i}").json() for i in ids]
    for i in ids:
        httpx.delete(server.url + f"/streams/{i}")
    return {
        "windows": sum(s["counts"]["windows"] for s in states),
        "dropped": sum(s["counts"]["windows_dropped"] for s in states),
        "delay_p50": percentile(delays, 50), "delay_max": max(delays) if delays else float("nan"),
        "failed": sum(s["state"] == "failed" for s in states),
        "reader_cores": cpu / (n * seconds),  # decoding one stream, in cores
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--actions", type=int, default=8)
    p.add_argument("--seconds", type=float, default=40.0)
    p.add_argument("--quick", action="store_true", help="2 actions, 10 s, 1 and 2 streams")
    args = p.parse_args()
    if args.quick:
        args.actions, args.seconds = 2, 10.0
    server = Serve(ROOT, {"ALT_STREAMS_ALLOW_PRIVATE": "1", "ALT_MAX_STREAMS": "64",
                          "ALT_DECODE_WORKERS": "1", "ALT_BACKEND": os.environ.get("ALT_BACKEND", "torch")},
                   ready_s=120)  # fmt: skip
    try:
        labels = json.loads((ROOT / "checkpoints" / "default" / "labels.json").read_text())
        rng = np.random.default_rng(7)
        actions = [str(a) for a in rng.choice(labels, args.actions, replace=False)]
        lat = latency(server, actions, seed=777)
        bound = WINDOW_S + STRIDE_S + LAG * STRIDE_S + 1
        print(f"latency: {len(actions)} actions of 8 s pushed at real time over UDP (window "
              f"{WINDOW_S:g} s, stride {STRIDE_S:g} s, lag {LAG} window); target p95 <= {bound:g} s")  # fmt: skip
        d = lat["delays"]
        print(table(["actions found", "p50 s", "p95 s", "max s", "time labelled right",
                     "same video offline", "windows dropped"],
                    [[f"{lat['found']}/{lat['actions']}", f"{percentile(d, 50):.2f}", f"{percentile(d, 95):.2f}",
                      f"{max(d):.2f}" if d else "-", f"{lat['right']:.3f}", f"{lat['right_offline']:.3f}",
                      str(lat["dropped"])]]))  # fmt: skip
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            plan = [((320, 240), n) for n in ((1, 2) if args.quick else (1, 4, 8, 16, 24))]
            plan += [((1280, 720), n) for n in ((1,) if args.quick else (1, 2, 4, 8))]
            for size, n in plan:
                c = capacity(server, n, size, args.seconds, Path(tmp))
                rows.append([f"{size[0]}x{size[1]}", str(n), str(c["windows"]), str(c["dropped"]),
                             f"{c['delay_p50']:.2f}", f"{c['delay_max']:.2f}", str(c["failed"]),
                             f"{c['reader_cores']:.2f}"])  # fmt: skip
        print(f"\ncapacity: sources at their own rate for {args.seconds:g} s each, side by side")
        headers = ["size", "streams", "windows labelled", "dropped", "delay p50 s", "delay max s",
                   "failed", "reader cores per stream"]  # fmt: skip
        print(table(headers, rows))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
