import json
import subprocess
import sys

import pytest

from tests.fixtures import LABELS


def test_alt_recognize_prints_the_server_answer(tiny_checkpoint, video_dir):
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "recognize", str(video_dir / "clip0.mp4"),
         "--checkpoint", str(tiny_checkpoint), "--labels", "surfing", "juggling,knitting", "--top-k", "2"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    answer = json.loads(proc.stdout)
    assert len(answer["actions"]) == 2
    assert {a["label"] for a in answer["actions"]} <= {"surfing", "juggling", "knitting"}
    assert answer["entities"] and answer["model"]["name"] == "tiny"


@pytest.mark.slow
def test_alt_recognize_default_labels_and_bad_file(tiny_checkpoint, video_dir, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "recognize", str(video_dir / "clip1.mp4"),
         "--checkpoint", str(tiny_checkpoint), "--explain", "none", "--top-k", "100"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    answer = json.loads(proc.stdout)
    assert (
        sorted(a["label"] for a in answer["actions"]) == sorted(LABELS) and "entities" not in answer
    )
    bad = tmp_path / "notes.txt"
    bad.write_text("not a video")
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "recognize", str(bad), "--checkpoint", str(tiny_checkpoint)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 1 and "not a readable video" in proc.stderr
