"""The benchmark scripts run end to end at minimal sizes (no timing is asserted)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_model_benchmark_prints_its_table():
    out = run("benchmarks.model", "--preset", "tiny", "--quick", "--rs", "0", "4", "--onnx-rs", "4")
    assert "| ALT r=4 | fp32 | 1 |" in out and "| CLIP mean pooling | bf16 | 1 |" in out
    assert (
        "ALT r=4 (ONNX Runtime)" in out
        and "ALT r=0 (ONNX Runtime)" not in out
        and "alignment + adapter share" in out
    )


@pytest.mark.slow
def test_decode_benchmark_prints_its_table(tmp_path):
    out = run("benchmarks.decode", "--folder", str(tmp_path), "--sizes", "480p", "--seconds", "1",
              "--reps", "1", "--no-model")  # fmt: skip
    assert "| 480p 1 s, 1 keyframe |" in out and "| generated world clip (128 px, 2 s) |" in out


@pytest.mark.slow
def test_server_benchmark_prints_its_table(tiny_checkpoint):
    out = run(
        "benchmarks.server",
        "--checkpoint",
        str(tiny_checkpoint),
        "--concurrency",
        "2",
        "--requests",
        "4",
        "--labels",
        "20",
        "--variant",
        "passive:OMP_WAIT_POLICY=PASSIVE,ALT_MAX_WAIT_MS=1",
    )
    assert out.count("| this | 2 | 4 |") == 1 and "pipeline bound on" in out
    assert out.count("| passive | 2 | 4 |") == 1
    assert "new set of 20 labels" in out


@pytest.mark.slow
def test_library_benchmark_prints_its_tables(tmp_path):
    out_file = tmp_path / "library.txt"
    out = run("benchmarks.library", "--skip-video", "--world-videos", "1", "--least", "1",
              "--windows", "4000", "--out", str(out_file))  # fmt: skip
    assert "top-10 moments inside the action, mean" in out
    assert "| IVF-RQ nprobes 16, refine x32 |" in out and "MiB per hour of video" in out
    written = out_file.read_text().splitlines()
    assert sum(line.startswith("|---") for line in written) == 2  # the world's and the scale's
