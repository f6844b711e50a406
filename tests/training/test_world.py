import json
import re

import numpy as np

from model.video import decode_clip
from training.actions import HELD_OUT, SEEN
from training.generate import caption, generate_world, render_clip
from training.world import EID, ENTITY_NAMES


def test_world_has_enough_classes_and_compositional_held_out_names():
    assert len(SEEN) >= 24 and len(HELD_OUT) >= 6
    seen_words = {w for label in SEEN for w in label.split()}
    for label in HELD_OUT:
        assert label not in SEEN
        assert set(label.split()) <= seen_words, label


def test_clips_are_deterministic_per_seed_and_vary_across_seeds():
    a, ids_a, facts_a = render_clip("kicking a ball", 5)
    b, ids_b, _ = render_clip("kicking a ball", 5)
    c, _, facts_c = render_clip("kicking a ball", 6)
    assert np.array_equal(a, b) and np.array_equal(ids_a, ids_b)
    assert a.shape[0] != c.shape[0] or not np.array_equal(a, c)
    assert 16 <= a.shape[0] <= 32 and a.shape[1:] == (128, 128, 3)
    assert facts_a["seed"] == 5 and facts_c["seed"] == 6


def test_ground_truth_names_the_drawn_entities():
    _, ids, _ = render_clip("kicking a ball", 1)
    present = {ENTITY_NAMES[i - 1] for i in np.unique(ids) if i}
    assert {"head", "torso", "leg", "foot", "ball"} <= present
    _, ids, _ = render_clip("drinking from a cup", 1)
    assert (ids == EID["cup"]).any()


def test_captions_name_entities_but_never_actions():
    action_words = {
        w for label in [*SEEN, *HELD_OUT] for w in label.split() if w.endswith("ing")
    } | {"nodding"}
    rng = np.random.default_rng(0)
    for i, action in enumerate(SEEN):
        _, ids, facts = render_clip(action, i)
        text = caption(ids[0], facts, rng)
        assert not set(re.findall(r"[a-z]+", text)) & action_words, text
        assert "person" in text


def test_generated_world_files(tmp_path):
    meta = generate_world(
        tmp_path, {"train": 1, "val": 0, "test": 1, "fewshot": 1, "zeroshot": 0}, seed=3, workers=1
    )
    rows = (tmp_path / "train.csv").read_text().splitlines()
    assert rows[0] == "path,label" and len(rows) == 1 + len(SEEN)
    rel, label = rows[1].split(",", 1)
    video, info = decode_clip((tmp_path / rel).read_bytes(), 8, 96)
    assert video.shape == (1, 8, 3, 96, 96) and info.width == 128
    masks = np.load(tmp_path / "masks" / "train.npz")
    assert masks[rel].shape == (info.num_frames, 32, 32)
    captions = json.loads((tmp_path / "captions" / "train.json").read_text())
    assert len(captions[rel]) == info.num_frames
    assert meta["held_out"] == list(HELD_OUT) and label in SEEN
