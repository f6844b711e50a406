import torch
import torch.nn.functional as F

from training.pretrain import patch_entity_targets, region_loss


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
