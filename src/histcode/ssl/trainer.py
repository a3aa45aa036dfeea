"""The pretraining loop: AMP (bf16) + channels_last, DDP, checkpoint/resume, progress and throughput.

``fit`` is deterministic given the seed: tile sampling is a function of (seed, epoch), augmentation and
shuffle-BN generators of (seed, step), so a run resumed from an epoch checkpoint continues bit-for-bit.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from histcode import distributed as D
from histcode.config import to_dict
from histcode.cpus import available_cpus, loader_workers, torch_threads
from histcode.errors import HistcodeError
from histcode.precision import resolve_bf16
from histcode.seeding import seed_everything
from histcode.slides.tile_dataset import TileCollate, loader_worker_init, normalize_on_device, normalize_uint8
from histcode.ssl.augment import AugmentConfig, HEAugment
from histcode.ssl.backbone import create_encoder, relu_out_of_place
from histcode.ssl.checkpoint import check_compatible, load_checkpoint, save_checkpoint, set_rng_state
from histcode.ssl.config import (
    METRIC_EPOCHS_DONE,
    METRIC_FINAL_LOSS,
    METRIC_STEPS,
    METRIC_TILES_PER_S,
    PretrainConfig,
)
from histcode.ssl.data import EpochBatchSampler
from histcode.ssl.methods import AdCoMethod, SimCLRMethod, build_method
from histcode.ssl.views import (
    BANK_KEY,
    VIEWS_KEY,
    StepBatchSampler,
    StepItems,
    Views,
    ViewsCollate,
    bank_step,
    make_views,
    step_generator,
)

log = logging.getLogger(__name__)

LogFn = Callable[[dict[str, float], int], None]


@dataclass
class FitResult:
    encoder: nn.Module
    method: AdCoMethod | SimCLRMethod
    history: list[dict[str, float]] = field(default_factory=list)  # one row per step: step, epoch, loss
    metrics: dict[str, float] = field(default_factory=dict)


def lr_factor(step: int, *, total: int, warmup: int) -> float:
    """Linear warmup then cosine decay to 0 (per step)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _broadcast(module: nn.Module, *, params: bool = True) -> None:
    if D.is_distributed():
        for t in (list(module.parameters()) if params else []) + list(module.buffers()):
            torch.distributed.broadcast(t.data, src=0)


def _batch_images(batch: tuple[Any, ...]) -> tuple[torch.Tensor, int]:
    """A ``TileCollate`` or ``ViewsCollate`` batch → (uint8 (B, 3, H, W), number of failed reads; those are white
    tiles)."""
    tiles, errors = batch[0], batch[1]
    return tiles, sum(1 for e in errors if e)


