"""The `alt` command. Subcommands import their package lazily, so `alt info` stays light."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _info(args: argparse.Namespace) -> int:
    from cli.info import run_info

    return run_info(args.presets, args.entities)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alt", description="ALT: open-vocabulary video action recognition."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = sub.add_parser("info", help="parameters and GFLOPs of model presets")
    info.add_argument("presets", nargs="*", help="preset names (default: all)")
    info.add_argument(
        "--entities", type=int, default=1000, help="entity corpus size used for the alignment cost"
    )
    info.set_defaults(func=_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
