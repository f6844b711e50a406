import pytest
import torch
import torch.nn.functional as F

from model import build_alt
from model.vit import region_forward


def test_at_initialization_alt_equals_clip_mean_pooling(tiny_config, tiny_frames):
    torch.manual_seed(0)
    config = tiny_config.replace(merge_r=0, prop_attn=False)
    model, _ = build_alt(config)
    model.eval()
    b, t = tiny_frames.shape[:2]
    with torch.no_grad():
        video = model.encode_video(tiny_frames).embedding
        frames = model.clip.encode_image(tiny_frames.flatten(0, 1)).reshape(b, t, -1)
    torch.testing.assert_close(video, F.normalize(frames.mean(1), dim=-1), rtol=0, atol=1e-5)


def test_adapter_starts_silent_and_contributes_once_trained(tiny_config, tiny_frames):
    torch.manual_seed(0)
    model, _ = build_alt(tiny_config.replace(alpha_init=0.7))
    model.eval()
    with torch.no_grad():
        silent = model.encode_video(tiny_frames).embedding
        pooled = model.encode_frames(tiny_frames).cls.reshape(2, 4, -1).mean(1)
        torch.testing.assert_close(silent, F.normalize(pooled, dim=-1))
        torch.nn.init.normal_(model.adapter.proj.weight, std=0.1)
        trained = model.encode_video(tiny_frames).embedding
    assert (silent - trained).abs().max().item() > 1e-4


def test_zero_alpha_is_refused(tiny_config):
    with pytest.raises(AssertionError, match="alpha_init"):
        tiny_config.replace(alpha_init=0.0)


def test_training_gradients_reach_adapter_alpha_and_backbone(tiny_config, tiny_frames):
    torch.manual_seed(0)
    model, _ = build_alt(tiny_config)
    model.train()
    labels = model.encode_labels(["waving", "jumping", "clapping"]).detach()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)

    def step():
        opt.zero_grad()
        out = model.encode_video(
            tiny_frames, gumbel=True, generator=torch.Generator().manual_seed(0)
        )
        F.cross_entropy(model.logits(out.embedding, labels), torch.tensor([0, 2])).backward()

    step()
    # The zero output layer learns from the first step, the backbone too ...
    assert model.adapter.proj.weight.grad.abs().sum() > 0
    assert model.clip.visual.conv1.weight.grad.abs().sum() > 0
    opt.step()
    step()
    # ... and once it is no longer zero, the gate and the rest of the adapter follow.
    assert model.alpha.grad.abs().item() > 0
    assert model.adapter.entity_mlp[0].weight.grad.abs().sum() > 0


def test_explanations_are_consistent(tiny_bundle, tiny_frames):
    model, corpus = tiny_bundle
    with torch.no_grad():
        out = model.encode_video(tiny_frames, track_source=True)
    assert out.entity_ids.shape == (2, min(model.config.top_k, len(corpus)))
    assert torch.all(out.region_entities < len(corpus))
    torch.testing.assert_close(out.region_sizes.sum((1, 2)), torch.full((2,), 4 * 64.0))
    # The strongest entity is the one covering most patches.
    for bi in range(2):
        area = torch.zeros(len(corpus)).index_add_(
            0, out.region_entities[bi].flatten(), out.region_sizes[bi].flatten()
        )
        assert out.entity_ids[bi, 0].item() == area.argmax().item()
        torch.testing.assert_close(out.entity_scores[bi, 0], area.max() / 256)


def test_labels_are_normalized_template_means(tiny_bundle):
    model, _ = tiny_bundle
    with torch.no_grad():
        labels = model.encode_labels(["waving", "kicking a ball"], templates=["a {}.", "b {}."])
        single = model.encode_strings(["a waving.", "b waving."])
    torch.testing.assert_close(labels.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(labels[0], F.normalize(single.mean(0), dim=-1))


def test_region_forward_matches_encode_video_cls_path(tiny_bundle, tiny_frames):
    model, _ = tiny_bundle
    with torch.no_grad():
        out = region_forward(model.clip.visual, tiny_frames.flatten(0, 1), model.plan)
        video = model.encode_video(tiny_frames).embedding
    pooled = F.normalize(out.cls.reshape(2, 4, -1).mean(1), dim=-1)
    torch.testing.assert_close(video, pooled)


def test_label_map_starts_as_identity_and_is_linear(tiny_config):
    torch.manual_seed(0)
    model, _ = build_alt(tiny_config.replace(label_proj=True))
    plain, _ = build_alt(tiny_config)
    plain.load_state_dict(
        {k: v for k, v in model.state_dict().items() if not k.startswith("label_proj")}
    )
    labels = ["waving", "kicking a ball"]
    with torch.no_grad():
        torch.testing.assert_close(model.encode_labels(labels), plain.encode_labels(labels))
        model.label_proj.weight.mul_(2).add_(0.1)
        feats = model.label_features(labels)
        # Applying the map per prompt and then averaging gives the same embeddings.
        per_prompt = [
            model.label_proj(
                model.encode_strings([t.format(label) for t in model.config.label_templates])
            )
            for label in labels
        ]
        via_prompts = F.normalize(torch.stack([p.mean(0) for p in per_prompt]), dim=-1)
        torch.testing.assert_close(model.project_labels(feats), via_prompts)
        assert (model.encode_labels(labels) - plain.encode_labels(labels)).abs().max() > 1e-3


def test_entities_that_no_region_aligned_to_are_hidden_from_the_queries(tiny_config):
    torch.manual_seed(0)
    model, _ = build_alt(tiny_config)
    torch.nn.init.normal_(model.adapter.proj.weight, std=0.1)
    b, t, r, k, d = 2, tiny_config.frames, 5, tiny_config.top_k, model.dim
    entities, regions, sizes = torch.randn(b, k, d), torch.randn(b, t, r, d), torch.ones(b, t, r)
    present = torch.zeros(b, k, dtype=torch.bool)
    present[:, :3] = True
    others = entities.clone()
    others[:, 3:] = torch.randn(b, k - 3, d)  # different filler in the empty slots
    with torch.no_grad():
        hidden = model.adapter(entities, regions, sizes, present=present)
        torch.testing.assert_close(hidden, model.adapter(others, regions, sizes, present=present))
        shown = model.adapter(others, regions, sizes)  # no mask: the filler speaks
    assert (hidden - shown).abs().max() > 1e-4
