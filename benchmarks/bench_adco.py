"""AdCo step time with and without the adversarial-bank update (goal: bank update < 15% of a step).

One step = two augmented views already in memory → query forward/backward, key forward, SGD step, momentum
update; the bank update is the closed-form gradient + all-reduce + ascent SGD step. Both are timed in the
same process on the same batch, so the ratio is free of data-loading noise. The two views' H&E augmentation of
a batch of ``read_px`` tiles is timed too: on an accelerator pretraining makes them in the training process before
each step, so step + views is the bound of that process (`main_process_tiles_per_s`), the loader's reads aside; on
a CPU the loader workers make them (histcode.ssl.views) and the step alone bounds the training process.

    python benchmarks/bench_adco.py                      # CPU demo config (params.yaml pretrain section)
    python benchmarks/bench_adco.py --backbone resnet50_trunc --input-px 224 --batch 256 --bank 65536  # paper
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import torch


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    from histcode.config import load_params, section
    from histcode.precision import resolve_bf16
    from histcode.ssl.augment import AugmentConfig, HEAugment
    from histcode.ssl.backbone import create_encoder
    from histcode.ssl.config import PretrainConfig
    from histcode.ssl.methods import AdCoMethod

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--backbone", default=None)
    ap.add_argument("--input-px", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--bank", type=int, default=None)
    ap.add_argument("--proj-hidden", type=int, default=None)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default="benchmarks/results/bench_adco.json")
    args = ap.parse_args()
    cfg = section(PretrainConfig, "pretrain", load_params(args.params)) if Path(args.params).exists() \
        else PretrainConfig()
    over = {k: v for k, v in {"backbone": args.backbone, "input_px": args.input_px, "batch_size": args.batch,
                               "bank_size": args.bank, "proj_hidden": args.proj_hidden}.items() if v is not None}
    cfg = dataclasses.replace(cfg, **over)
    dev = torch.device(args.device)
    cfg = dataclasses.replace(cfg, bf16=resolve_bf16(cfg.bf16, dev.type))  # once, not per step
    torch.set_num_threads(max(1, cfg.threads))
    torch.manual_seed(0)
    method = AdCoMethod(create_encoder(cfg.backbone), cfg).to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(method.net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    x1 = torch.rand(cfg.batch_size, 3, cfg.input_px, cfg.input_px, device=dev).contiguous(
        memory_format=torch.channels_last)
    x2 = torch.rand_like(x1)

    def amp() -> torch.autocast:
        return torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.bf16)

    gen = torch.Generator().manual_seed(0)
    method.init_bank([x2], amp, gen)

    def encoder_step() -> None:
        loss, _ = method.training_loss(method.net, x1, x2, amp, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    times: dict[str, list[float]] = {"encoder_step": [], "bank_update": []}
    for i in range(args.steps + 1):
        _sync(dev)
        t0 = time.perf_counter()
        encoder_step()
        _sync(dev)
        t1 = time.perf_counter()
        method.after_optimizer_step()
        _sync(dev)
        t2 = time.perf_counter()
        if i > 0:  # first step warms up kernels/allocator
            times["encoder_step"].append(t1 - t0)
            times["bank_update"].append(t2 - t1)
    step = sorted(times["encoder_step"])[len(times["encoder_step"]) // 2]
    bank = sorted(times["bank_update"])[len(times["bank_update"]) // 2]
    # the trainer's views(): uint8 tiles at read_px → float [0, 1] → two augmented views, channels_last
    augment = HEAugment(AugmentConfig(out_px=cfg.input_px, hed_sigma=cfg.hed_sigma,
                                      stain_vector_sigma=cfg.stain_vector_sigma, p_jpeg=cfg.p_jpeg,
                                      jpeg_quality=cfg.jpeg_quality))
    raw = torch.randint(0, 256, (cfg.batch_size, 3, cfg.read_px, cfg.read_px), dtype=torch.uint8, device=dev)
    view_times = []
    for i in range(args.steps + 1):
        _sync(dev)
        t0 = time.perf_counter()
        x = raw.float().div_(255.0)
        for _ in range(2):
            augment(x, gen).contiguous(memory_format=torch.channels_last)
        _sync(dev)
        if i > 0:
            view_times.append(time.perf_counter() - t0)
    views = sorted(view_times)[len(view_times) // 2]
    result = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
        "threads": torch.get_num_threads(), "backbone": cfg.backbone, "input_px": cfg.input_px,
        "batch_size": cfg.batch_size, "bank_size": cfg.bank_size, "proj_dim": cfg.proj_dim,
        "bf16": cfg.bf16,
        "step_without_bank_s": step, "bank_update_s": bank, "step_with_bank_s": step + bank,
        "bank_fraction_of_step": bank / (step + bank), "goal_bank_fraction": 0.15,
        "tiles_per_s_with_bank": cfg.batch_size / (step + bank),
        "read_px": cfg.read_px, "two_views_s": views,
        "main_process_tiles_per_s": cfg.batch_size / (step + bank + views),
    }
    print(json.dumps(result, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs = json.loads(out.read_text()) if out.exists() else []
    runs = [r for r in runs if not (r.get("device") == result["device"] and r.get("backbone") == cfg.backbone
                                    and r.get("bank_size") == cfg.bank_size and r.get("batch_size") == cfg.batch_size
                                    and r.get("input_px") == cfg.input_px)]
    out.write_text(json.dumps([*runs, result], indent=2) + "\n")


if __name__ == "__main__":
    main()
