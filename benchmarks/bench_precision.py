"""float32 vs bf16 autocast on this machine's CPU, for the project's encoders: why ``bf16: auto`` exists.

Times the encoder forward (extraction: inference mode, channels_last) and a training step (forward, backward,
SGD; pretraining's compute) at the params' input size and batch, in both precisions, in one process on the same
batch, and says what ``bf16: auto`` picks here and from which CPU flags. On a CPU with AMX bf16 autocast is the
faster path; on one without bf16 instructions PyTorch emulates it and float32 wins by a wide margin.

    python benchmarks/bench_precision.py [--backbone resnet50_trunc] [--threads 2] [--out results/bench_precision.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch


def _rate(fn, n_tiles: int, repeats: int) -> float:
    fn()  # warm-up: oneDNN primitive creation
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n_tiles / best


def main() -> None:
    from histcode.config import load_params, section
    from histcode.precision import CPU_BF16_FLAGS, cpu_flags, cpu_info, resolve_bf16
    from histcode.ssl.backbone import create_encoder
    from histcode.ssl.config import PretrainConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--backbone", default=None, help="default: pretrain.backbone")
    ap.add_argument("--input-px", type=int, default=None, help="default: pretrain.input_px")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_precision.json"))
    a = ap.parse_args()
    cfg = section(PretrainConfig, "pretrain", load_params(a.params))
    backbone, px = a.backbone or cfg.backbone, a.input_px or cfg.input_px
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net = create_encoder(backbone).to(memory_format=torch.channels_last)
    x = torch.rand(a.batch, 3, px, px).contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    rows = {}
    for name, bf16 in (("float32", False), ("bf16_autocast", True)):
        def infer(bf16: bool = bf16) -> None:
            net.eval()
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                net(x).float()

        def train(bf16: bool = bf16) -> None:
            net.train()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = net(x).float().pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        rows[name] = {"inference_tiles_per_s": _rate(infer, a.batch, a.repeats),
                      "train_step_tiles_per_s": _rate(train, a.batch, a.repeats)}
    flags = cpu_flags() or frozenset()
    result = {
        "cpu": (cpu_info() or {}).get("model name") or platform.processor() or platform.machine(),
        "cpu_bf16_flags": sorted(f for f in flags if f in CPU_BF16_FLAGS),
        "avx512f": "avx512f" in flags,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "backbone": backbone, "input_px": px, "batch": a.batch, "threads": a.threads,
        **{f"{k}.{m}": v for k, r in rows.items() for m, v in r.items()},
        "bf16_over_float32_inference": rows["bf16_autocast"]["inference_tiles_per_s"]
        / rows["float32"]["inference_tiles_per_s"],
        "bf16_over_float32_train_step": rows["bf16_autocast"]["train_step_tiles_per_s"]
        / rows["float32"]["train_step_tiles_per_s"],
        "auto_picks_bf16": resolve_bf16("auto", "cpu"),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1) + "\n")
    for k, v in result.items():
        print(f"{k}: {v:.3g}" if isinstance(v, float) else f"{k}: {v}")


if __name__ == "__main__":
    main()
