"""Synthetic cohort generation time (issue 2: the demo cohort in under 60 s on 2 cores) and tile counts.

Generates the params.yaml ``synth`` cohort into a temp folder with ``--workers`` processes, reports wall
time, parent+children CPU time (the honest number on a shared CPU), slides per second, and per slide the
number of 256 px tissue tiles at 0.5 µm/px (>= 50 % tissue in the ground-truth mask).

    python benchmarks/bench_synth.py [--params params.yaml] [--workers 2] [--out results/bench_synth.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from histcode.atomic import write_json
from histcode.io import truth
from histcode.synth import SynthConfig, generate
from histcode.synth.layout import TISSUE_CODES

ROOT = Path(__file__).resolve().parents[1]


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def tissue_tiles(gt: Path) -> dict[str, int]:
    """256 px @ 0.5 µm/px tiles with at least half their area in tissue codes, per slide."""
    out = {}
    for r in truth.read_slide_truth(gt).itertuples():
        mask, ds = truth.read_region_mask(gt, r.cohort, r.slide_id)
        patch = round(256 * 0.5 / r.mpp)
        ys, xs = np.mgrid[0 : r.height - patch + 1 : patch, 0 : r.width - patch + 1 : patch]
        coords = np.stack([xs.ravel(), ys.ravel()], axis=1)
        frac = truth.tile_region_fractions(mask, ds, coords, patch)
        out[f"{r.cohort}/{r.slide_id}"] = int((frac[:, list(TISSUE_CODES)].sum(axis=1) >= 0.5).sum())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_synth.json")
    args = parser.parse_args()
    cfg = dataclasses.replace(SynthConfig.from_params(args.params), workers=args.workers, progress=False)
    with tempfile.TemporaryDirectory(prefix="bench_synth_") as tmp:
        cpu0, t0 = _cpu_seconds(), time.perf_counter()
        generate(cfg, Path(tmp))
        wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
        tiles = tissue_tiles(Path(tmp) / "ground_truth")
        size_mb = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file()) / 2**20
    counts = np.array(list(tiles.values()))
    result = {
        "n_slides": len(tiles), "workers": args.workers, "cpu_count": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0], "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "slides_per_s": round(len(tiles) / wall, 3), "output_mb": round(size_mb, 1),
        "tissue_tiles_min": int(counts.min()), "tissue_tiles_median": float(np.median(counts)),
        "tissue_tiles_max": int(counts.max()), "slides_below_150_tiles": int((counts < 150).sum()),
        "config": {k: str(v) for k, v in dataclasses.asdict(cfg).items()},
    }
    write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "config"}, indent=2))


if __name__ == "__main__":
    main()
