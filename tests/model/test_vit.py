import pytest
import torch

from model import build_alt, preset
from model.clip import create_clip
from model.schedule import parse_schedule
from model.vit import merge_plan, region_forward


def _anchor(arch: str, size: int, seed: int):
    torch.manual_seed(seed)
    clip = create_clip(arch).eval()
    images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))
    layers = len(clip.visual.transformer.resblocks)
    plan = merge_plan(clip.visual, [0] * layers)
    with torch.no_grad():
        ours = region_forward(clip.visual, images, plan, prop_attn=False)
        theirs = clip.encode_image(images)
    return ours, theirs


def test_cls_equals_open_clip_encode_image_tiny():
    ours, theirs = _anchor("ALT-tiny", 64, 0)
    assert (ours.cls - theirs).abs().max().item() <= 1e-5


def test_cls_equals_open_clip_encode_image_b16():
    ours, theirs = _anchor("ViT-B-16", 224, 1)
    assert (ours.cls - theirs).abs().max().item() <= 1e-5
    assert ours.regions.shape == (2, 196, 512)


def test_b16_r8_keeps_101_tokens_and_sizes_cover_all_patches():
    torch.manual_seed(2)
    clip = create_clip("ViT-B-16").eval()
    plan = merge_plan(clip.visual, parse_schedule(12, 8))
    assert plan == [8] * 12
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        out = region_forward(clip.visual, images, plan, track_source=True)
    assert out.regions.shape == (1, 100, 512)  # 101 tokens: CLS + 100 regions
    assert out.sizes.sum().item() == 196
    # Every patch belongs to exactly one region, and a region's size counts its patches.
    assert torch.equal(out.source.sum(dim=1), torch.ones(1, 196))
    assert torch.equal(out.source.sum(dim=2), out.sizes)


def test_merging_never_mixes_images_of_a_batch(tiny_bundle):
    model, _ = tiny_bundle
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        together = region_forward(model.clip.visual, images, model.plan, track_source=True)
        alone = [
            region_forward(model.clip.visual, images[i : i + 1], model.plan, track_source=True)
            for i in range(3)
        ]
    for i, single in enumerate(alone):
        torch.testing.assert_close(together.regions[i], single.regions[0], rtol=1e-5, atol=1e-5)
        assert torch.equal(together.source[i], single.source[0])
        assert together.sizes[i].sum().item() == 64


def test_proportional_attention_changes_merged_tokens(tiny_bundle, tiny_config):
    model, _ = tiny_bundle
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        on = region_forward(model.clip.visual, images, model.plan, prop_attn=True)
        off = region_forward(model.clip.visual, images, model.plan, prop_attn=False)
    assert (on.cls - off.cls).abs().max().item() > 1e-6


def test_every_patch_lies_in_exactly_one_region(tiny_bundle, tiny_frames):
    model, _ = tiny_bundle
    with torch.no_grad():
        out = model.encode_video(tiny_frames, track_source=True)
    r = out.region_entities.shape[-1]
    assert out.embedding.shape == (2, model.dim)
    assert out.sources.shape == (2, 4, r, 64)
    # The source matrix partitions the 64 patches among the regions, as sizes say.
    assert torch.equal(out.sources.sum(dim=2), torch.ones(2, 4, 64, dtype=out.sources.dtype))
    torch.testing.assert_close(out.sources.sum(dim=-1).float(), out.region_sizes.float())


def test_wrong_input_shapes_fail_with_a_message(tiny_bundle):
    model, _ = tiny_bundle
    with pytest.raises(AssertionError, match="takes 4 frames"):
        model.encode_video(torch.zeros(1, 3, 3, 64, 64))
    with pytest.raises(AssertionError, match="64px"):
        model.encode_video(torch.zeros(1, 4, 3, 32, 32))


def test_config_must_match_architecture():
    with pytest.raises(ValueError, match="takes"):
        build_alt(preset("tiny").replace(image_size=128))
