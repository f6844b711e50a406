"""`alt watch URL`: a live source watched on this machine, its events as JSON lines."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path


def register(
    sub, add_model_flags: Callable[[argparse.ArgumentParser], None], settings_of: Callable
) -> None:
    p = sub.add_parser(
        "watch",
        help="watch a live source (RTSP, HLS, MPEG-TS over UDP/HTTP, RTMP, SRT, or a file at "
        "its own rate) and print its events as JSON lines, no server",
    )  # fmt: skip
    p.add_argument("url", help="the source; a file path plays at its own rate")
    p.add_argument("--labels", nargs="+", help="label set (default: the model's; @name sets)")
    p.add_argument("--window-s", dest="window_s", type=float, default=4.0)
    p.add_argument("--stride-s", dest="stride_s", type=float, default=2.0)
    p.add_argument("--smoothing", type=float, default=4.0)
    p.add_argument("--min-similarity", dest="min_similarity", type=float)
    p.add_argument("--lag-windows", dest="lag_windows", type=int, default=2,
                   help="windows after which a window's label is fixed")  # fmt: skip
    p.add_argument("--alert", action="append", default=[], metavar="LABEL[=MIN_SCORE]",
                   help="an alert when LABEL's segment reaches MIN_SCORE (repeatable)")  # fmt: skip
    p.add_argument("--transport", choices=["tcp", "udp"], help="RTSP transport")
    p.add_argument("--status", action="store_true", help="print connection changes too")
    add_model_flags(p)
    p.set_defaults(func=lambda args: _watch(args, settings_of))


def _spec(args: argparse.Namespace):
    from pydantic import ValidationError

    from server.streams import StreamSpec

    url = args.url if "://" in args.url else f"file://{Path(args.url).resolve()}"
    alerts = []
    for rule in args.alert:
        label, _, score = rule.partition("=")
        alerts.append({"label": label, **({"min_score": float(score)} if score else {})})
    try:
        return StreamSpec(
            url=url, labels=args.labels, window_s=args.window_s, stride_s=args.stride_s,
            smoothing=args.smoothing, min_similarity=args.min_similarity,
            lag_windows=args.lag_windows, alerts=alerts, transport=args.transport,
        )  # fmt: skip
    except (ValidationError, ValueError) as err:
        raise SystemExit(f"alt watch: {err}") from None


async def _run(settings, spec, with_status: bool) -> int:
    from server.engine.errors import ServiceError
    from server.streams import StreamLimits, StreamManager, StreamStore

    engine = settings.in_process_engine()
    await engine.start()
    with tempfile.TemporaryDirectory(prefix="alt-watch-") as folder:
        limits = StreamLimits(max_streams=1, allow_private=True,  # this machine's own user
                              timeout_s=settings.stream_timeout_s, max_pixels=settings.max_pixels)  # fmt: skip
        manager = StreamManager(engine, StreamStore(Path(folder) / "streams.db"), limits)
        try:
            watch = await manager.create(spec)
            queue: asyncio.Queue = asyncio.Queue()
            watch.listeners.add(queue)
            while True:
                _, event, data = await queue.get()
                if event != "status" or with_status:
                    print(json.dumps({"event": event, **data}), flush=True)
                if event == "status" and data["state"] in ("stopped", "failed"):
                    return 0 if data["state"] == "stopped" else 1
        except ServiceError as err:
            print(f"alt watch: {err.message}", file=sys.stderr)
            return 2
        finally:
            await manager.stop()
            await engine.stop()


def _watch(args: argparse.Namespace, settings_of) -> int:
    settings = settings_of(args)
    spec = _spec(args)
    try:
        return asyncio.run(_run(settings, spec, args.status))
    except KeyboardInterrupt:
        return 130
