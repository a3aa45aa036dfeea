"""GPU throughput of feature extraction and AdCo pretraining against their bounds, in one prepared run.

A GPU machine is lent rarely and briefly, so everything is measured in one process, each section recorded even
if another fails (``benchmarks/gpu_check.sh`` prepares the machine and calls this):

1. **ceilings** of this card, measured here: bf16 GEMM TFLOP/s and device-to-device copy GB/s;
2. **extraction** at the paper's sizes (ResNet50 cut after layer3, 224 px, bf16, channels_last):
   * decode bound: the extraction DataLoader with no model (OpenSlide reads and resize in the workers; stain
     normalisation too where it runs there, i.e. on a CPU), tiles/s;
   * compute bound: stain normalisation (on an accelerator) + the encoder on a batch already on the device
     (cuDNN autotuning off, as extraction runs, and on); its TFLOP/s from the counted FLOPs per tile;
   * end to end: ``extract_slides`` on the device (pinned uint8 batches, bf16 autocast, HDF5 writes);
     efficiency = end-to-end / min(decode, compute);
3. **AdCo step** at the paper's sizes (batch 256, bank 65536): encoder step + adversarial bank update on views
   already in memory, tiles/s and TFLOP/s;
4. **AdCo pretraining end to end**: ``ssl.trainer.fit`` (loader, H&E augmentation on the GPU, step, bank) inside a
   one-rank NCCL process group, so DDP and the nccl collectives (all-gather of keys, all-reduce of the bank
   gradient and loss) run; efficiency = tiles/s / min(decode at read_px, device bound), the device bound being
   the step and two views' H&E augmentation done in turn.

    python benchmarks/bench_gpu.py --cohort-dir .gpu/cohort --out $OUT/bench_gpu.json      # on the GPU
    python benchmarks/bench_gpu.py --cohort-dir .gpu/cohort --quick --device cpu           # rehearsal on a CPU

The slides are real pyramidal files read through OpenSlide; a slide's coords are repeated to reach
``--tiles`` so the loader reads the same regions again (OpenSlide decodes them again: no tile cache between
batches beyond OpenSlide's own).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch


@dataclasses.dataclass(frozen=True)
class Sizes:
    backbone: str = "resnet50_trunc"
    input_px: int = 224  # extraction and AdCo network input (paper)
    read_px: int = 256  # AdCo reads 256-px tiles, random-resized-crops to input_px
    extract_batch: int = 512
    step_batch: int = 256
    bank: int = 65536
    fit_bank: int = 16384  # end-to-end fit: its bank is filled from the run's own first batches
    tiles: int = 24576  # decode and end-to-end extraction
    fit_tiles: int = 24576
    gemm: int = 8192
    copy_mib: int = 2048
    reps: int = 20


QUICK = Sizes(backbone="resnet18_trunc", input_px=64, read_px=64, extract_batch=16, step_batch=8, bank=64,
              fit_bank=32, tiles=96, fit_tiles=96, gemm=256, copy_mib=16, reps=3)


class Timer:
    """Wall time of a region with the device drained before and after (kernels run asynchronously)."""

    def __init__(self, dev: torch.device) -> None:
        self.dev = dev

    def sync(self) -> None:
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)

    @contextlib.contextmanager
    def __call__(self) -> Iterator[list[float]]:
        out: list[float] = []
        self.sync()
        t0 = time.perf_counter()
        yield out
        self.sync()
        out.append(time.perf_counter() - t0)


def median_time(fn: Callable[[], Any], timer: Timer, reps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        with timer() as t:
            fn()
        times.append(t[0])
    return float(np.median(times))


def ceilings(dev: torch.device, s: Sizes, timer: Timer) -> dict[str, float]:
    """The card's two bounds, measured on random data (zeros run faster and would flatter every ratio)."""
    g = torch.Generator(device=dev).manual_seed(0)
    a = torch.randn(s.gemm, s.gemm, device=dev, dtype=torch.bfloat16, generator=g)
    b = torch.randn(s.gemm, s.gemm, device=dev, dtype=torch.bfloat16, generator=g)
    t = median_time(lambda: a @ b, timer, s.reps)
    src = torch.randn(s.copy_mib * 2**20 // 4, device=dev, generator=g)
    dst = torch.empty_like(src)
    tc = median_time(lambda: dst.copy_(src), timer, s.reps)
    return {"gemm_bf16_tflops": 2 * s.gemm**3 / t / 1e12, "copy_gb_per_s": 2 * src.numel() * 4 / tc / 1e9,
            "gemm_n": float(s.gemm), "copy_mib": float(s.copy_mib)}


def forward_flops(module: torch.nn.Module, px: int) -> float:
    """FLOPs of one tile's forward pass (multiply-add = 2), counted by torch on a CPU copy."""
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    m = copy.deepcopy(module).float().cpu().eval()
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        m(torch.rand(1, 3, px, px))
    return float(fc.get_total_flops())


def load_cohort(cohort_dir: Path, n_tiles: int) -> tuple[list[Any], Callable[..., Any] | None]:
    """The carried slides with their coords, each slide's coords repeated so all together give ``n_tiles``."""
    from histcode.io.coords import read_coords
    from histcode.io.manifest import read_manifest, valid_mpp
    from histcode.slides.cohort_tiles import SlideTiles
    from histcode.slides.stain import load_normalizer

    df = read_manifest(cohort_dir / "slides.csv")
    slides = []
    for row in df.itertuples(index=False):
        coords, attrs = read_coords(cohort_dir / "tiles" / f"{row.slide_id}.h5")
        slides.append(SlideTiles(str(row.slide_id), Path(str(row.path)), coords, int(attrs["patch_size"]), attrs,
                                 mpp=valid_mpp(row.mpp)))
    per = -(-n_tiles // len(slides))
    slides = [dataclasses.replace(sl, coords=np.resize(sl.coords, (per, 2)).astype(sl.coords.dtype))
              for sl in slides]
    stain = cohort_dir / "stain_reference.json"
    return slides, load_normalizer(stain).transform_batch if stain.exists() else None


def decode_bound(slides: list[Any], px: int, batch: int, workers: int,
                 normalize: Any) -> tuple[float, float]:
    """Tiles/s of the loader alone: steady (after the first batch, i.e. without the workers' start-up) and
    with start-up, as ``extract_slides`` is timed (from creating the iterator to the last batch)."""
    from torch.utils.data import DataLoader

    from histcode.features.extract import _RangeSampler, _slide_batches
    from histcode.slides.tile_dataset import SlideTileDataset, TileCollate, worker_init

    ds = SlideTileDataset(slides, out_px=px)
    loader = DataLoader(ds, batch_sampler=_RangeSampler(_slide_batches(ds, batch)), num_workers=workers,
                        collate_fn=TileCollate(normalize), worker_init_fn=worker_init if workers else None,
                        prefetch_factor=4 if workers else None, persistent_workers=False)
    t_start = time.perf_counter()
    it = iter(loader)
    first = next(it)  # worker start-up is not steady decode time
    n, bad = 0, 0
    t0 = time.perf_counter()
    for tiles, errors in it:
        n += tiles.shape[0]
        bad += sum(bool(e) for e in errors)
    t1 = time.perf_counter()
    seconds = t1 - t0
    if bad or any(first[1]):
        raise RuntimeError(f"decode: {bad} tiles failed to read; first error: {next(e for e in first[1] if e)!r}"
                           if any(first[1]) else f"decode: {bad} tiles failed to read")
    return n / seconds, (n + first[0].shape[0]) / (t1 - t_start)


def extraction(dev: torch.device, s: Sizes, timer: Timer, slides: list[Any], normalize: Any, workers: int,
               out: dict[str, Any]) -> None:
    from histcode.features.config import ExtractConfig
    from histcode.features.extract import EncoderJob, extract_slides
    from histcode.slides.tile_dataset import normalize_on_device, normalize_uint8
    from histcode.ssl.backbone import create_encoder

    torch.manual_seed(0)
    enc = create_encoder(s.backbone)
    flops = forward_flops(enc, s.input_px)
    out["extract_flops_per_tile_g"] = flops / 1e9
    model = enc.to(dev).eval().to(memory_format=torch.channels_last)
    g = torch.Generator(device=dev).manual_seed(1)
    x8 = torch.randint(0, 256, (s.extract_batch, 3, s.input_px, s.input_px), dtype=torch.uint8, device=dev,
                       generator=g)

    on_dev = normalize_on_device(dev, normalize)  # as extract_slides decides
    worker_norm = None if on_dev else normalize

    def stain() -> torch.Tensor:
        return normalize_uint8(x8, normalize) if on_dev else x8

    def fwd() -> None:
        x = stain().float().div_(255.0).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16):
            model(x).float()

    out["stain_on_device"] = on_dev
    if on_dev:
        out["stain_device_tiles_per_s"] = s.extract_batch / median_time(stain, timer, s.reps)
        print(f"[extract] stain normalisation on {dev.type}: {out['stain_device_tiles_per_s']:.0f} tiles/s",
              flush=True)

    for bench in (False, True):
        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = bench
        t = median_time(fwd, timer, s.reps)
        key = "compute_cudnn_benchmark" if bench else "compute"
        out[f"extract_{key}_tiles_per_s"] = s.extract_batch / t
        out[f"extract_{key}_tflops"] = flops * s.extract_batch / t / 1e12
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = False
    print(f"[extract] compute bound {out['extract_compute_tiles_per_s']:.0f} tiles/s", flush=True)
    out["extract_decode_tiles_per_s"], out["extract_decode_with_startup_tiles_per_s"] = decode_bound(
        slides, s.input_px, s.extract_batch, workers, worker_norm)
    print(f"[extract] decode bound {out['extract_decode_tiles_per_s']:.0f} tiles/s ({workers} workers; "
          f"{out['extract_decode_with_startup_tiles_per_s']:.0f} with their start-up)", flush=True)
    cfg = ExtractConfig(input_px=s.input_px, batch_size=s.extract_batch, workers=workers, threads=1,
                        progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        job = EncoderJob("random", model, "bench", enc.dim, Path(tmp), "bench")
        outcomes, stats = extract_slides(slides, [job], cfg=cfg, device=dev, normalize=normalize)
        written = sum(1 for _ in Path(tmp).glob("*.h5"))
    failed = [o for o in outcomes["random"] if o.status not in ("done", "partial")]
    if failed or written != len(slides):
        raise RuntimeError(f"extract_slides: {len(failed)} slides failed, {written}/{len(slides)} files: {failed[:2]}")
    e2e = stats["tiles_per_s"]
    bound = min(out["extract_decode_tiles_per_s"], out["extract_compute_tiles_per_s"])
    # extract_slides' time includes starting its loader workers: compare it with the loader timed the same way too
    bound_startup = min(out["extract_decode_with_startup_tiles_per_s"], out["extract_compute_tiles_per_s"])
    out.update({"extract_e2e_tiles_per_s": e2e, "extract_tiles": stats["tiles"],
                "extract_bound": "decode" if bound == out["extract_decode_tiles_per_s"] else "compute",
                "extract_efficiency": e2e / bound, "extract_efficiency_with_startup": e2e / bound_startup})
    print(f"[extract] end to end {e2e:.0f} tiles/s = {e2e / bound:.2f} of the steady {out['extract_bound']} bound, "
          f"{e2e / bound_startup:.2f} of the bound with start-up", flush=True)


def _pretrain_cfg(s: Sizes, batch: int, bank: int, workers: int) -> Any:
    from histcode.ssl.config import PretrainConfig

    return PretrainConfig(method="adco", backbone=s.backbone, input_px=s.input_px, read_px=s.read_px, epochs=1,
                          batch_size=batch, tiles_per_slide=1.0, max_tiles_per_slide=10**9, bank_size=bank,
                          proj_hidden=1024, proj_dim=128, key_momentum=0.999, workers=workers, threads=1,
                          log_every=10**9, progress=False)


def adco_step(dev: torch.device, s: Sizes, timer: Timer, out: dict[str, Any]) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    from histcode.ssl.backbone import create_encoder
    from histcode.ssl.methods import AdCoMethod

    cfg = _pretrain_cfg(s, s.step_batch, s.bank, 0)
    torch.manual_seed(0)
    method = AdCoMethod(create_encoder(cfg.backbone), cfg).to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(method.net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    g = torch.Generator(device=dev).manual_seed(2)
    x1 = torch.rand(cfg.batch_size, 3, cfg.input_px, cfg.input_px, device=dev, generator=g).contiguous(
        memory_format=torch.channels_last)
    x2 = torch.rand(x1.shape, device=dev, generator=g).contiguous(memory_format=torch.channels_last)

    def amp() -> Any:
        return torch.autocast(dev.type, dtype=torch.bfloat16)

    cpu_gen = torch.Generator().manual_seed(0)
    method.init_bank(iter([x2] * (-(-cfg.bank_size // cfg.batch_size))), amp, cpu_gen)

    def step() -> None:
        loss, _ = method.training_loss(method.net, x1, x2, amp, cpu_gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    with FlopCounterMode(display=False) as fc:
        step()
    flops = float(fc.get_total_flops())
    method.after_optimizer_step()
    steps, banks = [], []
    for _ in range(s.reps):  # the bank update consumes the step's similarities: time the two in turn
        with timer() as ts:
            step()
        with timer() as tb:
            method.after_optimizer_step()
        steps.append(ts[0])
        banks.append(tb[0])
    t_step, t_bank = float(np.median(steps)), float(np.median(banks))
    t = t_step + t_bank
    out.update({"adco_step_batch": cfg.batch_size, "adco_bank": cfg.bank_size, "adco_step_s": t_step,
                "adco_bank_update_s": t_bank, "adco_bank_fraction": t_bank / t,
                "adco_step_tiles_per_s": cfg.batch_size / t, "adco_step_flops_per_tile_g": flops / cfg.batch_size / 1e9,
                "adco_step_tflops": flops / t_step / 1e12})
    print(f"[adco] step bound {cfg.batch_size / t:.0f} tiles/s (bank update {t_bank / t:.1%} of a step)", flush=True)


def augmentation(dev: torch.device, s: Sizes, timer: Timer, out: dict[str, Any]) -> None:
    """The pretraining views' cost: H&E augmentation of one batch on the device, and its JPEG part alone on the
    device (nvJPEG) against a round trip through the CPU codec."""
    from histcode.ssl import augment as A

    cfg = _pretrain_cfg(s, s.step_batch, s.bank, 0)
    aug = A.HEAugment(A.AugmentConfig(out_px=cfg.input_px, p_jpeg=cfg.p_jpeg, jpeg_quality=cfg.jpeg_quality))
    g = torch.Generator(device=dev).manual_seed(3)
    x = torch.rand(cfg.batch_size, 3, cfg.read_px, cfg.read_px, device=dev, generator=g)
    cpu_gen = torch.Generator().manual_seed(0)
    t = median_time(lambda: aug(x, cpu_gen), timer, s.reps)
    out["augment_views_per_s"] = cfg.batch_size / t
    t_dev = median_time(lambda: A.jpeg_compress(x, cpu_gen, cfg.jpeg_quality, 1.0), timer, s.reps)
    out["jpeg_device_used"] = dev.type == "cuda" and not A._GPU_JPEG_FAILED
    out["jpeg_device_tiles_per_s"] = cfg.batch_size / t_dev
    t_cpu = median_time(lambda: A.jpeg_compress(x.cpu(), cpu_gen, cfg.jpeg_quality, 1.0).to(dev), timer, s.reps)
    out["jpeg_cpu_roundtrip_tiles_per_s"] = cfg.batch_size / t_cpu
    print(f"[augment] {out['augment_views_per_s']:.0f} views/s; JPEG on {dev.type} "
          f"{out['jpeg_device_tiles_per_s']:.0f} tiles/s vs CPU round trip {out['jpeg_cpu_roundtrip_tiles_per_s']:.0f}"
          + (f" (GPU codec failed: {A._GPU_JPEG_FAILED[0]})" if A._GPU_JPEG_FAILED else ""), flush=True)
    jpeg_breakdown(A, x, cfg.jpeg_quality, timer, s.reps, out)


def jpeg_breakdown(A: Any, x: torch.Tensor, quality: tuple[int, int], timer: Timer, reps: int,
                   out: dict[str, Any]) -> None:
    """Where the JPEG augmentation's time goes, on one batch at every quality drawn from ``quality``: the round
    trip as it was (a blocking device-to-host copy per image and a decode per quality), as it is (one copy, one
    batched decode), the encodes alone, and one quality for the whole batch (the floor of per-quality calls).
    The two paths must give the same pixels."""
    from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg

    u8 = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    qs = torch.randint(int(quality[0]), int(quality[1]) + 1, (len(u8),), generator=torch.Generator().manual_seed(5))
    groups = [(int(q), [u8[i] for i in torch.nonzero(qs == q).flatten().tolist()]) for q in qs.unique().tolist()]
    dev = u8.device

    def before() -> list[torch.Tensor]:
        res: list[torch.Tensor] = []
        for q, ims in groups:
            res.extend(decode_jpeg([d.cpu() for d in encode_jpeg(ims, quality=q)], mode=ImageReadMode.RGB,
                                   device=dev))
        return res

    def encodes() -> None:
        for q, ims in groups:
            encode_jpeg(ims, quality=q)

    same = all(torch.equal(a, b) for a, b in zip(before(), A._jpeg_roundtrip(groups), strict=True))
    n = len(u8)
    for key, fn in (("jpeg_roundtrip_before_tiles_per_s", before),
                    ("jpeg_roundtrip_now_tiles_per_s", lambda: A._jpeg_roundtrip(groups)),
                    ("jpeg_encodes_only_tiles_per_s", encodes),
                    ("jpeg_one_quality_tiles_per_s", lambda: A._jpeg_roundtrip([(75, list(u8))]))):
        out[key] = n / median_time(fn, timer, reps)
    # the whole op as training calls it (quality draws, uint8 conversion, grouping, scatter back), same draws
    out["jpeg_compress_fixed_draws_tiles_per_s"] = n / median_time(
        lambda: A.jpeg_compress(x, torch.Generator().manual_seed(5), quality, 1.0), timer, reps)
    out.update(jpeg_distinct_qualities=len(groups), jpeg_before_now_identical=same)
    if os.environ.get("BENCH_PROFILE_JPEG"):
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
        with profile(activities=acts) as prof:
            A.jpeg_compress(x, torch.Generator().manual_seed(5), quality, 1.0)
            timer.sync()
        print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=15), flush=True)
    print(f"[augment] JPEG round trip of {n} tiles at {len(groups)} qualities: before "
          f"{out['jpeg_roundtrip_before_tiles_per_s']:.0f} tiles/s, now {out['jpeg_roundtrip_now_tiles_per_s']:.0f} "
          f"(identical: {same}); encodes alone {out['jpeg_encodes_only_tiles_per_s']:.0f}; one quality "
          f"{out['jpeg_one_quality_tiles_per_s']:.0f}", flush=True)


def adco_fit(dev: torch.device, s: Sizes, slides: list[Any], normalize: Any, workers: int,
             out: dict[str, Any]) -> None:
    """The trainer end to end in a one-rank process group (NCCL on a GPU, gloo on a CPU): DDP + collectives."""
    import torch.distributed as dist

    from histcode import distributed as D
    from histcode.slides.tile_dataset import SlideTileDataset, normalize_on_device
    from histcode.ssl.trainer import fit

    backend = "nccl" if dev.type == "cuda" else "gloo"
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    dist.init_process_group(backend, rank=0, world_size=1)
    try:
        info = D.DistInfo(rank=0, world_size=1, local_rank=0, device=dev)
        per = -(-s.fit_tiles // len(slides))
        fit_slides = [dataclasses.replace(sl, coords=sl.coords[:per]) for sl in slides]
        ds = SlideTileDataset(fit_slides, out_px=s.read_px)
        cfg = _pretrain_cfg(s, s.step_batch, s.fit_bank, workers)
        worker_norm = None if normalize_on_device(dev, normalize) else normalize
        out["adco_fit_decode_tiles_per_s"] = decode_bound(fit_slides, s.read_px, s.step_batch, workers, worker_norm)[0]
        t0 = time.perf_counter()
        result = fit(cfg, ds, ds.n_tiles, seed=0, normalize=normalize, dist_info=info)
        wall = time.perf_counter() - t0
        loss = result.metrics["final_loss"]
        if not np.isfinite(loss):
            raise RuntimeError(f"AdCo fit: final loss {loss}")
        rate = result.metrics["tiles_per_s"]
        # the device does the step and the two views' augmentation in turn: its bound is their serial rate
        step_rate, aug_rate = out.get("adco_step_tiles_per_s"), out.get("augment_views_per_s")
        gpu = 1 / (1 / step_rate + 2 / aug_rate) if step_rate and aug_rate else float("inf")
        out["adco_fit_device_bound_tiles_per_s"] = gpu
        bound = min(out["adco_fit_decode_tiles_per_s"], gpu)
        out.update({"adco_fit_backend": backend, "adco_fit_ddp": bool(D.is_distributed()),
                    "adco_fit_tiles_per_s": rate, "adco_fit_steps": result.metrics["steps"],
                    "adco_fit_bank_init_keys": result.metrics["bank_init_keys"], "adco_fit_wall_s": wall,
                    "adco_fit_final_loss": loss, "adco_fit_efficiency": rate / bound})
        print(f"[adco] fit end to end {rate:.0f} tiles/s over {backend} (decode bound "
              f"{out['adco_fit_decode_tiles_per_s']:.0f}) = {rate / bound:.2f} of the bound", flush=True)
    finally:
        dist.destroy_process_group()


def environment(dev: torch.device) -> dict[str, Any]:
    env: dict[str, Any] = {"torch": torch.__version__, "cpus": os.cpu_count(), "python": platform.python_version()}
    if dev.type == "cuda":
        nccl = torch.cuda.nccl.version()
        env.update({"device": torch.cuda.get_device_name(dev), "cuda": torch.version.cuda,
                    "cudnn": torch.backends.cudnn.version(),
                    "nccl": ".".join(map(str, nccl)) if isinstance(nccl, tuple) else str(nccl),
                    "sms": torch.cuda.get_device_properties(dev).multi_processor_count})
    else:
        env["device"] = platform.processor() or "cpu"
    return env


def table(r: dict[str, Any]) -> str:
    rows = [("GEMM bf16 ceiling", "gemm_bf16_tflops", "TFLOP/s"), ("copy ceiling", "copy_gb_per_s", "GB/s"),
            ("stain normalisation on GPU", "stain_device_tiles_per_s", "tiles/s"),
            ("extract decode bound", "extract_decode_tiles_per_s", "tiles/s"),
            ("  … with the workers' start-up", "extract_decode_with_startup_tiles_per_s", "tiles/s"),
            ("extract compute bound", "extract_compute_tiles_per_s", "tiles/s"),
            ("  … with cudnn.benchmark", "extract_compute_cudnn_benchmark_tiles_per_s", "tiles/s"),
            ("  … as TFLOP/s", "extract_compute_tflops", "TFLOP/s"),
            ("extract end to end", "extract_e2e_tiles_per_s", "tiles/s"),
            ("  … efficiency vs bound", "extract_efficiency", ""),
            ("  … vs the bound with start-up", "extract_efficiency_with_startup", ""),
            ("AdCo step bound", "adco_step_tiles_per_s", "tiles/s"), ("  … TFLOP/s", "adco_step_tflops", "TFLOP/s"),
            ("  … bank update share", "adco_bank_fraction", ""),
            ("H&E augmentation (1 view)", "augment_views_per_s", "views/s"),
            ("JPEG on the device", "jpeg_device_tiles_per_s", "tiles/s"),
            ("JPEG via the CPU", "jpeg_cpu_roundtrip_tiles_per_s", "tiles/s"),
            ("JPEG round trip, copy per image (before)", "jpeg_roundtrip_before_tiles_per_s", "tiles/s"),
            ("JPEG round trip, one copy + decode (now)", "jpeg_roundtrip_now_tiles_per_s", "tiles/s"),
            ("  … encodes alone", "jpeg_encodes_only_tiles_per_s", "tiles/s"),
            ("  … one quality for the batch", "jpeg_one_quality_tiles_per_s", "tiles/s"),
            ("  … jpeg_compress as training calls it", "jpeg_compress_fixed_draws_tiles_per_s", "tiles/s"),
            ("AdCo fit decode bound", "adco_fit_decode_tiles_per_s", "tiles/s"),
            ("AdCo fit device bound", "adco_fit_device_bound_tiles_per_s", "tiles/s"),
            ("AdCo fit end to end", "adco_fit_tiles_per_s", "tiles/s"),
            ("  … efficiency vs bound", "adco_fit_efficiency", "")]
    lines = [f"{name:<44}{r[k]:>12.3g} {unit}" for name, k, unit in rows if isinstance(r.get(k), float)]
    return "\n".join([*lines, f"errors: {r['errors']}" if r["errors"] else "errors: none"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cohort-dir", type=Path, required=True, help="slides.csv, tiles/<slide_id>.h5, "
                    "stain_reference.json (benchmarks/gpu_prepare.sh writes it)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    ap.add_argument("--quick", action="store_true", help="toy sizes: a rehearsal of every code path on a CPU")
    ap.add_argument("--only", default="ceilings,extract,step,augment,fit")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_gpu.json"))
    args = ap.parse_args()
    s = QUICK if args.quick else Sizes()
    dev = torch.device(args.device)
    timer = Timer(dev)
    result: dict[str, Any] = {"env": environment(dev), "sizes": dataclasses.asdict(s), "workers": args.workers,
                              "errors": {}}
    print(json.dumps(result["env"]), flush=True)
    slides, normalize = load_cohort(args.cohort_dir, s.tiles)
    result["slides"] = len(slides)
    sections: dict[str, Callable[[], None]] = {
        "ceilings": lambda: result.update(ceilings(dev, s, timer)),
        "extract": lambda: extraction(dev, s, timer, slides, normalize, args.workers, result),
        "step": lambda: adco_step(dev, s, timer, result),
        "augment": lambda: augmentation(dev, s, timer, result),
        "fit": lambda: adco_fit(dev, s, slides, normalize, args.workers, result),
    }
    for name in args.only.split(","):
        t0 = time.perf_counter()
        try:
            sections[name]()
        except Exception as exc:  # one failed section must not lose the others' numbers
            traceback.print_exc()
            result["errors"][name] = f"{type(exc).__name__}: {exc}"
        result[f"{name}_section_s"] = time.perf_counter() - t0
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    print(table(result), flush=True)


if __name__ == "__main__":
    main()
