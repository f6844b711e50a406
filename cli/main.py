"""The `alt` command. Subcommands import their package lazily, so `alt info` stays light."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def _positive_float(text: str) -> float:
    """An argparse type: a number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {value:g}")
    return value


def _positive(text: str) -> int:
    """An argparse type: a whole number of at least 1 (a clear error otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _info(args: argparse.Namespace) -> int:
    from cli.info import run_info

    return run_info(args.presets, args.entities)


def _server_settings(args: argparse.Namespace, **more):
    """The settings with the flags given, validated like the environment's (`**more`:
    fields set by a subcommand's own flags, None for not given)."""
    from pydantic import ValidationError

    from server.settings import Settings

    fields = ("checkpoint", "backend", "onnx_dir", "device", "dtype", "host", "port",
              "max_batch_size", "max_wait_ms", "api_key")  # fmt: skip
    overrides = {f: getattr(args, f) for f in fields if getattr(args, f, None) is not None}
    overrides.update({k: v for k, v in more.items() if v is not None})
    try:
        return Settings(**overrides)
    except ValidationError as err:
        raise SystemExit(f"alt: invalid settings:\n{err}") from None


def _serve(args: argparse.Namespace) -> int:
    settings = _server_settings(args)
    if args.ray:
        try:
            from server.ray_serve import run
        except ImportError as err:
            raise SystemExit(f"alt serve --ray: {err}") from None
        run(settings, address=args.ray_address, config_path=args.ray_config)
        return 0
    from server.api import serve

    serve(settings)
    return 0


def _recognize_batch(args: argparse.Namespace) -> int:
    from server.engine.errors import ServiceError
    from server.engine.labels import parse_labels
    from server.offline import InputError, recognize_batch

    settings = _server_settings(args, decode_workers=args.workers)
    try:
        labels = parse_labels(args.labels, settings.max_labels, settings.max_label_chars)
        summary = recognize_batch(
            settings, args.input, args.out, labels, args.top_k, args.explain,
            ray_address=args.ray_address, use_ray=args.ray, decoders=args.decoders,
            models=args.models, progress=not args.quiet, timeline=_timeline(args),
        )  # fmt: skip
    except (InputError, ServiceError) as err:
        raise SystemExit(f"alt recognize-batch: {getattr(err, 'message', err)}") from None
    except OSError as err:  # the output cannot be written
        raise SystemExit(f"alt recognize-batch: {err.filename}: {err.strerror}") from None
    except ImportError as err:
        raise SystemExit(f"alt recognize-batch --ray: {err}") from None
    print(
        f"{summary['videos']} videos: {summary['answered']} answered now, "
        f"{summary['skipped']} already in {args.out}, {summary['errors']} errors",
        file=sys.stderr,
    )
    acc = summary.get("accuracy")
    if acc:
        print(f"top-1 {acc['top1']:.1f}%  top-5 {acc['top5']:.1f}%  over {acc['videos']} "
              f"labelled videos ({acc['errors']} errors)", file=sys.stderr)  # fmt: skip
    return 0


def _timeline(args: argparse.Namespace):
    """The timeline options of `--timeline` (None without it)."""
    if not args.timeline:
        return None
    from server.engine.timeline import TimelineOptions

    window = args.window_s
    stride = args.stride_s if args.stride_s is not None else window / 2
    if stride > window:
        raise SystemExit(f"alt: --stride-s ({stride:g}) must not exceed --window-s ({window:g})")
    return TimelineOptions(window, stride, args.smoothing, args.min_similarity, args.shots,
                           args.windows, args.top_k)  # fmt: skip


def _add_timeline_flags(p: argparse.ArgumentParser) -> None:
    from server.engine.timeline import TimelineOptions as T

    g = p.add_argument_group("timelines (long videos)")
    g.add_argument(
        "--timeline",
        action="store_true",
        help="a timeline of actions over windows of the video, as POST /jobs answers",
    )
    g.add_argument("--window-s", dest="window_s", type=_positive_float, default=T.window_s)
    g.add_argument(
        "--stride-s",
        dest="stride_s",
        type=_positive_float,
        help="seconds between windows (default: half a window)",
    )
    g.add_argument(
        "--smoothing",
        type=float,
        default=T.smoothing,
        help="switch penalty in nats (0: each window alone)",
    )
    g.add_argument(
        "--min-similarity",
        dest="min_similarity",
        type=float,
        help="below this cosine for every label a stretch is null",
    )
    g.add_argument("--shots", action="store_true", help="detect cuts; windows never straddle one")
    g.add_argument("--windows", action="store_true", help="include every window's scores")  # fmt: skip


