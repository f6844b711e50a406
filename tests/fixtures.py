"""Constants and builders shared by tests."""

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import torch

from model import ALTConfig, Entity, build_alt, preset, save_checkpoint

LABELS = [
    "waving",
    "clapping",
    "jumping",
    "kicking a ball",
    "throwing a ball",
    "drinking from a cup",
]
ENTITIES = [
    "hand",
    "arm",
    "leg",
    "head",
    "ball",
    "cup",
    "box",
    "grass",
    "floor",
    "red",
    "blue",
    "sky",
]


def save_tiny_checkpoint(path: Path, config: ALTConfig | None = None) -> Path:
    """A tiny ALT (seed 0, alpha 0.5, a speaking adapter) with the ENTITIES corpus, saved."""
    torch.manual_seed(0)
    config = config or preset("tiny").replace(alpha_init=0.5)
    model, corpus = build_alt(config, entities=[Entity(n) for n in ENTITIES])
    torch.nn.init.normal_(model.adapter.proj.weight, std=0.1)  # as if trained: the adapter speaks
    save_checkpoint(path, model, corpus, LABELS)
    return path


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def alt_here(*args: object) -> Ran:
    """`alt ARGS` in this process, through the CLI's own parser: torch is loaded once, not
    once per command (a CLI process spends seconds importing it)."""
    from cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as stop:
            if stop.code is None or isinstance(stop.code, int):
                code = stop.code or 0
            else:  # a message: the CLI's one-line error
                code = 1
                print(stop.code, file=err)
    return Ran(code, out.getvalue(), err.getvalue())
