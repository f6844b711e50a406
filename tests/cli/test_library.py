"""`alt index`, `alt search`, `alt timeline`: a folder indexed once (again: skipped; with
other windows: indexed again), searched, and relabelled from the command line, with the
answers `alt recognize --timeline` gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import alt_here
from tests.server.test_library import _close
from tests.videos import moving_square_video

ROOT = Path(__file__).resolve().parents[2]


def test_a_folder_is_indexed_once_then_searched_and_relabelled(tmp_path, tiny_checkpoint):
    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(3):
        moving_square_video(folder / f"clip{i}.mp4", frames=90, seed=i)  # 3.6 s each
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 40)
    model = ("--checkpoint", str(tiny_checkpoint), "--library", str(tmp_path / "lib"))

    first = alt_here("index", str(folder), *model, "--window-s", "2", "--quiet")
    again = alt_here("index", str(folder / "clip*.mp4"), *model, "--window-s", "2", "--quiet")
    wider = alt_here("index", str(folder / "clip0.mp4"), *model, "--window-s", "3", "--quiet")
    found = alt_here("search", "jumping", "waving", *model, "-k", "2")
    alone = alt_here("search", "jumping", *model, "--video", str(folder / "clip1.mp4"))
    stored = alt_here(
        "timeline", str(folder / "clip2.mp4"), *model, "--labels", "a", "b", "--windows"
    )
    fresh = alt_here("recognize", str(folder / "clip2.mp4"), "--checkpoint", str(tiny_checkpoint),
                 "--labels", "a", "b", "--timeline", "--window-s", "2", "--windows")  # fmt: skip
    missing = alt_here("timeline", str(tmp_path / "nothing.mp4"), *model)
    bad_k = alt_here("search", "jumping", *model, "-k", "0")

    assert first.returncode == 1, first.stderr  # the broken file is an error
    assert json.loads(first.stdout) == {"videos": 4, "indexed": 3, "skipped": 0, "errors": 1,
                                        "library": str(tmp_path / "lib")}  # fmt: skip
    assert again.returncode == 0 and json.loads(again.stdout)["skipped"] == 3
    assert json.loads(wider.stdout)["indexed"] == 1  # other windows: indexed again
    moments = [json.loads(line) for line in found.stdout.splitlines()]
    assert [m["query"] for m in moments] == ["jumping"] * 2 + ["waving"] * 2, found.stderr
    assert all(m["name"].startswith("clip") and m["entities"] for m in moments)
    only = [json.loads(line) for line in alone.stdout.splitlines()]
    assert only and {m["name"] for m in only} == {"clip1.mp4"}
    assert stored.returncode == 0 and fresh.returncode == 0, stored.stderr + fresh.stderr
    a, b = json.loads(stored.stdout), json.loads(fresh.stdout)
    for answer in (a, b):
        answer.pop("timings")
    _close(a, b)
    assert missing.returncode == 1 and "not in the library" in missing.stderr
    assert bad_k.returncode != 0 and "-k" in bad_k.stderr


@pytest.mark.slow
def test_alt_index_on_ray_stores_what_a_local_index_stores(tmp_path, tiny_checkpoint):
    """`alt index --ray` on a private local cluster: a Ray Data actor indexes whole videos
    into the library; its rows are the rows a local `alt index` stores."""
    import lancedb
    import numpy as np

    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(2):
        moving_square_video(folder / f"clip{i}.mp4", frames=60, seed=i)
    common = ("--checkpoint", str(tiny_checkpoint), "--window-s", "1", "--quiet")
    local = alt_here("index", str(folder), *common, "--library", str(tmp_path / "local"))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    remote = subprocess.run(
        [sys.executable, "-m", "cli.main", "index", str(folder), *common, "--library",
         str(tmp_path / "ray"), "--ray"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert remote.returncode == 0, remote.stderr[-3000:]
    assert json.loads(remote.stdout) == {
        **json.loads(local.stdout),
        "library": str(tmp_path / "ray"),
    }
    assert json.loads(remote.stdout)["indexed"] == 2
    rows = []
    for name in ("local", "ray"):
        table = lancedb.connect(tmp_path / name).open_table("windows").to_arrow()
        rows.append(table.sort_by([("video_id", "ascending"), ("idx", "ascending")]))
    assert rows[0].num_rows == rows[1].num_rows >= 4
    assert rows[0].column("video_id").to_pylist() == rows[1].column("video_id").to_pylist()
    for column in ("vector", "entity_ids", "seen"):
        a, b = (np.asarray(r.column(column).to_pylist()) for r in rows)
        assert np.allclose(a, b, atol=1e-5), column
