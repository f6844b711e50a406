import json
import random

import pytest
import torch

from media import decode_clip, decode_frames, segment_indices
from tests.videos import moving_square_video
from training.data import (
    Sample,
    few_shot,
    read_csv,
    read_hmdb51_splits,
    read_ssv2_json,
    read_ucf101_split,
)
from training.video_data import Augment, EpochSampler, VideoDataset, _crop_box, collate


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
    ds = VideoDataset([Sample(path, "x")], ["x"], frames=8, size=64, train=False, views=(3, 1))
    served, info = decode_clip(path.read_bytes(), 8, 64, clips=3)
    clip, target = ds[0]
    assert target == 0 and torch.equal(clip, torch.from_numpy(served))  # the server's 3 views
    # Training: the TSN offsets of (seed, epoch, index), the same pixels as serving them.
    train = VideoDataset([Sample(path, "x")], ["x"], frames=8, size=64, train=True, seed=3)
    picked = segment_indices(37, 8, rng=random.Random("3/2/0"))
    assert all(int(37 * t / 8) <= i < 37 * (t + 1) / 8 for t, i in enumerate(picked))
    every = torch.from_numpy(decode_frames(path, 64))
    assert torch.equal(train[(0, 2)][0][0], every[picked])
    assert not torch.equal(train[(0, 2)][0], train[(0, 3)][0])  # another epoch, other frames
    assert torch.equal(train[(0, 2)][0], train[(0, 2)][0])  # but the same for one (epoch, item)
    # The disk cache gives the same pixels.
    cached = VideoDataset([Sample(path, "x")], ["x"], frames=8, size=64, train=True, seed=3,
                          cache_dir=tmp_path / "cache")  # fmt: skip
    assert torch.equal(cached[(0, 2)][0], train[(0, 2)][0])
    assert len(list((tmp_path / "cache").iterdir())) == 1
    # Without temporal jitter a training item takes the segment centres, as a test item.
    still = VideoDataset([Sample(path, "x")], ["x"], frames=8, size=64, train=True, seed=3,
                         augment=Augment(jitter=False))  # fmt: skip
    assert torch.equal(still[(0, 2)][0][0], every[segment_indices(37, 8)])
    assert torch.equal(still[(0, 2)][0], still[(0, 3)][0])


def test_labels_outside_the_label_set_and_an_empty_set_are_errors(tmp_path):
    with pytest.raises(ValueError, match="outside the label set"):
        VideoDataset([Sample(tmp_path / "v.mp4", "y")], ["x"], 8, 64, train=False)
    with pytest.raises(ValueError, match="no video"):
        VideoDataset([], ["x"], 8, 64, train=False)


def test_a_broken_video_is_skipped_with_its_reason(tmp_path):
    good = moving_square_video(tmp_path / "good.mp4", frames=20)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 30)
    ds = VideoDataset([Sample(good, "x"), Sample(bad, "x"), Sample(tmp_path / "gone.mp4", "x")],
                      ["x"], 4, 64, train=True)  # fmt: skip
    batch, skipped = collate([ds[0], ds[1], ds[2]])
    assert batch[0].shape == (1, 1, 4, 3, 64, 64) and batch[1].tolist() == [0]
    assert [s.path for s in skipped] == [str(bad), str(tmp_path / "gone.mp4")]
    assert all(s.reason for s in skipped)


def test_random_resized_crops_stay_inside_and_resize_to_the_model(tmp_path):
    path = moving_square_video(tmp_path / "v.mp4", frames=20)
    ds = VideoDataset([Sample(path, "x")], ["x"], 4, 64, train=True,
                      augment=Augment(crop_scale=(0.3, 0.6), flip=True))  # fmt: skip
    assert ds.decode_size == 73
    shapes = {tuple(ds[(0, e)][0].shape) for e in range(6)}
    assert shapes == {(1, 4, 3, 64, 64)}
    boxes = {_crop_box(73, (0.3, 0.6), (3 / 4, 4 / 3), random.Random(i)) for i in range(50)}
    assert len(boxes) > 40
    for y, x, h, w in boxes:
        assert y >= 0 and y + h <= 73 and x >= 0 and x + w <= 73
        assert 0.25 * 73 * 73 <= h * w <= 0.65 * 73 * 73


def test_the_epoch_sampler_resumes_and_shards():
    full = EpochSampler(10, seed=1)
    full.set(epoch=2)
    order = [i for i, _ in full]
    assert sorted(order) == list(range(10))
    full.set(epoch=2, start=4)
    assert [i for i, _ in full] == order[4:]
    full.set(epoch=3)
    assert [i for i, _ in full] != order
    shards = [EpochSampler(10, seed=1, rank=r, world=3) for r in range(3)]
    for s in shards:
        s.set(epoch=2)
    got = [[i for i, _ in s] for s in shards]
    assert [len(g) for g in got] == [4, 4, 4]  # padded to equal shares
    assert set().union(*map(set, got)) == set(range(10))
