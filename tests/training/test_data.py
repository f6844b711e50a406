import json
import random

import numpy as np
import pytest
import torch

from media import decode_clip, segment_indices
from tests.videos import moving_square_video
from training.data import (
    ClipDataset,
    Sample,
    few_shot,
    read_csv,
    read_hmdb51_splits,
    read_ssv2_json,
    read_ucf101_split,
)


def test_kinetics_csv_both_layouts(tmp_path):
    (tmp_path / "a.csv").write_text("path,label\nvids/x.mp4,waving\n")
    (tmp_path / "k.csv").write_text(
        "label,youtube_id,time_start,time_end,split\nabseiling,abc,12,22,train\n"
    )
    assert read_csv(tmp_path / "a.csv") == [Sample(tmp_path / "vids/x.mp4", "waving")]
    assert read_csv(tmp_path / "k.csv") == [
        Sample(tmp_path / "abseiling/abc_000012_000022.mp4", "abseiling")
    ]


def test_ucf_hmdb_ssv2_files(tmp_path):
    (tmp_path / "trainlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nBoxing/v_Boxing_g01_c02.avi 13\n"
    )
    got = read_ucf101_split(tmp_path / "trainlist01.txt", tmp_path / "ucf")
    assert [s.label for s in got] == ["ApplyEyeMakeup", "Boxing"]
    assert got[0].path == tmp_path / "ucf/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"
    splits = tmp_path / "hmdb"
    splits.mkdir()
    (splits / "brush_hair_test_split1.txt").write_text("a.avi 1\nb.avi 2\nc.avi 0\n")
    (splits / "cartwheel_test_split1.txt").write_text("d.avi 2\n")
    assert [(s.path.name, s.label) for s in read_hmdb51_splits(splits, tmp_path / "v", 1, "test")] == [
        ("b.avi", "brush_hair"), ("d.avi", "cartwheel")]  # fmt: skip
    (tmp_path / "ss.json").write_text(
        json.dumps([{"id": "7", "template": "Putting [something] on [something]"}])
    )
    assert read_ssv2_json(tmp_path / "ss.json", tmp_path) == [
        Sample(tmp_path / "7.webm", "Putting something on something")
    ]


def test_few_shot_is_per_class_nested_and_fixed():
    pool = [Sample(f"{c}{i}.mp4", c) for c in "abc" for i in range(10)]
    two, four = few_shot(pool, 2, seed=1), few_shot(pool, 4, seed=1)
    assert [s.label for s in two] == ["a", "a", "b", "b", "c", "c"]
    assert set(two) <= set(four) and few_shot(pool, 2, seed=1) == two
    with pytest.raises(ValueError, match="fewer than k"):
        few_shot(pool, 11)


def test_training_sampling_matches_serving_exactly(tmp_path):
    path = moving_square_video(tmp_path / "v.mp4", frames=37)
    ds = ClipDataset([Sample(path, "x")], ["x"], frames=8, size=64, train=False, progress=False)
    served, info = decode_clip(path.read_bytes(), 8, 64)
    clip, target = ds[0]
    assert target == 0 and torch.equal(clip, torch.from_numpy(served[0]))
    assert ds.indices(0) == list(info.sampled[0])
    train = ClipDataset(
        [Sample(path, "x")],
        ["x"],
        frames=8,
        size=64,
        train=True,
        seed=3,
        cache=ds.cache,
        progress=False,
    )
    random_indices = train.indices(0)
    assert random_indices == segment_indices(37, 8, rng=random.Random(3))
    assert all(int(37 * t / 8) <= i < 37 * (t + 1) / 8 for t, i in enumerate(random_indices))


def test_labels_outside_the_label_set_are_an_error(tmp_path):
    with pytest.raises(ValueError, match="outside the label set"):
        ClipDataset(
            [Sample(tmp_path / "v.mp4", "y")],
            ["x"],
            8,
            64,
            train=False,
            cache={(tmp_path / "v.mp4", 64): np.zeros(1)},
        )
