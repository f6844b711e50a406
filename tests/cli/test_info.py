import subprocess
import sys

from model import preset
from model.flops import count


def test_alt_info_prints_tokens_params_and_gflops():
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "info", "B/16"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "197 -> 189" in out and out.rstrip().endswith("328 GFLOPs per clip")
    assert f"per clip {count(preset('B/16')).per_clip / 1e9:.1f}" in out


def test_alt_info_rejects_unknown_presets():
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "info", "XL"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "unknown preset" in proc.stderr
