"""`alt index`, `alt search`, `alt timeline`: the video library from the command line."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable


def register(
    sub, add_model_flags: Callable[[argparse.ArgumentParser], None], settings_of: Callable
) -> None:
    """The library's subcommands on `sub` (the parser's subcommands)."""

    def library_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--library", help="a folder or an object-store URI (default: ALT_LIBRARY, else "
            "<ALT_JOBS_DIR>/library)",
        )  # fmt: skip
        add_model_flags(p)

    index = sub.add_parser(
        "index",
        help="index videos into the library: their windows embedded once (resumable)",
    )
    index.add_argument("inputs", nargs="+", help="files, folders, glob patterns or CSVs")
    library_flag(index)
    index.add_argument("--window-s", dest="window_s", type=float, default=4.0)
    index.add_argument("--stride-s", dest="stride_s", type=float,
                       help="seconds between windows (default: half a window)")  # fmt: skip
    index.add_argument("--shots", action="store_true", help="windows never straddle a cut")
    index.add_argument("--workers", type=int, help="videos decoded at once (default: the cores)")
    index.add_argument("--quiet", action="store_true")
    index.add_argument("--ray", action="store_true",
                       help="index as a Ray Data job (the library must be shared: a folder "
                       "every node reaches, or an object store)")  # fmt: skip
    index.add_argument("--ray-address", dest="ray_address",
                       help="the cluster (default: RAY_ADDRESS, else a local one)")  # fmt: skip
    index.add_argument("--models", type=int, default=1,
                       help="--ray: actors indexing whole videos at once")  # fmt: skip
    index.set_defaults(func=lambda args: _index(args, settings_of))

    search = sub.add_parser("search", help="moments of the library's videos that match a text")
    search.add_argument("queries", nargs="+", help="what to find (each answered)")
    library_flag(search)
    search.add_argument("-k", type=int, default=10, help="moments per query")
    search.add_argument("--video", help="search one video (its id or its path)")
    search.add_argument("--min-similarity", dest="min_similarity", type=float)
    search.set_defaults(func=lambda args: _search(args, settings_of))

    timeline = sub.add_parser(
        "timeline", help="a stored video's timeline for a label set, without decoding"
    )
    timeline.add_argument("video", help="the video's id in the library, or its path")
    library_flag(timeline)
    timeline.add_argument("--labels", nargs="+", help="label set (default: the model's)")
    timeline.add_argument("--smoothing", type=float, default=4.0)
    timeline.add_argument("--min-similarity", dest="min_similarity", type=float)
    timeline.add_argument("--windows", action="store_true", help="every window's scores")
    timeline.add_argument("--top-k", dest="top_k", type=int, default=5)
    timeline.set_defaults(func=lambda args: _timeline(args, settings_of))


def _fail(command: str, err: BaseException) -> SystemExit:
    return SystemExit(f"alt {command}: {getattr(err, 'message', None) or err}")


def _index(args: argparse.Namespace, settings_of) -> int:
    from server.engine.errors import ServiceError
    from server.engine.timeline import TimelineOptions
    from server.offline import InputError
    from server.offline.library import index_collection

    stride = args.stride_s if args.stride_s is not None else args.window_s / 2
    if args.window_s <= 0 or stride <= 0 or stride > args.window_s:
        raise SystemExit("alt index: need 0 < --stride-s <= --window-s")
    settings = settings_of(args, library=args.library, decode_workers=args.workers)
    options = TimelineOptions(args.window_s, stride, shots=args.shots)
    totals = {"videos": 0, "indexed": 0, "skipped": 0, "errors": 0}
    for source in args.inputs:
        try:
            if args.ray:
                from server.offline.ray_data import index_collection_on_ray

                s = index_collection_on_ray(settings, source, options, not args.quiet,
                                            args.ray_address, args.models)  # fmt: skip
            else:
                s = index_collection(settings, source, options, progress=not args.quiet)
        except (InputError, ServiceError, OSError) as err:
            raise _fail("index", err) from None
        except ImportError as err:
            raise SystemExit(f"alt index --ray: {err}") from None
        for key in totals:
            totals[key] += getattr(s, key)
    print(json.dumps({**totals, "library": settings.library}))
    return 1 if totals["errors"] else 0


def _search(args: argparse.Namespace, settings_of) -> int:
    from server.engine.errors import ServiceError
    from server.library import ModelMismatch
    from server.offline.library import search

    settings = settings_of(args, library=args.library)
    if args.k < 1 or args.k > settings.max_search_k:
        raise SystemExit(f"alt search: -k must be 1 to {settings.max_search_k}")
    queries = [" ".join(q.split()) for q in args.queries]
    if not all(queries) or any(len(q) > settings.max_query_chars for q in queries):
        raise SystemExit(
            f"alt search: queries must hold 1 to {settings.max_query_chars} characters"
        )
    try:
        found = search(settings, queries, args.k, args.video, args.min_similarity)
    except (ServiceError, ModelMismatch, OSError) as err:
        raise _fail("search", err) from None
    for moment in found:
        print(json.dumps(moment))
    return 0


def _timeline(args: argparse.Namespace, settings_of) -> int:
    from server.engine.errors import ServiceError
    from server.library import ModelMismatch
    from server.offline.library import timeline

    settings = settings_of(args, library=args.library)
    try:
        answer = timeline(settings, args.video, args.labels, args.smoothing,
                          args.min_similarity, args.windows, args.top_k)  # fmt: skip
    except (ServiceError, ModelMismatch, OSError) as err:
        raise _fail("timeline", err) from None
    print(answer.model_dump_json(indent=2, exclude_none=True))
    return 0
