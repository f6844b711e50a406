import json

import pytest

from tests.fixtures import LABELS, alt_here


def test_alt_recognize_prints_the_server_answer(tiny_checkpoint, video_dir):
    proc = alt_here("recognize", video_dir / "clip0.mp4", "--checkpoint", tiny_checkpoint,
                    "--labels", "surfing", "juggling,knitting", "--top-k", "2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert len(answer["actions"]) == 2
    assert {a["label"] for a in answer["actions"]} <= {"surfing", "juggling", "knitting"}
    assert answer["entities"] and answer["model"]["name"] == "tiny"


@pytest.mark.slow
def test_alt_recognize_default_labels_and_bad_file(tiny_checkpoint, video_dir, tmp_path):
    proc = alt_here("recognize", video_dir / "clip1.mp4", "--checkpoint", tiny_checkpoint,
                    "--explain", "none", "--top-k", "100")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert (
        sorted(a["label"] for a in answer["actions"]) == sorted(LABELS) and "entities" not in answer
    )
    bad = tmp_path / "notes.txt"
    bad.write_text("not a video")
    proc = alt_here("recognize", bad, "--checkpoint", tiny_checkpoint)
    assert proc.returncode == 1 and "not a readable video" in proc.stderr
