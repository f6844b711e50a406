import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from model import build_alt
from tests.videos import moving_square_video
from training.baseline import TemporalBaseline
from training.data import Sample
from training.train import (
    ALTVideo,
    TrainConfig,
    class_means,
    fit_label_map,
    label_entity_loss,
    region_entity_loss,
    split_params,
    whiten_label_map,
)
from training.trainer import train
from training.video_data import Augment, VideoDataset

ROOT = Path(__file__).resolve().parents[2]
LABELS = ["moving right", "standing still"]


def dataset(samples, train=True, **kw) -> VideoDataset:
    augment = Augment(flip=True) if train else Augment()
    return VideoDataset(samples, LABELS, 4, 64, train=train, augment=augment, **kw)


def fit(module, ds, features, cfg, *args):
    """The loop in this process (no decode workers, no progress bar): seconds, not minutes."""
    return train(module, ds, features, replace(cfg, workers=0, progress=False), *args).history


def make_dataset(tmp_path, n=4):
    samples = []
    for i in range(n):
        samples.append(
            Sample(moving_square_video(tmp_path / f"r{i}.mp4", frames=20, seed=i), LABELS[0])
        )
        still = tmp_path / f"s{i}.mp4"
        moving_square_video(still, frames=1, seed=10 + i)  # one frame: nothing moves
        samples.append(Sample(still, LABELS[1]))
    return samples


def test_split_params_freezes_text_and_trains_image_tower_and_head(tiny_config):
    alt, _ = build_alt(tiny_config)
    backbone, head = split_params(ALTVideo(alt))
    assert not any(p.requires_grad for p in alt.clip.transformer.parameters())
    assert not alt.clip.token_embedding.weight.requires_grad
    assert all(p.requires_grad for p in alt.clip.visual.parameters())
    assert alt.alpha.requires_grad
    expected = [*alt.adapter.parameters(), alt.alpha, alt.clip.logit_scale]
    assert {id(p) for p in head} == {id(p) for p in expected}
    base = TemporalBaseline(build_alt(tiny_config)[0])
    _, base_head = split_params(base)
    assert not any(p.requires_grad for p in base.alt.adapter.parameters())
    expected = [base.frame_embed, base.gate, *base.temporal.parameters(), *base.out.parameters()]
    assert {id(p) for p in base_head} == {id(p) for p in [*expected, base.alt.clip.logit_scale]}
    assert len(backbone) > 0
    with_map = build_alt(tiny_config.replace(label_proj=True))[0]
    _, map_head = split_params(ALTVideo(with_map), logit_scale=False)
    assert any(p is with_map.label_proj.weight for p in map_head)
    assert not with_map.clip.logit_scale.requires_grad


@pytest.mark.parametrize("kind", ["alt", "baseline"])
def test_fit_lowers_the_loss_and_resumes(tmp_path, tiny_config, kind):
    torch.manual_seed(0)
    alt, _ = build_alt(tiny_config.replace(alpha_init=0.1))
    module = ALTVideo(alt) if kind == "alt" else TemporalBaseline(alt)
    ds = dataset(make_dataset(tmp_path))
    with torch.no_grad():
        features = alt.label_features(LABELS)
    cfg = TrainConfig(epochs=6, batch_size=4, lr=3e-3, state_dir=tmp_path / "state")
    history = fit(module, ds, features, cfg)
    assert len(history) == 6 and history[-1] < history[0]
    assert not module.training
    # A longer run picks up where the saved state ended.
    more = fit(
        module,
        ds,
        features,
        TrainConfig(epochs=8, batch_size=4, lr=3e-3, state_dir=tmp_path / "state"),
    )
    assert more[:6] == history and len(more) == 8


