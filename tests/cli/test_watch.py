import json
import subprocess
import sys

import pytest

from tests.videos import moving_square_video


@pytest.mark.slow
def test_alt_watch_prints_a_files_events_as_it_plays(tiny_checkpoint, tmp_path):
    video = moving_square_video(tmp_path / "cam.mp4", frames=125)  # 5 s at its own rate
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "watch", str(video), "--checkpoint", str(tiny_checkpoint),
         "--labels", "surfing", "juggling", "--lag-windows", "0", "--alert", "surfing=0", "--alert",
         "juggling=0", "--status"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    kinds = [line["event"] for line in lines]
    # live, the one window's segment opening (and its alert), closing at the end, stopped.
    assert kinds[0] == "status" and lines[0]["state"] == "live"
    assert kinds[-1] == "status" and lines[-1]["state"] == "stopped"
    segments = [line for line in lines if line["event"] == "segment"]
    assert [s["end_s"] for s in segments] == [None, 4.0] and segments[0]["label"] in (
        "surfing",
        "juggling",
    )
    assert segments[0]["label"] == segments[1]["label"] and segments[1]["entities"]
    assert [a["label"] for a in lines if a["event"] == "alert"] == [segments[0]["label"]]
    bad = subprocess.run([sys.executable, "-m", "cli.main", "watch", str(video), "--stride-s", "9"],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode != 0 and "stride_s must not exceed window_s" in bad.stderr
