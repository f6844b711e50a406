from dataclasses import replace
from unittest.mock import patch

import pytest
import torch
import torch.nn.functional as F

from model.clip import create_clip
from training.generate import generate_world
from training.pipeline import world_entities
from training.pretrain import ClipPretraining, patch_entity_targets, pretrain_clip, region_loss


def test_patch_targets_are_the_entity_shares_of_each_patch():
    masks = torch.zeros(1, 8, 8, dtype=torch.uint8)  # a 2x2 patch grid, 4x4 cells per patch
    masks[0, :4, :4] = 3  # top-left patch: all entity 3
    masks[0, :4, 4:6] = 1  # top-right: half entity 1, half nothing
    masks[0, 4:, :4] = 2  # bottom-left: 3/4 entity 2, 1/4 entity 1
    masks[0, 7, :4] = 1
    # bottom-right: nothing
    targets = patch_entity_targets(masks, (2, 2), entities=3)
    assert targets.shape == (1, 4, 3)
    expected = torch.tensor([[0, 0, 1], [1, 0, 0], [0.25, 0.75, 0], [0, 0, 0]])
    assert torch.allclose(targets[0], expected)


def test_region_loss_prefers_patches_at_their_entities_and_ignores_empty_patches():
    entity_emb = F.normalize(torch.randn(3, 16), dim=-1)
    targets = torch.tensor([[[0.0, 0, 1], [1, 0, 0], [0, 0, 0]]])  # last patch: no entity
    right = torch.stack([entity_emb[2], entity_emb[0], entity_emb[1]])[None]
    wrong = torch.stack([entity_emb[0], entity_emb[1], entity_emb[2]])[None]
    scale = torch.tensor(20.0)
    good, bad = (
        region_loss(right, entity_emb, targets, scale),
        region_loss(wrong, entity_emb, targets, scale),
    )
    assert good < 0.1 < bad
    # The empty patch does not count: moving it changes nothing.
    moved = right.clone()
    moved[0, 2] = entity_emb[0]
    assert torch.equal(region_loss(moved, entity_emb, targets, scale), good)


def test_region_loss_is_the_mean_over_patches_that_show_an_entity():
    torch.manual_seed(0)
    entity_emb = F.normalize(torch.randn(2, 16), dim=-1)
    targets = F.one_hot(torch.tensor([0] * 9 + [1]), 2).float()[None]
    targets[0, 4] = 0.0  # a patch of background: left out
    patches = F.normalize(torch.randn(1, 10, 16), dim=-1)
    scale = torch.tensor(10.0)
    per_patch = F.cross_entropy(scale * patches[0] @ entity_emb.t(), targets[0], reduction="none")
    keep = torch.arange(10) != 4
    torch.testing.assert_close(
        region_loss(patches, entity_emb, targets, scale), per_patch[keep].mean()
    )


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    generate_world(root, {"train": 1, "val": 0, "test": 0, "fewshot": 0, "zeroshot": 0}, workers=1)
    return root


@pytest.mark.slow
def test_pretraining_resumes_from_its_state_with_identical_weights(small_world, tmp_path):
    cfg = ClipPretraining(steps=4, batch_size=8, state_every=2)
    kwargs = dict(cfg=cfg, entities=world_entities())
    whole = torch.load(pretrain_clip("ALT-demo", small_world, tmp_path / "a.pt", **kwargs))

    class Stop(Exception):
        pass

    class Interrupted:  # a progress bar whose process dies at the fourth step
        def __init__(self, iterable, **_):
            self.iterable = iterable

        def __iter__(self):
            for i, item in enumerate(self.iterable):
                if i == 3:
                    raise Stop
                yield item

        def set_postfix(self, **_):
            pass

    with patch("training.pretrain.tqdm", Interrupted), pytest.raises(Stop):
        pretrain_clip("ALT-demo", small_world, tmp_path / "b.pt", **kwargs)
    assert (tmp_path / "b.pt.state").is_file() and not (tmp_path / "b.pt").exists()
    resumed = torch.load(pretrain_clip("ALT-demo", small_world, tmp_path / "b.pt", **kwargs))
    assert not (tmp_path / "b.pt.state").exists()
    assert whole.keys() == resumed.keys()
    for name in whole:
        assert torch.equal(whole[name], resumed[name]), name
    fresh = create_clip("ALT-demo").state_dict()
    assert not torch.equal(fresh["visual.proj"], whole["visual.proj"])  # it did train
    # The dense term is used: the same run without it ends elsewhere.
    plain = replace(cfg, region_weight=0.0)
    without = torch.load(pretrain_clip("ALT-demo", small_world, tmp_path / "c.pt", plain,
                                       entities=world_entities()))  # fmt: skip
    assert not torch.equal(without["visual.proj"], whole["visual.proj"])
