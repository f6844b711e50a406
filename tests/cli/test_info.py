import os
import subprocess
import sys
from pathlib import Path

from model import preset
from model.flops import count

ROOT = Path(__file__).resolve().parents[2]


def test_alt_info_prints_tokens_params_and_gflops():
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "info", "B/16"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "197 -> 189" in out and out.rstrip().endswith("328 GFLOPs per clip")
    assert f"per clip {count(preset('B/16')).per_clip / 1e9:.1f}" in out


def test_alt_info_rejects_unknown_presets_without_torch():
    # torch and open_clip cannot be imported here: the name is checked before either loads.
    notorch = Path(__file__).resolve().parents[1] / "server" / "notorch"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(notorch), str(ROOT)])}
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "info", "XL"], capture_output=True, text=True,
        env=env, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 2 and "unknown preset" in proc.stderr
    assert "Traceback" not in proc.stderr
    # A preset's whole report, too, with the same figures as where torch is there.
    run = [sys.executable, "-m", "cli.main", "info", "B/16", "demo"]
    without = subprocess.run(run, capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    with_torch = subprocess.run(run, capture_output=True, text=True, cwd=ROOT, check=True)
    assert without.stdout == with_torch.stdout and "params (M)" in without.stdout
