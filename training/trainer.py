"""The training loop: streaming data, mixed precision, gradient accumulation, DDP through
`torchrun`, exact resume mid-epoch, validation with the best and the last checkpoint kept,
TensorBoard logs and a progress line.

One loop for every run: the generated world's default build, `alt train` on a user's CSV,
a recipe's Kinetics-400 run. What it trains and how is `TrainConfig`; what it reads is a
`VideoDataset` (`video_data.py`).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from model.alt import ALT

from .evaluate import evaluate_views
from .schedule import load_state, save_state, warmup_cosine
from .train import (
    TrainConfig,
    _Forward,
    _optimizer,
    batch_loss,
    class_means,
    fit_label_map,
    refit_label_map,
    split_params,
    whiten_label_map,
)
from .video_data import EpochSampler, VideoDataset, collate, loader_workers

log = logging.getLogger(__name__)


@dataclass
class TrainReport:
    history: list[float] = field(default_factory=list)  # mean loss per epoch
    validation: list[dict] = field(default_factory=list)  # per validation: epoch, top1, top5
    best: dict | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # path -> why it did not decode
    steps: int = 0
    first_batch_s: float | None = None  # from the call to the first batch in hand
    first_step_s: float | None = None  # ... to the first optimizer step done
    stopped_early: bool = False  # max_steps reached before the last epoch ended


def _rank_world() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    if world > 1:
        return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))
    return 0, 1, 0


def _device(cfg: TrainConfig, local_rank: int) -> torch.device:
    if cfg.device.startswith("cuda"):
        index = local_rank if cfg.device == "cuda" else int(cfg.device.split(":")[1])
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device("cpu")


def _autocast(cfg: TrainConfig, device: torch.device):
    if cfg.precision == "fp32":
        return torch.autocast(device.type, enabled=False)
    if cfg.precision == "fp16" and device.type != "cuda":
        raise ValueError("fp16 training needs a GPU (loss scaling); use bf16 on the CPU")
    dtype = torch.bfloat16 if cfg.precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def train(
    module: nn.Module,
    dataset: VideoDataset,
    label_features: Tensor,
    cfg: TrainConfig,
    label_entities: Tensor | None = None,
    val: VideoDataset | None = None,
    save: Callable[[str], None] | None = None,
) -> TrainReport:
    """Train `module` in place. `save(kind)` writes a checkpoint: "last" after each
    validation, "best" when top-1 improves (rank 0 only)."""
    alt: ALT = module.alt
    dense = cfg.region_weight > 0
    if dense and dataset.masks is None:
        raise ValueError("region_weight > 0 needs a dataset with entity masks")
    t_start = time.perf_counter()
    rank, world, local_rank = _rank_world()
    device = _device(cfg, local_rank)
    torch.manual_seed(cfg.seed)
    alt.grad_checkpointing = cfg.grad_checkpointing
    backbone, head = split_params(module, cfg.train_logit_scale)
    module.to(device)
    label_features = label_features.detach().to(device)

    workers = loader_workers(cfg.workers)
    sampler = EpochSampler(len(dataset), cfg.seed, shuffle=True, rank=rank, world=world)
    loader = DataLoader(
        dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=workers,
        collate_fn=collate, persistent_workers=workers > 0,
        prefetch_factor=cfg.prefetch if workers else None, pin_memory=device.type == "cuda",
        drop_last=len(sampler) > cfg.batch_size,
    )  # fmt: skip
    batches = len(loader)
    updates_per_epoch = math.ceil(batches / cfg.accum_steps)
    runner: nn.Module = _Forward(module)
    if world > 1:
        runner = DistributedDataParallel(
            runner, device_ids=[device.index] if device.type == "cuda" else None
        )
    opt = _optimizer(backbone, head, cfg)
    total = cfg.epochs * updates_per_epoch
    warmup = round(cfg.warmup_epochs * updates_per_epoch) if cfg.warmup_epochs is not None else None
    sched = warmup_cosine(opt, total, warmup)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.precision == "fp16")
    state_path = Path(cfg.state_dir) / "train_state.pt" if cfg.state_dir else None
    state = load_state(state_path, module, opt, sched)
    report = TrainReport()
    if state is None and alt.label_proj is not None and cfg.whiten_labels:
        whiten_label_map(alt, label_features.cpu())  # a fresh start: place the labels
        if cfg.label_prototypes:
            means = class_means(module.cpu(), dataset, len(label_features))
            fit_label_map(alt, label_features.cpu(), means)
            module.to(device)
    epoch, batch0 = 0, 0
    map_done = False
    resumed_rng = None
    partial: list[float] = []
    if state is not None:
        epoch, batch0 = state["epoch"], state.get("batch", 0)
        resumed_rng = state.get("rng")
        partial = state.get("epoch_losses", []) if batch0 else []
        report.history = state["history"]
        report.validation = state.get("validation", [])
        report.best = state.get("best")
        report.skipped = state.get("skipped", {})
        report.steps = state.get("steps", 0)
        map_done = state.get("label_map_done", False)
        if "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        if rank == 0:
            log.warning("resuming at epoch %d, batch %d", epoch + 1, batch0)

    def checkpoint_state(epoch_: int, batch_: int, done: bool = False, losses_=()) -> None:
        # The RNG too (the alignment's Gumbel noise draws from it): a resumed run goes on
        # exactly as the interrupted one would have.
        if rank == 0 and state_path is not None:
            save_state(state_path, module, opt, sched, epoch=epoch_, batch=batch_,
                       history=report.history, validation=report.validation, best=report.best,
                       skipped=report.skipped, steps=report.steps, label_map_done=done,
                       scaler=scaler.state_dict(), rng=torch.get_rng_state(),
                       epoch_losses=list(losses_))  # fmt: skip

    writer = _writer(cfg, rank)
    module.train()
    while epoch < cfg.epochs:
        sampler.set(epoch, batch0 * cfg.batch_size)
        batches_iter = iter(loader)  # (workers draw their seeds from the RNG here)
        if resumed_rng is not None:
            torch.set_rng_state(resumed_rng)
            resumed_rng = None
        losses: list[float] = partial
        partial = []
        clips = 0
        waited = 0.0
        t_epoch = time.perf_counter()
        bar = tqdm(total=batches, initial=batch0, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   unit="batch", disable=rank != 0 or not cfg.progress, leave=False,
                   dynamic_ncols=True)  # fmt: skip
        batch_index = batch0
        t_wait = time.perf_counter()
        for items, skipped in batches_iter:
            waited += time.perf_counter() - t_wait
            if report.first_batch_s is None:
                report.first_batch_s = time.perf_counter() - t_start
            for s in skipped:
                report.skipped[s.path] = s.reason
            batch_index += 1
            if items:
                frames, target, *rest = items
                x = alt.normalize(frames[:, 0].to(device, non_blocking=True))
                masks = rest[0].to(device) if dense else None
                with _autocast(cfg, device):
                    out = runner(x, True, dense)
                    loss = batch_loss(alt, out, target.to(device), label_features, masks, cfg)
                scaler.scale(loss / cfg.accum_steps).backward()
                losses.append(loss.item())
                clips += len(target)
            last = batch_index == batches
            if batch_index % cfg.accum_steps == 0 or last:
                if cfg.clip_grad_norm:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(
                        [p for g in opt.param_groups for p in g["params"]], cfg.clip_grad_norm
                    )
                scaler.step(opt)
                scaler.update()
                opt.zero_grad(set_to_none=True)
                sched.step()
                report.steps += 1
                if report.first_step_s is None:
                    report.first_step_s = time.perf_counter() - t_start
                if cfg.max_steps and report.steps >= cfg.max_steps:
                    report.stopped_early = not (last and epoch + 1 == cfg.epochs)
                if cfg.save_every_steps and report.steps % cfg.save_every_steps == 0 and not last:
                    checkpoint_state(epoch, batch_index, losses_=losses)
            elapsed = time.perf_counter() - t_epoch
            rate = clips * world / max(elapsed, 1e-9)
            wait_share = waited / max(elapsed, 1e-9)
            if losses:
                bar.set_postfix(loss=f"{losses[-1]:.3f}", clips_s=f"{rate:.1f}",
                                data_wait=f"{100 * wait_share:.0f}%")  # fmt: skip
                if writer is not None:
                    step = epoch * batches + batch_index
                    writer.add_scalar("train/loss", losses[-1], step)
                    writer.add_scalar("train/lr", sched.get_last_lr()[-1], step)
                    writer.add_scalar("train/clips_per_s", rate, step)
                    writer.add_scalar("train/data_wait_share", wait_share, step)
            bar.update()
            if report.stopped_early and not last:
                break
            t_wait = time.perf_counter()
        bar.close()
        mean = sum(losses) / max(1, len(losses))
        if report.stopped_early and batch_index < batches:
            checkpoint_state(epoch, batch_index, losses_=losses)  # resumable where it stopped
            report.history.append(mean)
            break
        report.history.append(mean)
        epoch, batch0 = epoch + 1, 0
        if rank == 0:
            rate = clips * world / max(time.perf_counter() - t_epoch, 1e-9)
            log.warning("epoch %d/%d: loss %.4f, %.1f clips/s, data wait %.0f%%", epoch,
                        cfg.epochs, mean, rate, 100 * waited / max(time.perf_counter() - t_epoch, 1e-9))  # fmt: skip
        if (
            val is not None
            and cfg.eval_every
            and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs)
        ):
            module.eval()
            metrics = evaluate_views(module, val, label_features.cpu(), workers=workers,
                                     device=device)  # fmt: skip
            module.train()
            metrics["epoch"] = epoch
            report.validation.append(metrics)
            if writer is not None:
                writer.add_scalar("val/top1", metrics["top1"], epoch)
                writer.add_scalar("val/top5", metrics["top5"], epoch)
            if rank == 0 and save is not None:
                save("last")
                if report.best is None or metrics["top1"] > report.best["top1"]:
                    report.best = metrics
                    save("best")
        checkpoint_state(epoch, 0)
        if report.stopped_early:
            break
    if report.stopped_early and rank == 0:
        log.warning("stopped after %d optimizer steps (max_steps)", report.steps)
    if cfg.label_map_steps > 0 and not map_done and not report.stopped_early:
        # Every rank runs the same stage on the same clips, so the copies stay equal.
        module.cpu()
        refit_label_map(module, dataset, label_features.cpu(), cfg, label_entities)
        module.to(device)
        checkpoint_state(cfg.epochs, 0, done=True)
    if writer is not None:
        writer.close()
    module.cpu().eval()
    alt.grad_checkpointing = False
    return report


def _writer(cfg: TrainConfig, rank: int):
    if rank != 0 or cfg.log_dir is None:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # pragma: no cover - depends on the install
        log.warning("TensorBoard is not installed (pip install tensorboard): no logs written")
        return None
    return SummaryWriter(log_dir=str(cfg.log_dir))
