"""Stain-normalisation throughput (tiles/s) of the batched torch normalisers, against a bound.

Bound: the two transcendental passes every Macenko implementation needs per pixel (log for optical
density, exp to re-render) on the same batch; ``ratio_to_bound`` = bound time / normaliser time. When
``torchstain`` is importable (not a project dependency: ``pip install --target DIR torchstain`` and put
DIR on PYTHONPATH) its per-tile Macenko runs on the same tiles for comparison.

    python benchmarks/bench_stain.py [--batch 64] [--px 256] [--threads 1] [--out benchmarks/results/bench_stain.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from histcode.atomic import write_json
from histcode.slides.stain import MacenkoNormalizer, ReinhardNormalizer

TILE = Path(__file__).resolve().parents[1] / "tests" / "data" / "CRC-VAL-HE-7K-NORM-TCGA-YLVCMEHK.tif"


def make_batch(batch: int, px: int, seed: int = 0) -> torch.Tensor:
    """(B, 3, px, px) float in [0, 1]: crops of a real H&E tile, flipped/rotated, intensity-jittered."""
    rgb = cv2.cvtColor(cv2.imread(str(TILE)), cv2.COLOR_BGR2RGB)
    rgb = cv2.resize(rgb, (px, px), interpolation=cv2.INTER_LINEAR)
    rng = np.random.default_rng(seed)
    tiles = []
    for _ in range(batch):
        t = np.rot90(rgb, int(rng.integers(4)))
        t = np.clip(t.astype(np.float32) * rng.uniform(0.85, 1.1, 3), 0, 255)
        tiles.append(t)
    return torch.from_numpy(np.stack(tiles)).permute(0, 3, 1, 2).contiguous() / 255.0


def timeit(fn, repeats: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--px", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/bench_stain.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x = make_batch(args.batch, args.px)
    ref = (x[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    bound = timeit(lambda: torch.exp(-torch.log(x * 255.0 + 1.0)), args.repeats)
    out: dict[str, object] = {"batch": args.batch, "px": args.px, "threads": args.threads,
                              "bound_tiles_per_s": args.batch / bound, "load_avg_1min": os.getloadavg()[0]}
    for name, norm in (("macenko", MacenkoNormalizer().fit(ref)), ("reinhard", ReinhardNormalizer().fit(ref))):
        sec = timeit(lambda n=norm: n.transform_batch(x), args.repeats)
        out[name] = {"tiles_per_s": args.batch / sec, "ratio_to_bound": bound / sec}
    try:
        from torchstain.torch.normalizers import TorchMacenkoNormalizer
    except ImportError:
        out["torchstain_macenko"] = "not installed"
    else:
        ts = TorchMacenkoNormalizer()
        ts.fit(torch.from_numpy(ref).permute(2, 0, 1))
        u8 = (x * 255).round().to(torch.uint8)
        sec = timeit(lambda: [ts.normalize(t, stains=False) for t in u8], args.repeats)
        out["torchstain_macenko"] = {"tiles_per_s": args.batch / sec, "ratio_to_bound": bound / sec}
    print(json.dumps(out, indent=2))
    write_json(args.out, out)


if __name__ == "__main__":
    main()
