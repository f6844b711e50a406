"""What CLIP pretraining and ALT training share: the learning-rate schedule, and the state
that lets an interrupted run resume where it stopped."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine(opt: Optimizer, total: int, warmup: int | None = None) -> LambdaLR:
    """Linear warm-up over `warmup` steps (default: the first 5% of `total`), then a cosine
    decay to 0."""
    warmup = max(1, total // 20 if warmup is None else warmup)
    return LambdaLR(
        opt,
        lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, total)))),
    )  # fmt: skip


def save_state(
    path: Path, module: nn.Module, opt: Optimizer, sched: LambdaLR, **extra: Any
) -> None:
    """Weights, optimizer and schedule, with `extra` (progress, sampler state)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"module": module.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), **extra}, path)  # fmt: skip


def load_state(
    path: Path | None, module: nn.Module, opt: Optimizer, sched: LambdaLR
) -> dict | None:
    """Restore what `save_state` wrote into the three; returns its `extra`, or None when
    there is no state to resume from."""
    if path is None or not path.is_file():
        return None
    state = torch.load(path, weights_only=False)
    module.load_state_dict(state.pop("module"), strict=True)
    opt.load_state_dict(state.pop("optimizer"))
    sched.load_state_dict(state.pop("scheduler"))
    return state
