"""CPU speed and memory of every registered encoder (random weights; speed does not depend on their values).

Each encoder runs in its own process (so peak RSS is that encoder's alone): build the full-size architecture
(ViTs on the meta device, then materialised with random normal weights: timm's own init of a 1.1 B-parameter
ViT-g takes minutes on 2 cores), embed a few random [0, 1] tiles (``PLAN``) at the encoder's input size (the
module applies its own resize/normalisation) in batches, after one warm-up batch, on ``--threads`` threads.
``tiles_per_cpu_s`` (tiles per CPU-second over all threads) is the load-independent figure: on a shared
machine wall-clock tiles/s fall with the load average; 2 quiet cores give at most twice it.

    python benchmarks/bench_encoders.py [--threads 2] [--out benchmarks/results/bench_encoders.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# (name, tiles, batch): large models get few tiles so the whole run stays within minutes on 2 shared cores
PLAN = [("adco", 64, 32), ("resnet50_trunc", 32, 16), ("ctranspath", 32, 16), ("uni", 8, 4), ("phikon_v2", 8, 4),
        ("uni2_h", 4, 2), ("virchow2", 4, 2), ("h_optimus_0", 4, 2), ("gigapath", 4, 2)]

CHILD = r"""
import json, resource, sys, time
import torch
name, n, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)
t0 = time.perf_counter()
if name == "adco":  # the demo's AdCo/random/SimCLR backbone at the demo's 128 px input
    from histcode.ssl.backbone import create_encoder
    enc, px = create_encoder("resnet18_trunc"), 128
else:
    from histcode.features.foundation import FOUNDATION, FoundationEncoder, build_trunk
    spec = FOUNDATION[name]
    if spec.timm_name.startswith("vit"):
        with torch.device("meta"):
            trunk = build_trunk(spec)
        trunk = trunk.to_empty(device="cpu")
        with torch.no_grad():
            for p in trunk.parameters():
                p.normal_(0, 0.02)
    else:
        trunk = build_trunk(spec)
    enc, px = FoundationEncoder(trunk, spec), spec.resize_px
enc.eval()
build = time.perf_counter() - t0
x = torch.rand(batch, 3, px, px)
with torch.inference_mode():
    enc(x)  # warm-up
    t1, c1 = time.perf_counter(), time.process_time()
    done = 0
    while done < n:
        out = enc(x)
        done += batch
    sec, cpu = time.perf_counter() - t1, time.process_time() - c1
print(json.dumps({"encoder": name, "dim": int(out.shape[1]), "input_px": px, "tiles": done, "batch": batch,
                  "tiles_per_s": done / sec, "tiles_per_cpu_s": done / cpu, "build_s": build,
                  "params_m": sum(p.numel() for p in enc.parameters()) / 1e6,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_encoders.json"))
    args = ap.parse_args()
    rows = []
    for name, n, batch in PLAN:
        if args.only and name not in args.only:
            continue
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-c", CHILD, name, str(n), str(batch), str(args.threads)],
                             capture_output=True, text=True, env=env)
        if res.returncode:
            print(f"{name}: failed: {res.stderr.strip().splitlines()[-1]}", flush=True)
            continue
        row = json.loads(res.stdout.strip().splitlines()[-1])
        row["process_s"] = time.perf_counter() - t0
        rows.append(row)
        print(f"{name:15s} {row['dim']:5d}-d {row['input_px']}px {row['params_m']:7.1f}M params "
              f"{row['tiles_per_s']:7.2f} tiles/s ({row['tiles_per_cpu_s']:.2f}/CPU-s)  "
              f"peak {row['peak_rss_mb']:7.0f} MB  build {row['build_s']:.1f}s",
              flush=True)
    from histcode.atomic import write_json

    write_json(args.out, {"threads": args.threads, "load_avg_1min_end": os.getloadavg()[0], "rows": rows})


if __name__ == "__main__":
    main()
