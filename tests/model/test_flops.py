import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from model import preset
from model.alt import ALT
from model.clip import create_clip
from model.config import PRESETS
from model.flops import PAPER_B16_GFLOPS, count, count_params


def test_analytic_count_equals_torch_flop_counter(tiny_bundle, tiny_frames):
    model, corpus = tiny_bundle
    # The math backend lowers attention to matmuls the flop counter sees.
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model.encode_video(tiny_frames[:1])
    assert counter.get_total_flops() // 2 == count(model.config, len(corpus)).per_view


def test_b16_cost_matches_the_paper():
    cost = count(preset("B/16"))
    assert cost.tokens[0] == 197 and cost.tokens[-1] == 101
    assert abs(cost.per_clip / 1e9 - PAPER_B16_GFLOPS) <= 0.1 * PAPER_B16_GFLOPS
    unmerged = count(preset("B/16").replace(merge_r=0))
    assert unmerged.per_clip > 1.3 * cost.per_clip


def test_param_counts_match_built_model(tiny_bundle):
    model, _ = tiny_bundle
    params = count_params(model.config)
    assert params.total == sum(p.numel() for p in model.parameters())
    assert params.visual == sum(p.numel() for p in model.clip.visual.parameters())


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_param_counts_match_every_preset_built_on_the_meta_device(name):
    """The analytic counts (no torch needed) against the modules themselves."""
    config = PRESETS[name]
    with torch.device("meta"):
        clip = create_clip(config.clip_arch, device="meta")
        alt = ALT(config, clip, torch.zeros(4, clip.visual.output_dim, device="meta"))
    params = count_params(config)
    assert params.visual == sum(p.numel() for p in clip.visual.parameters())
    assert params.text == sum(p.numel() for p in clip.parameters()) - params.visual
    assert params.total == sum(p.numel() for p in alt.parameters())
