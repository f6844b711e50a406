import json
import re

import numpy as np
import pytest
import torch

from media import decode_clip
from training.actions import HELD_OUT, SEEN
from training.generate import caption, generate_world, render_clip
from training.pretrain import patch_entity_targets
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
    for i, action in enumerate([*SEEN, *HELD_OUT]):
        _, ids, facts = render_clip(action, i)
        for t in range(len(ids)):
            text = caption(ids[t], facts, t)
            assert not set(re.findall(r"[a-z]+", text)) & action_words, text
            assert "person" in text


def _states(action: str, seed: int = 3) -> set[str]:
    _, _, facts = render_clip(action, seed)
    return {p for s in facts["states"] for p in s["pose"] + s["objects"]}


def test_captions_describe_the_posture_of_each_frame():
    # Some frame of the clip shows the posture that defines the action, and frames differ.
    assert "both arms raised above the head" in _states("raising both arms")
    assert "both knees bent" in _states("squatting")
    assert "feet off the ground" in _states("jumping")
    assert "one foot lifted behind" in _states("hopping on one leg")
    assert "bent over at the waist" in _states("touching toes")
    assert "a person seated on a chair" in _states("sitting on a chair")
    assert "a cup at the mouth" in _states("drinking from a cup")
    assert "a ball in the air" in _states("kicking a ball")
    assert "a box held against the chest" in _states("carrying a box")
    assert "both arms raised above the head" not in _states("walking")
    assert "feet off the ground" not in _states("waving")


@pytest.mark.slow
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


def _frames_with_a_patch_mostly(entity: str, actions: list[str], grid: int = 8) -> float:
    """Share of the frames showing `entity` where some patch of the model's grid (8 x 8:
    12 px at 96 px input, 16 px of the 128 px frame) is at least half that entity."""
    hits = shown = 0
    for i, action in enumerate(actions):
        _, ids, _ = render_clip(action, 40 + i)
        shares = patch_entity_targets(torch.from_numpy(ids), (grid, grid), len(ENTITY_NAMES))
        mostly = (shares[..., EID[entity] - 1] >= 0.5).any(1).numpy()
        present = (ids == EID[entity]).any((1, 2))
        hits, shown = hits + int((mostly & present).sum()), shown + int(present.sum())
    return hits / shown


def test_objects_and_limbs_are_big_enough_for_the_patch_grid():
    # Alignment works on patches: an entity that never fills half a patch is never resolved.
    ball_actions = [a for a in [*SEEN, *HELD_OUT] if a.endswith("a ball")]
    assert _frames_with_a_patch_mostly("ball", ball_actions) >= 0.8
    assert _frames_with_a_patch_mostly("leg", ["walking", "squatting", "jumping"]) >= 0.5
    assert _frames_with_a_patch_mostly("arm", ["waving", "clapping", "punching"]) >= 0.3
