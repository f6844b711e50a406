"""Timing helpers shared by the benchmark scripts: medians of repeated runs, a measured
matmul peak, and markdown tables."""

from __future__ import annotations

import importlib.util
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

import torch


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_seconds(
    fn: Callable[[], object], device: str = "cpu", warmup: int = 1, reps: int = 3
) -> float:
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def matmul_peak_gflops(
    device: str = "cpu", dtype: torch.dtype = torch.float32, n: int = 2048
) -> float:
    """Measured dense matmul rate (GFLOP/s, 2 per multiply-add) on this machine, right now."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    seconds = median_seconds(lambda: a @ b, device, warmup=2, reps=5)
    return 2 * n**3 / seconds / 1e9


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{platform.node()}: {torch.get_num_threads()} torch threads, {cpu}{gpu}, torch {torch.__version__}"


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def fmt(v: object) -> str:
        return (
            f"{v:.3g}"
            if isinstance(v, float) and abs(v) < 100
            else (f"{v:.0f}" if isinstance(v, float) else str(v))
        )

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


# The decoder before media/ (model/video.py at this commit), measured side by side with it.
LEGACY_DECODER = ("8f3b2e1", "model/video.py")


def module_at(ref: str, path: str, name: str) -> ModuleType:
    """A file of this repository as it was at commit `ref`, imported as module `name`, so a
    benchmark measures an earlier implementation beside today's without keeping a copy."""
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        ["git", "show", f"{ref}:{path}"], cwd=root, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{path} at {ref} is not in this clone's history: {proc.stderr}")
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader=None))
    sys.modules[name] = module  # dataclasses look their module up while it runs
    exec(compile(proc.stdout, f"{ref}:{path}", "exec"), module.__dict__)  # noqa: S102
    return module
