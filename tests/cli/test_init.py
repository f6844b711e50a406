"""`alt init` end to end: a weights file in, a served model out; and its errors."""

import httpx
import pytest

from model import catalog
from tests.fixtures import alt_here as alt  # in this process: torch is imported once
from tests.server.conftest import ServerProcess


@pytest.fixture(scope="module")
def weights(clip_weights):
    return clip_weights


@pytest.mark.slow
def test_init_then_serve_a_real_video_with_kinetics_labels(weights, tmp_path, video_dir):
    out = tmp_path / "ckpt"
    proc = alt("init", "--preset", "tiny", "--pretrained", str(weights), "--out", str(out),
               "--dtype", "fp16")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    srv = ServerProcess({"ALT_CHECKPOINT": str(out)})
    try:
        video = (video_dir / "clip0.mp4").read_bytes()
        resp = httpx.post(srv.url + "/recognize", content=video, params={"top_k": 400},
                          headers={"content-type": "video/mp4"}, timeout=60)  # fmt: skip
        assert resp.status_code == 200, resp.text
        body = resp.json()
        kinetics = catalog.label_set("kinetics400")
        assert sorted(a["label"] for a in body["actions"]) == sorted(kinetics)
        sims = [a["similarity"] for a in body["actions"]]
        assert all(-1 <= s <= 1 for s in sims) and len(set(sims)) > 1
        corpus = {e.name for e in catalog.real_world_entities()}
        assert body["entities"] and {e["name"] for e in body["entities"]} <= corpus
        ucf = httpx.post(srv.url + "/recognize", content=video, params={"labels": "@ucf101"},
                         headers={"content-type": "video/mp4"}, timeout=60).json()  # fmt: skip
        assert {a["label"] for a in ucf["actions"]} <= set(catalog.label_set("ucf101"))
        sets = httpx.get(srv.url + "/label-sets").json()["label_sets"]
        assert {s["name"]: s["labels"] for s in sets} == {
            "kinetics400": 400, "ucf101": 101, "hmdb51": 51, "ssv2": 174}  # fmt: skip
        info = httpx.get(srv.url + "/model").json()
        assert "real videos" in info["domain"] and info["default_labels"] == 400
        unknown = httpx.post(srv.url + "/recognize", content=video, params={"labels": "@nope"},
                             headers={"content-type": "video/mp4"})  # fmt: skip
        assert unknown.status_code == 422 and "@kinetics400" in unknown.json()["detail"]
    finally:
        srv.stop()


def _one_line_error(proc, *words):
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.mark.slow
def test_cli_errors_are_one_line(weights, tmp_path):
    _one_line_error(
        alt("init", "--preset", "B/64", "--pretrained", "openai", "--out", str(tmp_path / "a")),
        "unknown preset 'B/64'", "B/16 (open_clip ViT-B-16: openai, laion2b_s34b_b88k",
    )  # fmt: skip
    _one_line_error(
        alt("init", "--preset", "tiny", "--pretrained", str(tmp_path / "none.pt"), "--out", "x"),
        "weights file not found",
    )  # fmt: skip
    _one_line_error(
        alt("init", "--preset", "demo", "--pretrained", str(weights), "--out", str(tmp_path / "b")),
        "do not fit preset demo", "look like preset tiny",
    )  # fmt: skip
    _one_line_error(
        alt("init", "--preset", "tiny", "--pretrained", str(weights), "--out", str(tmp_path / "c"),
            "--label-set", "kinetics700"),
        "unknown label set 'kinetics700'",
    )  # fmt: skip
    csv = tmp_path / "train.csv"
    csv.write_text("path,label\nmissing/a.mp4,waving\nmissing/b.mp4,clapping\n")
    _one_line_error(
        alt("train", "--train", str(csv), "--out", str(tmp_path / "d"), "--preset", "tiny"),
        "none of the 2 videos of the training set", "missing/a.mp4",
    )  # fmt: skip
    helped = alt("init", "--help")
    assert helped.returncode == 0 and "laion2b_s34b_b88k" in helped.stdout
