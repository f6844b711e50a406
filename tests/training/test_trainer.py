"""The training loop: exact resume mid-epoch, mixed precision, accumulation, activation
checkpointing, validation with the best and last checkpoints, TensorBoard logs, and broken
videos skipped rather than fatal."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from model import build_alt
from training.data import Sample
from training.train import ALTVideo, TrainConfig, batch_loss
from training.trainer import train
from training.video_data import Augment, VideoDataset

from .test_train import LABELS, make_dataset


class Interrupt(Exception):
    pass


class Failing(VideoDataset):
    """Raises at its `after`-th item: a run killed mid-epoch."""

    def __init__(self, *args, after: int, **kw) -> None:
        super().__init__(*args, **kw)
        self.after, self.seen = after, 0

    def __getitem__(self, key):
        self.seen += 1
        if self.seen > self.after:
            raise Interrupt
        return super().__getitem__(key)


def weights(module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def config(tmp_path, **kw) -> TrainConfig:
    base = TrainConfig(epochs=2, batch_size=2, lr=3e-3, workers=0, progress=False,
                       state_dir=tmp_path / "state", save_every_steps=1)  # fmt: skip
    return replace(base, **kw)


def fresh(tiny_config):
    torch.manual_seed(0)
    alt, _ = build_alt(tiny_config.replace(alpha_init=0.1))
    with torch.no_grad():
        features = alt.label_features(LABELS)
    return ALTVideo(alt), features


def test_a_run_killed_mid_epoch_resumes_exactly(tmp_path, tiny_config):
    samples = make_dataset(tmp_path, n=3)  # 6 clips: 3 batches per epoch
    flip = Augment(flip=True)
    whole, features = fresh(tiny_config)
    ds = VideoDataset(samples, LABELS, 4, 64, train=True, augment=flip)
    done = train(whole, ds, features, config(tmp_path / "a"))

    killed, features = fresh(tiny_config)
    failing = Failing(samples, LABELS, 4, 64, train=True, augment=flip, after=8)  # epoch 2
    with pytest.raises(Interrupt):
        train(killed, failing, features, config(tmp_path / "b"))
    state = torch.load(tmp_path / "b" / "state" / "train_state.pt", weights_only=False)
    assert (state["epoch"], state["batch"]) == (1, 1)  # mid-epoch, after its first step
    resumed, features = fresh(tiny_config)
    again = train(resumed, ds, features, config(tmp_path / "b"))
    assert torch.equal(weights(resumed), weights(whole))
    assert again.history == done.history and again.steps == done.steps == 6


def test_max_steps_stops_resumably(tmp_path, tiny_config):
    samples = make_dataset(tmp_path, n=3)  # 3 batches per epoch, 2 epochs
    ds = VideoDataset(samples, LABELS, 4, 64, train=True)
    whole, features = fresh(tiny_config)
    done = train(whole, ds, features, config(tmp_path / "a", save_every_steps=0))
    assert not done.stopped_early and done.steps == 6
    cut, features = fresh(tiny_config)
    short = train(cut, ds, features, config(tmp_path / "b", save_every_steps=0, max_steps=4))
    assert short.stopped_early and short.steps == 4 and len(short.history) == 2
    assert 0 < short.first_batch_s <= short.first_step_s
    state = torch.load(tmp_path / "b" / "state" / "train_state.pt", weights_only=False)
    assert (state["epoch"], state["batch"]) == (1, 1)
    resumed, features = fresh(tiny_config)
    rest = train(resumed, ds, features, config(tmp_path / "b", save_every_steps=0))
    assert torch.equal(weights(resumed), weights(whole))
    assert rest.history == done.history and rest.steps == 6


def test_mixed_precision_accumulation_and_checkpointing(tmp_path, tiny_config):
    samples = make_dataset(tmp_path, n=2)
    ds = VideoDataset(samples, LABELS, 4, 64, train=True)
    module, features = fresh(tiny_config)
    report = train(module, ds, features,
                   config(tmp_path / "bf16", epochs=3, precision="bf16", accum_steps=2))  # fmt: skip
    assert report.steps == 3 * 1  # 2 batches per epoch, one optimizer step per 2
    assert report.history[-1] < report.history[0]
    with pytest.raises(ValueError, match="fp16 training needs a GPU"):
        train(module, ds, features, config(tmp_path / "fp16", precision="fp16"))
    # Activation checkpointing recomputes the blocks: the same gradients, less memory.
    alt = module.alt
    x = alt.normalize(torch.stack([ds[i][0][0] for i in range(4)]))
    target = torch.tensor([ds.targets[i] for i in range(4)])
    grads = []
    for recompute in (False, True):
        alt.grad_checkpointing = recompute
        alt.zero_grad(set_to_none=True)
        torch.manual_seed(5)
        out = module.dense_embedding(x, gumbel=True)
        loss = batch_loss(alt, out, target, features, None, TrainConfig())
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in alt.clip.visual.parameters()
                                if p.grad is not None]))  # fmt: skip
    alt.grad_checkpointing = False
    torch.testing.assert_close(grads[0], grads[1])


def test_validation_keeps_the_best_and_last_and_logs_to_tensorboard(tmp_path, tiny_config):
    samples = make_dataset(tmp_path, n=2)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 30)
    ds = VideoDataset([*samples, Sample(broken, LABELS[0])], LABELS, 4, 64, train=True)
    val = VideoDataset(samples, LABELS, 4, 64, train=False, views=(2, 1))
    module, features = fresh(tiny_config)
    saved = []
    report = train(module, ds, features, config(tmp_path, epochs=3, log_dir=tmp_path / "tb"),
                   val=val, save=saved.append)  # fmt: skip
    assert [v["epoch"] for v in report.validation] == [1, 2, 3]
    assert all(v["n"] == 4 and v["skipped"] == 0 for v in report.validation)
    assert saved.count("last") == 3 and 1 <= saved.count("best") <= 3
    best = max(v["top1"] for v in report.validation)
    assert report.best["top1"] == best
    # The broken video was skipped each epoch, named with its reason; the run went on.
    assert list(report.skipped) == [str(broken)] and len(report.history) == 3

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/clips_per_s", "train/data_wait_share",
            "val/top1", "val/top5"} <= tags  # fmt: skip
    assert [e.value for e in events.Scalars("val/top1")] == [v["top1"] for v in report.validation]
