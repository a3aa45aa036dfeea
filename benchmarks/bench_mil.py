"""MIL throughput and memory: streamed slide inference vs its bounds, training step time, peak memory vs N.

Streamed inference (features read from h5 in chunks, then pooled) cannot beat either bound measured in the
same run: reading the chunks alone (h5 + float16→float32) or computing on in-memory chunks alone. We report
tiles/s and ``efficiency = throughput / min(bounds)`` (and vs the serial bound 1/(1/read + 1/compute),
which is what a single thread can reach). Peak RSS growth of streamed inference is measured in fresh
subprocesses for two bag sizes: it should not grow with N. Usage:

    python benchmarks/bench_mil.py --tiles 40000 --dim 1024 --threads 2 --out reports/benchmarks/bench_mil.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from histcode.mil.bags import iter_bag_chunks
from histcode.mil.model import MilClassifier, save_mil
from histcode.mil.pooling import create_pooling

_CHILD = r"""
import json, re, sys, torch
torch.set_num_threads(int(sys.argv[3]))
from itertools import islice
from histcode.mil.bags import iter_bag_chunks
from histcode.mil.inference import predict_file
from histcode.mil.model import load_mil

def status(key):
    return int(re.search(key + r":\s+(\d+)", open("/proc/self/status").read()).group(1)) / 1024

m = load_mil(sys.argv[2])
m.predict_stream(islice(iter_bag_chunks(sys.argv[1], int(sys.argv[4])), 1))  # warm-up: code pages
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
before = status("VmRSS")
predict_file(m, sys.argv[1], chunk_tiles=int(sys.argv[4]))
print(json.dumps(status("VmHWM") - before))
"""


def write_bag(path: Path, n: int, d: int) -> None:
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("features", (n, d), np.float16, chunks=(min(n, 4096), d))
        for s in range(0, n, 8192):
            ds[s : s + 8192] = rng.standard_normal((min(8192, n - s), d), dtype=np.float32)
        f["coords"] = np.zeros((n, 2), np.int32)


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiles", type=int, default=40_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--attn-hidden", type=int, default=256)
    ap.add_argument("--chunk", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    pool = create_pooling("gated_attention", args.dim, hidden=args.hidden, attn_hidden=args.attn_hidden)
    model = MilClassifier(pool).eval()
    res: dict[str, object] = {
        "tiles": args.tiles,
        "dim": args.dim,
        "hidden": args.hidden,
        "attn_hidden": args.attn_hidden,
        "chunk": args.chunk,
        "threads": args.threads,
    }
    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / "bag.h5"
        write_bag(bag, args.tiles, args.dim)
        chunks = list(iter_bag_chunks(bag, args.chunk))
        t_read = best_of(lambda: [None for _ in iter_bag_chunks(bag, args.chunk)])
        t_compute = best_of(lambda: model.predict_stream(chunks))
        t_stream = best_of(lambda: model.predict_stream(iter_bag_chunks(bag, args.chunk)))
        n = args.tiles
        read, compute, stream = n / t_read, n / t_compute, n / t_stream
        serial = 1 / (1 / read + 1 / compute)
        res.update(
            {
                "read_tiles_per_s": read,
                "compute_tiles_per_s": compute,
                "stream_tiles_per_s": stream,
                "bound": "compute" if compute < read else "read",
                "efficiency_vs_min_bound": stream / min(read, compute),
                "efficiency_vs_serial_bound": stream / serial,
            }
        )
        # training step (one bag of max_train_tiles=4096 tiles, Adam), the unit of CV cost
        model.train()
        opt = torch.optim.Adam(model.parameters(), 1e-4)
        x = chunks[0][:4096]

        def step() -> None:
            loss = F.cross_entropy(model(x), torch.tensor([1]))
            opt.zero_grad()
            loss.backward()
            opt.step()

        res["train_step_s_4096_tiles"] = best_of(step, 5)
        model.eval()
        save_mil(model, Path(tmp) / "model")
        sizes = (max(args.tiles // 4, args.chunk), args.tiles)
        if sizes[0] != args.tiles:
            write_bag(Path(tmp) / f"bag{sizes[0]}.h5", sizes[0], args.dim)
        fixed = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
        for label, env in (("default_malloc", dict(os.environ)), ("fixed_mmap_threshold", fixed)):
            mem = {}
            for n_tiles in sizes:
                path = bag if n_tiles == args.tiles else Path(tmp) / f"bag{n_tiles}.h5"
                cmd = [sys.executable, "-c", _CHILD, str(path), str(Path(tmp) / "model"), str(args.threads),
                       str(args.chunk)]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
                mem[str(n_tiles)] = float(out.stdout.strip().splitlines()[-1])
            res[f"peak_rss_growth_mb_by_tiles_{label}"] = mem
        res["whole_bag_float32_mb"] = args.tiles * args.dim * 4 / 2**20
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