def fit(cfg: PretrainConfig, dataset: Dataset[Any], n_tiles: Sequence[int], *, seed: int,
        checkpoint: str | Path | None = None, resume: bool | str = False,
        normalize: Callable[[torch.Tensor], torch.Tensor] | None = None, on_log: LogFn | None = None,
        stop_after_epochs: int | None = None, dist_info: D.DistInfo | None = None, data_key: str = "") -> FitResult:
    """Train ``cfg.method`` on tiles of ``dataset`` (items: uint8 (3, H, W) or (tile, error)) grouped by slide.

    ``normalize`` maps (B, 3, H, W) float [0, 1] → same (stain normalisation); it runs in the loader workers
    (``TileCollate``) before augmentation.
    Checkpoints after every epoch (rank 0); with ``resume`` continues from ``checkpoint`` if it exists
    (``"auto"``: only when it was written with the same config, else starts over).
    ``stop_after_epochs`` ends this call early (time-boxed jobs); a later ``resume`` carries on.
    ``data_key`` identifies the training data (default: the per-slide tile counts); ``"auto"`` resumes only a
    checkpoint of the same data.
    """
    data_key = data_key or "tiles:" + ",".join(str(int(n)) for n in n_tiles)
    info = dist_info or D.init_distributed("auto")
    dev = info.device
    torch.set_num_threads(torch_threads(cfg.threads, "pretrain"))
    seed_everything(seed)  # same on every rank → identical initial weights
    method = build_method(create_encoder(cfg.backbone, pretrained_weights=cfg.pretrained_weights), cfg).to(dev)
    relu_out_of_place(method)  # the same gradients, faster in bf16 on a CPU
    if cfg.channels_last:
        method = method.to(memory_format=torch.channels_last)
    _broadcast(method)
    opt = torch.optim.SGD(method.net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sampler = EpochBatchSampler(n_tiles, fraction=cfg.tiles_per_slide, max_per_slide=cfg.max_tiles_per_slide,
                                seed=seed, batch_size=cfg.batch_size, rank=info.rank, world_size=info.world_size)
    steps_per_epoch = len(sampler)
    total = steps_per_epoch * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total=total, warmup=cfg.warmup_epochs * steps_per_epoch))
    start_epoch, step, history = 0, 0, []
    prior_seconds, prior_tiles = 0.0, 0  # training time and tiles of the calls before a resume
    ckpt_path = Path(checkpoint) if checkpoint else None
    state = load_checkpoint(ckpt_path) if resume and ckpt_path is not None and ckpt_path.exists() else None
    if state is not None and resume == "auto":  # the DVC stage: continue the same run, restart a changed one
        try:
            check_compatible(ckpt_path, state["config"], to_dict(cfg))
            if state.get("data_key", data_key) != data_key:
                raise ValueError(f"{ckpt_path}: checkpoint was trained on other data (tiles or stain reference)")
        except ValueError as exc:
            log.warning("not resuming, starting at epoch 1: %s", exc)
            state = None
    if state is not None:
        check_compatible(ckpt_path, state["config"], to_dict(cfg))
        method.load_state_dict(state["method"])
        method.load_optimizer_state(state["method_optim"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start_epoch, step, history = state["epoch"], state["step"], state["history"]
        prior_seconds, prior_tiles = float(state.get("train_seconds", 0.0)), int(state.get("train_tiles", 0))
        set_rng_state(state["rng"])
        log.info("resumed %s at epoch %d step %d", ckpt_path, start_epoch, step)
    start_step = step
    net: nn.Module = method.net
    if D.is_distributed():  # any process group, a one-rank NCCL group included (benchmarks/bench_gpu.py)
        net = nn.parallel.DistributedDataParallel(net, device_ids=[info.local_rank] if dev.type == "cuda" else None)
    stain_on_device = normalize_on_device(dev, normalize)  # workers only read and resize then
    workers = loader_workers(cfg.workers, "pretrain")
    augment = HEAugment(AugmentConfig(out_px=cfg.input_px, hed_sigma=cfg.hed_sigma,
                                      stain_vector_sigma=cfg.stain_vector_sigma, p_jpeg=cfg.p_jpeg,
                                      jpeg_quality=cfg.jpeg_quality))
    # on a CPU the loader workers make the views (histcode.ssl.views); an accelerator makes them after the transfer
    step_batches = StepBatchSampler(sampler) if dev.type == "cpu" else None
    loader = DataLoader(StepItems(dataset) if step_batches else dataset, batch_sampler=step_batches or sampler,
                        num_workers=workers,
                        collate_fn=ViewsCollate(normalize, augment, seed=seed, rank=info.rank) if step_batches
                        else TileCollate(None if stain_on_device else normalize),
                        worker_init_fn=loader_worker_init(dev) if workers else None, persistent_workers=workers > 0,
                        pin_memory=dev.type == "cuda")

    bf16 = resolve_bf16(cfg.bf16, dev.type)

    def amp() -> contextlib.AbstractContextManager[Any]:
        return torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16)

    def tiles(raw: torch.Tensor) -> torch.Tensor:
        x = raw.to(dev, non_blocking=True)
        if stain_on_device and normalize is not None:
            x = normalize_uint8(x, normalize)
        return x.float().div_(255.0)

    def views(raw: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return laid_out(make_views(tiles(raw), augment, g))

    def laid_out_one(view: torch.Tensor) -> torch.Tensor:
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        return view.to(dev).contiguous(memory_format=fmt)

    def laid_out(made: Views) -> Views:
        return laid_out_one(made[0]), laid_out_one(made[1])

    def step_views(batch: tuple[Any, ...], raw: torch.Tensor, step: int) -> Views:
        if step_batches is None:  # an accelerator: the views are made here, after the transfer
            return views(raw, step_generator(seed, VIEWS_KEY, step, info.rank))
        if batch[3] != step:
            raise RuntimeError(f"pretrain: the loader made views for step {batch[3]} but training is at step {step}")
        return laid_out(batch[2])

    bank_keys = 0
    if method.needs_init():
        sampler.set_epoch(0)

        def init_views() -> Iterator[torch.Tensor]:  # one view per tile, from the bank pass's own generators
            for i, batch in enumerate(loader):
                if step_batches is None:  # an accelerator: made here, after the transfer
                    yield laid_out_one(augment(tiles(_batch_images(batch)[0]),
                                               step_generator(seed, BANK_KEY, i, info.rank)))
                    continue
                if batch[3] != bank_step(i):
                    raise RuntimeError(f"pretrain: the loader made bank views for tag {batch[3]}, not batch {i}")
                yield laid_out_one(batch[2][0])  # made by the loader workers (histcode.ssl.views)

        method.train()
        if step_batches is not None:
            step_batches.bank_pass = True
        bank_keys = method.init_bank(init_views(), amp, step_generator(seed, 8))
        if step_batches is not None:
            step_batches.bank_pass = False
    method.train()
    with key_side(dev, info) as side:
        read_errors, t_start, tiles_done, tiles_read = 0, time.perf_counter(), 0, 0
        done_epochs = 0
        for epoch in range(start_epoch, cfg.epochs):
            sampler.set_epoch(epoch)
            bar = _progress(cfg, info, steps_per_epoch, epoch)
            t_last = time.perf_counter()
            for batch in loader:
                raw, bad = _batch_images(batch)
                read_errors += bad
                tiles_read += raw.shape[0]
                if read_errors == tiles_read and step == start_step:  # the very first batch: nothing readable
                    _refuse_reads(read_errors, tiles_read, batch)
                v1, v2 = step_views(batch, raw, step)
                loss, stats = method.training_loss(net, v1, v2, amp, step_generator(seed, 2, step), side=side)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                stats.update(method.after_optimizer_step())
                step += 1
                loss_value = float(D.all_reduce_mean(loss.detach()))
                now = time.perf_counter()
                tiles_done += raw.shape[0] * info.world_size
                rate = raw.shape[0] * info.world_size / max(now - t_last, 1e-9)
                t_last = now
                history.append({"step": step, "epoch": epoch, "loss": loss_value})
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.3f}", tiles_s=f"{rate:.0f}")
                if on_log is not None and info.is_main and (step % cfg.log_every == 0 or step == total):
                    on_log({"loss": loss_value, "lr": opt.param_groups[0]["lr"], "tiles_per_s": rate,
                            "epoch": float(epoch), **stats}, step)
            bar.close()
            if read_errors > cfg.max_bad_tile_frac * max(tiles_read, 1):
                _refuse_reads(read_errors, tiles_read, None, cfg.max_bad_tile_frac)
            done_epochs += 1
            if info.is_main:
                ep = [h["loss"] for h in history if h["epoch"] == epoch]
                log.info("pretrain %s epoch %d/%d: mean loss %.4f, %d steps, %.1f tiles/s overall", cfg.method,
                         epoch + 1, cfg.epochs, float(np.mean(ep)) if ep else float("nan"), len(ep),
                         tiles_done / max(time.perf_counter() - t_start, 1e-9))
            if ckpt_path is not None and info.is_main:
                save_checkpoint(ckpt_path, {
                    "config": to_dict(cfg), "seed": seed, "data_key": data_key, "world_size": info.world_size,
                    "epoch": epoch + 1,
                    "step": step, "method": method.state_dict(), "method_optim": method.optimizer_state(),
                    "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "history": history,
                    "train_seconds": prior_seconds + time.perf_counter() - t_start,
                    "train_tiles": prior_tiles + tiles_done})
            D.barrier()
            if stop_after_epochs is not None and done_epochs >= stop_after_epochs:
                break
    # BN running stats are per rank under DDP; share rank 0's (parameters and bank are in sync already)
    _broadcast(method, params=False)
    seconds = time.perf_counter() - t_start
    # throughput and time of the whole training run, resumed calls included: a resume of a finished run (a DVC
    # rerun after a code edit) reports the run that trained the encoder, not the ~0 s of this call
    run_seconds, run_tiles = prior_seconds + seconds, prior_tiles + tiles_done
    metrics = {METRIC_FINAL_LOSS: history[-1]["loss"] if history else float("nan"), METRIC_STEPS: float(step),
               METRIC_EPOCHS_DONE: float(start_epoch + done_epochs),
               METRIC_TILES_PER_S: run_tiles / run_seconds if run_seconds > 0 else float("nan"),
               "seconds": run_seconds, "seconds_this_call": seconds, "resumed_at_epoch": float(start_epoch),
               "read_errors": float(read_errors), "bank_init_keys": float(bank_keys),
               "steps_per_epoch": float(steps_per_epoch)}
    return FitResult(encoder=method.encoder, method=method, history=history, metrics=metrics)


@contextlib.contextmanager
def key_side(dev: torch.device, info: D.DistInfo) -> Iterator[ThreadPoolExecutor | None]:
    """A thread for AdCo's key forward beside the query's (``AdCoMethod.training_loss``) on a CPU process of
    one rank with a core to spare for it: a step on the demo's 2 cores 420 -> 330 ms, the same bits (each
    forward runs on its own thread with the process's torch threads). None elsewhere: an accelerator queues
    its kernels anyway, and DDP's collectives must not run from two threads."""
    spare = dev.type == "cpu" and info.world_size == 1 and 2 * torch.get_num_threads() <= available_cpus()
    pool = ThreadPoolExecutor(1, thread_name_prefix="pretrain-keys") if spare else None
    try:
        yield pool
    finally:
        if pool is not None:
            pool.shutdown()


class TileReadError(HistcodeError, RuntimeError):
    """Too many tiles could not be read: an encoder trained on the rest (or on blanks) is not registered."""


def _refuse_reads(bad: int, total: int, batch: Any, limit: float | None = None) -> None:
    first = next((e for e in batch[1] if e), "") if batch is not None else ""
    what = "every tile read of the first batch failed" if limit is None else \
        f"{bad}/{total} tile reads failed (more than pretrain.max_bad_tile_frac={limit})"
    raise TileReadError(f"pretrain: {what}{f' (first: {first})' if first else ''}; no encoder is saved or "
                        "registered: check that the manifest's slide paths resolve from here (relative paths are "
                        "taken from the working directory) and that the slides are readable")


def _progress(cfg: PretrainConfig, info: D.DistInfo, total: int, epoch: int) -> Any:
    from histcode.console import tqdm

    return tqdm(total=total, desc=f"pretrain {cfg.method} epoch {epoch + 1}/{cfg.epochs}",
                disable=not (cfg.progress and info.is_main), leave=False)