def test_label_map_starts_at_the_class_means(tmp_path, tiny_config):
    torch.manual_seed(0)
    alt, _ = build_alt(tiny_config.replace(label_proj=True))
    module = ALTVideo(alt)
    ds = dataset(make_dataset(tmp_path), train=False)
    with torch.no_grad():
        features = alt.label_features(LABELS)
        whiten_label_map(alt, features)
        means = class_means(module, ds, len(LABELS))
        before = (alt.project_labels(features) * means).sum(-1)
        fit_label_map(alt, features, means)
        after = (alt.project_labels(features) * means).sum(-1)
    assert means.shape == (2, alt.dim) and torch.allclose(means.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(after, torch.ones(2), atol=1e-4, rtol=0)
    assert (before < 0.99).all()


def test_region_term_targets_the_entities_under_a_merged_regions_patches(tiny_config):
    torch.manual_seed(0)
    alt, _ = build_alt(tiny_config)
    gh, gw = alt.grid_size
    masks = torch.zeros(1, 1, 2 * gh, 2 * gw, dtype=torch.uint8)
    masks[..., :2, :2] = 1  # patch 0: entity 1 (corpus row 0)
    masks[..., :2, 2:4] = 3  # patch 1: entity 3 (corpus row 2)
    sources = torch.zeros(1, 1, 2, gh * gw)
    sources[0, 0, 0, :2] = 1  # region 0 holds patches 0 and 1
    sources[0, 0, 1, 2:] = 1  # region 1 holds only empty patches: it does not count
    regions = torch.randn(1, 1, 2, alt.dim)
    got = region_entity_loss(alt, regions, sources, masks)
    logits = F.normalize(regions[0, 0, :1], dim=-1) @ alt.entities.t() / alt.config.tau
    target = torch.zeros(1, alt.entities.shape[0])
    target[0, 0] = target[0, 2] = 0.5
    torch.testing.assert_close(got, F.cross_entropy(logits, target))


@pytest.mark.parametrize("kind", ["alt", "baseline"])
def test_region_term_aligns_regions_with_the_masked_entity(tmp_path, tiny_config, kind):
    torch.manual_seed(0)
    alt, _ = build_alt(tiny_config.replace(alpha_init=0.1))
    module = ALTVideo(alt) if kind == "alt" else TemporalBaseline(alt)
    samples = make_dataset(tmp_path)
    plain = dataset(samples)
    gh, _ = alt.grid_size
    # Every pixel of every frame shows entity 2 (corpus row 1).
    masks = {
        s.path: torch.full((20, 2 * gh, 2 * gh), 2, dtype=torch.uint8).numpy() for s in samples
    }
    ds = dataset(samples, masks=masks)
    frames, _, clip_masks = ds[0]
    assert clip_masks.shape == (4, 2 * gh, 2 * gh) and frames.shape[:2] == (1, 4)
    with torch.no_grad():
        features = alt.label_features(LABELS)

    def share_on_entity() -> float:
        with torch.no_grad():
            x = alt.normalize(torch.stack([plain[i][0][0] for i in range(len(plain))]))
            out = alt.encode_video(x)
        return (out.region_entities == 1).float().mean().item()

    before = share_on_entity()
    cfg = TrainConfig(epochs=4, batch_size=4, lr=3e-3, backbone_lr_scale=1.0, region_weight=1.0)
    with pytest.raises(ValueError, match="entity masks"):
        fit(module, plain, features, cfg)
    fit(module, ds, features, cfg)
    after = share_on_entity()
    assert before < 0.5 and after > 0.9, (before, after)


def test_label_entity_term_is_cross_entropy_over_mapped_entities(tiny_config):
    torch.manual_seed(0)
    alt, _ = build_alt(tiny_config.replace(label_proj=True))
    with torch.no_grad():
        alt.label_proj.weight.add_(0.1 * torch.randn_like(alt.label_proj.weight))
    video = F.normalize(torch.randn(3, alt.dim), dim=-1)
    named = torch.zeros(3, alt.entities.shape[0])
    named[0, 1] = 1.0
    named[2, 0] = named[2, 3] = 0.5  # clip 1's label names no entity: it is left out
    logits = alt.logits(video, F.normalize(alt.label_proj(alt.entities), dim=-1))
    expected = (F.cross_entropy(logits[:1], named[:1]) + F.cross_entropy(logits[2:], named[2:])) / 2
    torch.testing.assert_close(label_entity_loss(alt, video, named), expected)
    other = video.clone()
    other[1] = F.normalize(torch.randn(alt.dim), dim=-1)
    torch.testing.assert_close(label_entity_loss(alt, other, named), expected)


def test_label_map_stage_anchors_the_entities_and_leaves_the_video_side(tmp_path, tiny_config):
    torch.manual_seed(0)
    alt, _ = build_alt(tiny_config.replace(alpha_init=0.1, label_proj=True))
    module = ALTVideo(alt)
    ds = dataset(make_dataset(tmp_path), train=False)
    with torch.no_grad():
        features = alt.label_features(LABELS)
    named = torch.zeros(len(LABELS), alt.entities.shape[0])
    named[0, 3] = named[1, 7] = 1.0
    targets = torch.tensor(ds.targets)

    def videos():
        with torch.no_grad():
            clips = torch.stack([ds[i][0][0] for i in range(8)])
            return module.video_embedding(alt.normalize(clips))

    def share_scoring_the_named_entity(video) -> float:
        with torch.no_grad():
            scores = video @ alt.project_labels(alt.entities).t()
        return (scores.argmax(-1) == named[targets].argmax(-1)).float().mean().item()

    before = videos()
    cfg = TrainConfig(epochs=0, lr=3e-2, label_map_steps=100, label_map_entity_weight=1.0,
                      state_dir=tmp_path / "state")  # fmt: skip
    with pytest.raises(ValueError, match="needs label_entities"):
        fit(module, ds, features, cfg)
    start = share_scoring_the_named_entity(before)
    fit(module, ds, features, cfg, named)
    after = videos()
    torch.testing.assert_close(after, before)  # only the map (and temperature) moved
    assert start < 0.5 and share_scoring_the_named_entity(after) == 1.0
    with torch.no_grad():
        top1 = (alt.logits(after, alt.project_labels(features)).argmax(-1) == targets).float()
    assert top1.mean() == 1.0
    # A finished stage is not run again when training resumes from its state.
    weight = alt.label_proj.weight.detach().clone()
    fit(module, ds, features, replace(cfg, label_map_steps=200), named)
    torch.testing.assert_close(alt.label_proj.weight, weight)
    plain = ALTVideo(build_alt(tiny_config)[0])
    with pytest.raises(ValueError, match="label map"):
        fit(
            plain, ds, features, TrainConfig(epochs=0, label_map_steps=5, label_map_entity_weight=0)
        )


DDP_SCRIPT = """
import sys, torch, torch.distributed as dist
from pathlib import Path
sys.path.insert(0, {root!r})
from model import build_alt, preset
from training.data import Sample
from training.train import ALTVideo, TrainConfig
from training.trainer import train
from training.video_data import VideoDataset
torch.manual_seed(0)
alt, _ = build_alt(preset("tiny").replace(alpha_init=0.1))
samples = [Sample(Path(p), l) for p, l in {samples!r}]
ds = VideoDataset(samples, {labels!r}, 4, 64, train=True)
with torch.no_grad():
    emb = alt.label_features({labels!r})
hist = train(ALTVideo(alt), ds, emb, TrainConfig(epochs=2, batch_size=2, workers=1)).history
flat = torch.cat([p.detach().flatten() for p in alt.parameters()])
gathered = [torch.zeros_like(flat) for _ in range(2)]
dist.all_gather(gathered, flat)
# One file per rank: the two processes share stdout and their lines can interleave.
result = "SYNCED " + str(bool(torch.equal(gathered[0], gathered[1]))) + " EPOCHS " + str(len(hist))
Path({out!r}, f"rank{{dist.get_rank()}}.txt").write_text(result)
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_torchrun_ddp_on_two_cpu_processes(tmp_path):
    samples = [(str(s.path), s.label) for s in make_dataset(tmp_path, n=2)]
    script = tmp_path / "ddp.py"
    script.write_text(
        DDP_SCRIPT.format(root=str(ROOT), samples=samples, labels=LABELS, out=str(tmp_path))
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = [(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)]
    assert results == ["SYNCED True EPOCHS 2"] * 2, proc.stdout + proc.stderr


@pytest.mark.slow
def test_torchrun_ddp_across_two_nodes_as_documented(tmp_path):
    """The multi-machine launch of docs/training.md (`--nnodes --node-rank --rdzv-endpoint`),
    its two nodes on this machine's loopback."""
    from tests.server.conftest import free_port

    samples = [(str(s.path), s.label) for s in make_dataset(tmp_path, n=2)]
    script = tmp_path / "ddp.py"
    script.write_text(
        DDP_SCRIPT.format(root=str(ROOT), samples=samples, labels=LABELS, out=str(tmp_path))
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    endpoint = f"127.0.0.1:{free_port()}"
    nodes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                "2",
                "--node-rank",
                str(rank),
                "--nproc-per-node",
                "1",
                "--rdzv-endpoint",
                endpoint,
                str(script),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )  # fmt: skip
        for rank in (0, 1)
    ]
    logs = [node.communicate(timeout=300)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(logs)
    results = [(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)]
    assert results == ["SYNCED True EPOCHS 2"] * 2, "\n".join(logs)