def _recognize(args: argparse.Namespace) -> int:
    from media import VideoError
    from server.engine.errors import ServiceError
    from server.offline import recognize_file

    settings = _server_settings(args)
    try:
        answer = recognize_file(
            settings, args.video, args.labels, args.top_k, args.explain, _timeline(args)
        )
    except (VideoError, ServiceError, OSError) as err:
        print(f"alt: {args.video}: {err}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2))
    return 0


def _init(args: argparse.Namespace) -> int:
    from model.catalog import LABEL_SETS, presets_help
    from model.config import PRESETS

    # Checked before torch loads, so a typo is answered at once.
    if args.preset not in PRESETS:
        raise SystemExit(f"alt init: unknown preset {args.preset!r}; {presets_help(one_line=True)}")
    if args.pretrained and Path(args.pretrained).suffix and not Path(args.pretrained).is_file():
        raise SystemExit(f"alt init: weights file not found: {args.pretrained}")

    from model.corpus import merge_entities, read_entity_file
    from model.from_clip import InitError, init_checkpoint

    entities = None
    if args.entities is not None:
        if not args.entities.is_file():
            raise SystemExit(f"alt init: entity file not found: {args.entities}")
        given = read_entity_file(args.entities)
        if args.entities_mode == "extend":
            from model.catalog import real_world_entities

            given = merge_entities(given, real_world_entities())
        entities = given
    if args.label_set not in LABEL_SETS:
        raise SystemExit(
            f"alt init: unknown label set {args.label_set!r}; known: {', '.join(LABEL_SETS)}"
        )
    try:
        summary = init_checkpoint(args.out, args.preset, args.pretrained, args.dtype,
                                  entities, args.label_set, args.merge_r)  # fmt: skip
    except InitError as err:
        raise SystemExit(f"alt init: {err}") from None
    except RuntimeError as err:  # open_clip: an unknown tag, no internet for a download
        raise SystemExit(
            f"alt init: could not load CLIP weights {args.pretrained!r}: {err}"
        ) from None
    print(json.dumps(summary, indent=1))
    return 0


def _build_default(args: argparse.Namespace) -> int:
    from model import CheckpointError
    from training.pipeline import QUICK, build_default

    try:
        report = build_default(
            args.out,
            args.work,
            seed=args.seed,
            budget=QUICK if args.quick else None,
            baseline_out=args.baseline_out,
            baseline_only=args.baseline_only,
            log=lambda line: print(line, file=sys.stderr, flush=True),  # stdout: the summary
        )
    except CheckpointError as err:
        raise SystemExit(f"alt build-default: {err}") from None
    keys = ("baseline", "seconds") + (() if args.baseline_only else ("alt", "few_shot"))
    print(json.dumps({k: report[k] for k in keys}, indent=1))
    return 0


_TRAIN_FLAGS = ("train", "val", "format", "video_root", "out", "preset", "pretrained",
                "entities", "regime", "shots", "frames", "epochs", "batch_size", "global_batch",
                "lr", "backbone_lr_scale", "weight_decay", "warmup_epochs", "precision",
                "grad_checkpointing", "crop_scale", "flip", "test_views", "cache_dir",
                "label_map_steps", "device", "workers", "eval_every", "save_every_steps",
                "max_steps", "seed")  # fmt: skip


def _train(args: argparse.Namespace) -> int:
    # Light first: a wrong recipe, flag or annotation file is refused before torch loads.
    from training.jobs import CommandError, TrainJob, check_training_data
    from training.recipe import RecipeError

    flags = {name: getattr(args, name) for name in _TRAIN_FLAGS}
    try:
        job = TrainJob.resolve(args.recipe, args.set, flags, args.data_root)
        checked = check_training_data(job)
        from training.commands import train_command

        summary = train_command(job, checked)
    except (CommandError, RecipeError) as err:
        raise SystemExit(f"alt train: {err}") from None
    if summary:
        print(json.dumps(summary, indent=1))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from training.commands import CommandError, evaluate_command
    from training.recipe import RecipeError

    try:
        print(json.dumps(evaluate_command(args), indent=1))
    except (CommandError, RecipeError) as err:
        raise SystemExit(f"alt evaluate: {err}") from None
    return 0


def _world(args: argparse.Namespace) -> int:
    from training.generate import generate_world

    per_class = dict(zip(("train", "val", "test", "fewshot", "zeroshot"), args.per_class))
    generate_world(args.out, per_class, seed=args.seed, size=args.size)
    return 0


def _export(args: argparse.Namespace) -> int:
    if args.format == "onnx":
        from export.onnx_export import export_onnx

        meta = export_onnx(args.source, args.out)
        print(
            f"wrote {args.out}/video.onnx, text.onnx, meta.json ({meta['name']}, {meta['frames']} frames)"
        )
        return 0
    from export.tensorrt import build_engine

    build_engine(args.source, args.out, fp16=args.fp16, use_plugin=args.plugin)
    print(f"wrote {args.out}")
    return 0


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint", type=Path, help="ALT checkpoint directory (default: shipped model)"
    )
    p.add_argument("--backend", choices=["torch", "onnxruntime", "tensorrt", "fake"])
    p.add_argument("--onnx-dir", dest="onnx_dir", type=Path, help="exported ONNX directory")
    p.add_argument("--device", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"])


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

    from model.catalog import INIT_HELP

    init = sub.add_parser(
        "init",
        help="an ALT checkpoint from real CLIP weights, served at once (no video read)",
        description="Write an ALT checkpoint from open_clip CLIP weights: CLIP zero-shot "
        "with region alignment against a real-world entity corpus, for a named label set.",
        epilog=INIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    init.add_argument("--preset", default="B/16", help="B/32, B/16, L/14 or L/14-336")
    init.add_argument(
        "--pretrained", required=True, help="an open_clip pretrained tag, or a local weights file"
    )
    init.add_argument("--out", type=Path, required=True, help="checkpoint directory to write")
    init.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default="fp32",
                      help="how the weights are stored (fp16 halves the size)")  # fmt: skip
    init.add_argument("--label-set", dest="label_set", default="kinetics400",
                      help="default label set: kinetics400, ucf101, hmdb51 or ssv2")  # fmt: skip
    init.add_argument("--entities", type=Path, help="entity file (JSON or text, one per line)")
    init.add_argument("--entities-mode", dest="entities_mode", choices=["extend", "replace"],
                      default="extend", help="add to the real-world corpus, or replace it")  # fmt: skip
    init.add_argument("--merge-r", dest="merge_r", type=int, help="tokens merged per layer")
    init.set_defaults(func=_init)

    serve = sub.add_parser("serve", help="run the HTTP server (settings also from ALT_* variables)")
    _add_model_flags(serve)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--max-batch-size", dest="max_batch_size", type=int)
    serve.add_argument("--max-wait-ms", dest="max_wait_ms", type=float)
    serve.add_argument("--api-key", dest="api_key", help="require 'Authorization: Bearer <key>'")
    serve.add_argument("--ray", action="store_true",
                       help="serve on a Ray cluster: decode and model as separate deployments")  # fmt: skip
    serve.add_argument("--ray-address", dest="ray_address",
                       help="the cluster to join (default: RAY_ADDRESS, else a local one)")  # fmt: skip
    serve.add_argument("--ray-config", dest="ray_config",
                       help="Serve config with replicas and autoscaling (default: server/ray_serve/cluster.yaml)")  # fmt: skip
    serve.set_defaults(func=_serve)

    rec = sub.add_parser("recognize", help="recognize the actions in one video file, no server")
    rec.add_argument("video", type=Path)
    _add_model_flags(rec)
    rec.add_argument("--labels", nargs="+", help="label set (default: the model's)")
    rec.add_argument("--top-k", dest="top_k", type=_positive, default=5)
    rec.add_argument("--explain", choices=["none", "entities", "regions"], default="entities")
    _add_timeline_flags(rec)
    rec.set_defaults(func=_recognize)

    batch = sub.add_parser(
        "recognize-batch",
        help="recognize every video of a folder, glob or CSV into JSON lines (resumable)",
    )
    batch.add_argument("input", help="a folder, a glob pattern, or a CSV of path[,label]")
    batch.add_argument("--out", type=Path, required=True, help="JSON lines file, appended to")
    _add_model_flags(batch)
    batch.add_argument("--labels", nargs="+", help="label set (default: the model's)")
    batch.add_argument("--top-k", dest="top_k", type=_positive, default=5)
    batch.add_argument("--explain", choices=["none", "entities", "regions"], default="entities")
    batch.add_argument("--workers", type=_positive, help="decode processes (default: the cores)")
    batch.add_argument("--max-batch-size", dest="max_batch_size", type=int)
    batch.add_argument("--quiet", action="store_true", help="no progress bar")
    batch.add_argument("--ray", action="store_true", help="run as a Ray Data job")
    batch.add_argument("--ray-address", dest="ray_address",
                       help="the cluster (default: RAY_ADDRESS, else a local one)")  # fmt: skip
    batch.add_argument("--decoders", type=_positive, default=1, help="--ray: decoding actors")
    batch.add_argument(
        "--models",
        type=_positive,
        default=1,
        help="--ray: model actors (with --timeline: actors answering whole videos)",
    )
    _add_timeline_flags(batch)
    batch.set_defaults(func=_recognize_batch)
    export = sub.add_parser(
        "export", help="export a checkpoint to ONNX, or an ONNX graph to TensorRT"
    )
    export.add_argument("format", choices=["onnx", "tensorrt"])
    export.add_argument(
        "source", type=Path, help="checkpoint directory (onnx) or video.onnx (tensorrt)"
    )
    export.add_argument("out", type=Path, help="output directory (onnx) or engine file (tensorrt)")
    export.add_argument("--fp16", action="store_true", help="TensorRT: build an FP16 engine")
    export.add_argument(
        "--plugin",
        action="store_true",
        help="TensorRT: TokenMerge as a Python plugin, not its function body",
    )
    export.set_defaults(func=_export)

    formats = ["csv", "ucf101", "hmdb51", "ssv2"]
    train = sub.add_parser(
        "train",
        help="train ALT (fully supervised, few-shot, or the source of zero-shot) from flags or a recipe",
    )
    train.add_argument(
        "--recipe", help="a recipe file, or a shipped recipe's name (see docs/training.md)"
    )
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override one field of the recipe, e.g. --set optim.lr=1e-5 (repeatable)",
    )
    train.add_argument(
        "--data-root",
        dest="data_root",
        type=Path,
        help="where a recipe's relative paths start (default: the working directory)",
    )
    train.add_argument("--train", type=Path, help="annotation file of the training set")
    train.add_argument("--val", type=Path, help="annotation file of a validation set")
    train.add_argument("--format", choices=formats, help="csv (default): Kinetics-style path,label")
    train.add_argument(
        "--video-root",
        dest="video_root",
        type=Path,
        help="videos folder (default: beside the file)",
    )
    train.add_argument("--out", type=Path, help="checkpoint directory to write")
    train.add_argument("--preset", help="model preset (default B/16)")
    train.add_argument(
        "--pretrained", help="open_clip pretrained tag, or a local CLIP weights file"
    )
    train.add_argument(
        "--entities",
        type=Path,
        help="entity file (JSON or text); label nouns and body parts are added",
    )
    train.add_argument(
        "--regime",
        choices=["supervised", "few-shot"],
        help="few-shot: --shots examples per class; for zero-shot, train on the "
        "source set and `alt evaluate` on the target labels",
    )
    train.add_argument("--shots", type=int, help="few-shot: examples per class")
    train.add_argument("--frames", type=int, help="override the preset's frames per clip")
    train.add_argument("--epochs", type=int, help="default 10")
    train.add_argument(
        "--batch-size", dest="batch_size", type=int, help="clips per process and step (16)"
    )
    train.add_argument(
        "--global-batch",
        dest="global_batch",
        type=int,
        help="reach this batch by gradient accumulation",
    )
    train.add_argument("--lr", type=float, help="the head's learning rate (1e-3)")
    train.add_argument(
        "--backbone-lr-scale",
        dest="backbone_lr_scale",
        type=float,
        help="the image tower's LR as a share of --lr (0.1)",
    )
    train.add_argument("--weight-decay", dest="weight_decay", type=float, help="AdamW (0.05)")
    train.add_argument(
        "--warmup-epochs",
        dest="warmup_epochs",
        type=float,
        help="linear warm-up (default: the first 5%% of the steps)",
    )
    train.add_argument("--precision", choices=["fp32", "bf16", "fp16"], help="default fp32")
    train.add_argument(
        "--grad-checkpointing",
        dest="grad_checkpointing",
        action="store_const",
        const=True,
        help="recompute the image tower's blocks (memory for L/14)",
    )
    train.add_argument(
        "--crop-scale",
        dest="crop_scale",
        type=float,
        nargs=2,
        metavar=("MIN", "MAX"),
        help="random resized crops of this area share (default: none)",
    )
    train.add_argument(
        "--no-flip",
        dest="flip",
        action="store_const",
        const=False,
        help="no mirroring (direction-sensitive labels: Something-Something V2)",
    )
    train.add_argument(
        "--test-views",
        dest="test_views",
        type=int,
        nargs=2,
        metavar=("CLIPS", "CROPS"),
        help="validation views (default 1 1)",
    )
    train.add_argument(
        "--cache-dir",
        dest="cache_dir",
        type=Path,
        help="keep decoded frames on disk (small datasets read many times)",
    )
    train.add_argument(
        "--label-map-steps",
        dest="label_map_steps",
        type=int,
        help="presets with a label map (demo): steps of the label-map stage after "
        "the epochs, the corpus entities as extra anchors (the default build uses 600)",
    )
    train.add_argument("--device", help="auto (default), cpu, cuda")
    train.add_argument(
        "--workers", type=int, help="decode processes (default: the cores, one left)"
    )
    train.add_argument(
        "--eval-every", dest="eval_every", type=int, help="epochs between validations (1)"
    )
    train.add_argument(
        "--save-every-steps",
        dest="save_every_steps",
        type=int,
        help="also save a resumable state every N steps (default: each epoch)",
    )
    train.add_argument(
        "--max-steps",
        dest="max_steps",
        type=int,
        help="stop after N optimizer steps, resumable (a quick trial of a recipe)",
    )
    train.add_argument("--seed", type=int)
    train.set_defaults(func=_train)

    evaluate = sub.add_parser(
        "evaluate",
        help="top-1/top-5 (and alignment quality) of a checkpoint, or a recipe's evaluation",
    )
    evaluate.add_argument("checkpoint", type=Path, nargs="?")
    evaluate.add_argument("--test", type=Path, help="annotation file of the test set")
    evaluate.add_argument("--format", choices=formats, default="csv")
    evaluate.add_argument("--video-root", dest="video_root", type=Path)
    evaluate.add_argument("--split", type=int, default=1, help="hmdb51 split number")
    evaluate.add_argument(
        "--labels-from-test",
        dest="labels_from_test",
        action="store_true",
        help="score against the test set's own labels (zero-shot), not the checkpoint's",
    )
    evaluate.add_argument(
        "--views",
        type=int,
        nargs=2,
        default=[1, 1],
        metavar=("CLIPS", "CROPS"),
        help="test views: temporal clips x spatial crops, probabilities averaged "
        "as the server averages them (the paper: 3 1)",
    )
    evaluate.add_argument("--workers", type=int, default=0, help="decode processes")
    evaluate.add_argument("--masks", type=Path, help="world masks .npz: also score the alignment")
    evaluate.add_argument(
        "--recipe", help="an evaluation recipe (zero-shot over several datasets and splits)"
    )
    evaluate.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    evaluate.add_argument("--data-root", dest="data_root", type=Path)
    evaluate.set_defaults(func=_evaluate)

    world = sub.add_parser("world", help="generate the procedural action world (mp4 + annotations)")
    world.add_argument("out", type=Path)
    world.add_argument("--seed", type=int, default=0)
    world.add_argument("--size", type=int, default=128, help="frame side in pixels")
    world.add_argument(
        "--per-class",
        dest="per_class",
        type=int,
        nargs=5,
        default=[64, 4, 16, 16, 16],
        metavar=("TRAIN", "VAL", "TEST", "FEWSHOT", "ZEROSHOT"),
        help="clips per class and split",
    )
    world.set_defaults(func=_world)

    default = sub.add_parser(
        "build-default", help="regenerate the shipped default model from scratch"
    )
    default.add_argument("--out", type=Path, default=Path("checkpoints/default"))
    default.add_argument("--work", type=Path, default=Path("runs/default"))
    default.add_argument(
        "--baseline-out", type=Path, default=None,
        help="where the baseline trained beside it goes (default: baseline next to --out)",
    )  # fmt: skip
    default.add_argument("--seed", type=int, default=0)
    default.add_argument(
        "--baseline-only", action="store_true",
        help="train only the baseline, beside the ALT checkpoint in --out (same CLIP, checked)",
    )  # fmt: skip
    default.add_argument(
        "--quick", action="store_true", help="a minutes-long smoke run, not a useful model"
    )
    default.set_defaults(func=_build_default)

    from cli import library, watch

    library.register(sub, _add_model_flags, _server_settings)
    watch.register(sub, _add_model_flags, _server_settings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
