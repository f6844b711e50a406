"""`alt recognize-batch`: a collection answered line by line as `alt recognize` answers each
file, resumable after an interruption, a broken file one error line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import write_world_videos
from tests.fixtures import Ran, alt_here

ROOT = Path(__file__).resolve().parents[2]
FAULTS = ROOT / "tests" / "media" / "faults"


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> tuple[Path, list[tuple[Path, str]]]:
    """20 world clips, a file that is no video, and a CSV of path,label."""
    folder = tmp_path_factory.mktemp("collection")
    videos = write_world_videos(folder, 20, seed=910_000)
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 40)
    rows = ["path,label", *(f"{p.name},{label}" for p, label in videos), "broken.mp4,waving"]
    (folder / "list.csv").write_text("\n".join(rows) + "\n")
    return folder, videos


def _batch(*args: str) -> Ran:
    """`alt recognize-batch ARGS --quiet` in this process: torch is imported once."""
    return alt_here("recognize-batch", *args, "--quiet")


def _lines(path: Path) -> list[dict]:
    return [json.loads(t) for t in path.read_text().splitlines()]


def _per_file(paths: list[Path]) -> dict[str, dict]:
    """Each file alone through the engine `alt recognize` runs, one after the other."""
    import asyncio

    from server.engine.schemas import Explain
    from server.settings import Settings

    async def run() -> dict[str, dict]:
        settings = Settings()
        engine = settings.in_process_engine()
        await engine.start()
        try:
            return {str(p): (await engine.recognize(p.read_bytes(), None, 5, Explain.entities))
                    .model_dump(mode="json", exclude_none=True) for p in paths}  # fmt: skip
        finally:
            await engine.stop()

    return asyncio.run(run())


def _same(a: dict, b: dict) -> None:
    assert [x["label"] for x in a["actions"]] == [x["label"] for x in b["actions"]]
    for x, y in zip(a["actions"], b["actions"]):
        assert x["score"] == pytest.approx(y["score"], abs=1e-5)
    assert [e["name"] for e in a["entities"]] == [e["name"] for e in b["entities"]]
    assert a["video"] == b["video"]


@pytest.mark.slow
def test_a_batch_answers_each_file_as_alt_recognize_does(collection, tmp_path):
    folder, videos = collection
    out = tmp_path / "out.jsonl"
    proc = _batch(str(folder / "list.csv"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    lines = {line["path"]: line for line in _lines(out)}
    assert len(lines) == 21 == len(_lines(out))  # each file once
    broken = lines.pop(str(folder / "broken.mp4"))
    assert broken["status"] == 415 and broken["error"] == "unsupported_media"
    alone = _per_file([p for p, _ in videos])
    for path, label in videos:
        line = lines[str(path)]
        assert line["status"] == 200 and line["label"] == label
        _same(line, alone[str(path)])
    # The real `alt recognize` command, for two of them.
    for path, _ in videos[:2]:
        rec = alt_here("recognize", path)
        assert rec.returncode == 0, rec.stderr
        _same(lines[str(path)], json.loads(rec.stdout))
    # Accuracy over the label column, as the lines say it.
    top1 = sum(lines[str(p)]["actions"][0]["label"] == lab for p, lab in videos) / 20 * 100
    top5 = (
        sum(lab in [a["label"] for a in lines[str(p)]["actions"]] for p, lab in videos) / 20 * 100
    )
    assert (
        f"top-1 {top1:.1f}%  top-5 {top5:.1f}%  over 20 labelled videos (1 errors)" in proc.stderr
    )


def test_a_glob_and_a_folder_are_collections_too(collection, tmp_path):
    from server.offline import InputError, collect

    folder, videos = collection
    assert [i.path for i in collect(folder)] == sorted(
        [str(p) for p, _ in videos] + [str(folder / "broken.mp4")]
    )
    assert [i.path for i in collect(str(folder / "00*.mp4"))] == [str(p) for p, _ in videos[:10]]
    with pytest.raises(InputError, match="no videos"):
        collect(tmp_path)
    proc = _batch(str(tmp_path / "nothing"), "--out", str(tmp_path / "x.jsonl"))
    assert proc.returncode == 1 and "not a folder, a CSV file or a glob" in proc.stderr


@pytest.mark.slow
def test_an_interrupted_run_resumes_without_redoing_finished_videos(collection, tmp_path):
    folder, videos = collection
    # A crashing file and a hanging one (fault injection in the decode workers).
    (folder_ := tmp_path / "c").mkdir()
    for p, _ in videos[:8]:
        (folder_ / p.name).write_bytes(p.read_bytes())
    (folder_ / "100_crash.mp4").write_bytes(b"ABORT" + b"\0" * 64)
    (folder_ / "101_hang.mp4").write_bytes(b"HANG" + b"\0" * 64)
    out = tmp_path / "out.jsonl"
    env = {"PYTHONPATH": os.pathsep.join([str(FAULTS), str(ROOT)])}
    first = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "recognize-batch", str(folder_), "--out", str(out),
         "--quiet", "--workers", "2"],
        cwd=ROOT, env={**os.environ, **env}, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or len(_lines(out)) < 9):
        assert first.poll() is None, first.stderr.read()
        time.sleep(0.1)
    time.sleep(0.5)
    first.send_signal(signal.SIGKILL)  # stuck on the hanging file: interrupted
    first.wait()
    kept = out.read_text()
    done = _lines(out)
    assert len(done) == 9 and str(folder_ / "101_hang.mp4") not in {d["path"] for d in done}
    crash = next(d for d in done if d["path"].endswith("100_crash.mp4"))
    assert crash["status"] == 422 and crash["error"] == "decode_failed"
    with out.open("a") as f:
        f.write('{"path": "' + str(folder_ / "101_hang.mp4") + '", "sta')  # a line cut short
    second = _batch(str(folder_), "--out", str(out))  # no faults now: the file is no video
    assert second.returncode == 0, second.stderr
    assert "1 answered now, 9 already in" in second.stderr
    text = out.read_text()
    assert text.startswith(kept)  # the finished lines are kept as they were
    final = _lines(out)
    assert len(final) == 10 == len({d["path"] for d in final})
    assert final[-1]["path"].endswith("101_hang.mp4") and final[-1]["status"] == 415


def test_a_missing_file_is_its_own_line_and_the_output_folder_is_made(collection, tmp_path):
    folder, videos = collection
    listing = tmp_path / "list.csv"
    listing.write_text(f"{videos[0][0]},{videos[0][1]}\n{tmp_path / 'gone.mp4'},waving\n")
    out = tmp_path / "new" / "folder" / "out.jsonl"
    proc = _batch(str(listing), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    lines = {line["path"]: line for line in _lines(out)}
    gone = lines[str(tmp_path / "gone.mp4")]
    assert gone["status"] == 404 and gone["error"] == "not_found" and gone["label"] == "waving"
    assert lines[str(videos[0][0])]["status"] == 200
    assert "over 1 labelled videos (1 errors)" in proc.stderr


@pytest.mark.parametrize("flag", ["--workers", "--decoders", "--models", "--top-k"])
def test_counts_below_one_are_refused_like_the_settings(tmp_path, flag):
    out = alt_here("recognize-batch", tmp_path, "--out", tmp_path / "o.jsonl", flag, "0")
    assert out.returncode == 2, out.stderr
    assert f"{flag}: must be 1 or more, not 0" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_a_timeline_per_line_equal_to_alt_recognize_timeline(tmp_path):
    from media import write_video
    from training.generate import render_timeline

    labels = json.loads((ROOT / "checkpoints" / "default" / "labels.json").read_text())
    for i in range(2):
        frames, _ = render_timeline(labels[3 * i : 3 * i + 3], 6.0, seed=40 + i)
        write_video(tmp_path / f"{i}.mp4", frames)
    listing = tmp_path / "list.csv"
    listing.write_text(f"{tmp_path / '0.mp4'}\n{tmp_path / '1.mp4'}\n{tmp_path / 'gone.mp4'}\n")
    out = tmp_path / "out.jsonl"
    proc = _batch(str(listing), "--out", str(out), "--timeline", "--window-s", "4")
    assert proc.returncode == 0, proc.stderr
    lines = {line["path"]: line for line in _lines(out)}
    assert lines[str(tmp_path / "gone.mp4")]["status"] == 404
    for i in range(2):
        line = lines[str(tmp_path / f"{i}.mp4")]
        assert line["status"] == 200 and line["video"]["windows"] == 8
        assert line["timeline"][0]["start_s"] == 0 and line["timeline"][-1]["end_s"] == 18.0
    one = alt_here("recognize", tmp_path / "1.mp4", "--timeline", "--window-s", "4")
    assert one.returncode == 0, one.stderr
    alone = json.loads(one.stdout)
    line = lines[str(tmp_path / "1.mp4")]
    assert alone["timeline"] == line["timeline"] and alone["summary"] == line["summary"]


def test_resuming_knows_a_video_by_its_canonical_path(collection, tmp_path, monkeypatch):
    from server.offline import recognize_batch
    from server.settings import Settings

    folder, videos = collection
    (clips := tmp_path / "clips").mkdir()
    for p, _ in videos[:3]:
        (clips / p.name).write_bytes(p.read_bytes())
    (tmp_path / "linked").symlink_to(clips)
    out = tmp_path / "out.jsonl"
    settings = Settings(decode_workers=1)
    first = recognize_batch(settings, clips, out, progress=False)
    assert first["answered"] == 3
    monkeypatch.chdir(tmp_path)
    for spelling in ("clips", "./clips/", "linked", str(tmp_path / "linked" / "*.mp4")):
        again = recognize_batch(settings, spelling, out, progress=False)
        assert (again["answered"], again["skipped"]) == (0, 3), spelling
    # One listing naming a new video twice, relative and absolute: answered once.
    extra = tmp_path / "extra.mp4"
    extra.write_bytes(videos[3][0].read_bytes())
    (tmp_path / "list.csv").write_text(f"path,label\nextra.mp4,a\n{extra},a\n")
    twice = recognize_batch(settings, tmp_path / "list.csv", out, progress=False)
    assert twice["answered"] == 1
    assert len(_lines(out)) == 4
