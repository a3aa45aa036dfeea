"""Heatmap of a 100k × 80k px slide: wall time and peak RSS of ``render_slide`` (issue 18 item 4).

Writes (once) a pyramidal JPEG TIFF of W × H px at 0.25 µm/px (40×, downsamples 1, 4, 16 like Aperio) from
pre-encoded JPEG tiles (tissue/glass after a blob layout, so writing takes seconds, not the hours of encoding
8 Gpx), its coords file (512 px level-0 tiles on the tissue, i.e. 256 px at 20×) and an attention file with
one score per tile; then runs the heatmap in a fresh process under ``/usr/bin/time -v`` so the peak RSS
includes every import (the point: attention readers and heatmaps never import torch).

    python benchmarks/bench_heatmap.py [--width 100000 --height 80000] [--out benchmarks/results/bench_heatmap.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import tifffile

TILE = 512
PATCH = 512  # level-0 px per MIL tile (256 px at 20x on a 40x scan)


def _layout(w: int, h: int, seed: int) -> np.ndarray:
    """Tissue field on a (h/TILE, w/TILE) grid: blobs covering ~40% of the slide."""
    rng = np.random.default_rng(seed)
    gw, gh = -(-w // TILE), -(-h // TILE)
    field = cv2.GaussianBlur(rng.random((gh, gw)).astype(np.float32), (0, 0), max(gw, gh) / 12)
    return field > np.quantile(field, 0.6)


def _jpeg(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return buf.tobytes()


def write_slide(path: Path, w: int, h: int, seed: int = 0) -> np.ndarray:
    """Write the pyramid; returns the level-0 tissue layout (grid of TILE px cells)."""
    layout = _layout(w, h, seed)
    rng = np.random.default_rng(seed)
    pink = np.clip(np.array([215, 140, 190]) + rng.normal(0, 12, (TILE, TILE, 3)), 0, 255).astype(np.uint8)
    glass = np.full((TILE, TILE, 3), 242, np.uint8)
    tiles = {True: _jpeg(pink), False: _jpeg(glass)}

    def level_tiles(ds: int, gw: int, gh: int):
        """Level-0 tiles are pre-encoded pink/glass; a tile of a coarser level shows its ds × ds level-0 cells."""
        cell = TILE // ds
        for y in range(gh):
            for x in range(gw):
                cells = np.zeros((ds, ds), bool)
                sub = layout[y * ds:(y + 1) * ds, x * ds:(x + 1) * ds]
                cells[:sub.shape[0], :sub.shape[1]] = sub
                if ds == 1 or cells.all() or not cells.any():
                    yield tiles[bool(cells.any())]
                else:
                    m = np.kron(cells, np.ones((cell, cell), bool))[..., None]
                    yield _jpeg(np.where(m, pink, glass))

    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        for i, ds in enumerate((1, 4, 16)):
            lw, lh = -(-w // ds), -(-h // ds)
            gw, gh = -(-lw // TILE), -(-lh // TILE)
            res = 1e4 / (0.25 * ds)
            tw.write(level_tiles(ds, gw, gh), shape=(lh, lw, 3),
                     dtype=np.uint8, tile=(TILE, TILE), photometric="rgb", compression="jpeg",
                     resolution=(res, res), resolutionunit="CENTIMETER", subfiletype=1 if i else 0, metadata=None)
    return layout


def write_inputs(root: Path, w: int, h: int) -> dict[str, Path]:
    from histcode.io.coords import write_coords

    root.mkdir(parents=True, exist_ok=True)
    slide, coords_h5, attn_h5 = root / "big.tiff", root / "big_coords.h5", root / "big_attention.h5"
    layout = write_slide(slide, w, h) if not slide.exists() else _layout(w, h, 0)
    ys, xs = np.nonzero(layout)
    coords = np.stack([xs, ys], 1).astype(np.int32) * TILE
    coords = coords[(coords[:, 0] + PATCH <= w) & (coords[:, 1] + PATCH <= h)]
    write_coords(coords_h5, coords, {"patch_size": PATCH, "patch_level": 0, "target_mpp": 0.5, "tile_px": 256,
                                     "slide_mpp": 0.25, "downsample": [1.0, 1.0], "level_dim": [w, h]})
    raw = np.random.default_rng(1).normal(size=len(coords)).astype(np.float32)
    wts = np.exp(raw - raw.max())
    with h5py.File(attn_h5, "w") as f:
        f.create_dataset("coords", data=coords)
        f.create_dataset("attention_raw", data=raw)
        f.create_dataset("attention", data=(wts / wts.sum()).astype(np.float32))
    return {"slide": slide, "coords": coords_h5, "attention": attn_h5, "n_tiles": len(coords)}


CHILD = """
import sys, time
t0 = time.perf_counter()
from histcode.heatmaps.config import HeatmapConfig
from histcode.heatmaps.slide import render_slide
render_slide(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], HeatmapConfig(), title="100k x 80k synthetic")
print("SECONDS", time.perf_counter() - t0, "TORCH", "torch" in sys.modules)
"""


def measure(inputs: dict, out_dir: Path) -> dict[str, float]:
    cmd = ["/usr/bin/time", "-v", sys.executable, "-c", CHILD, str(inputs["slide"]), str(inputs["attention"]),
           str(inputs["coords"]), str(out_dir)]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "MPLBACKEND": "Agg"})
    wall = time.perf_counter() - t0
    if res.returncode:
        raise RuntimeError(res.stderr[-2000:])
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", res.stderr).group(1))
    inner = re.search(r"SECONDS ([\d.]+) TORCH (\w+)", res.stdout)
    cpu = sum(float(re.search(rf"{k} time \(seconds\): ([\d.]+)", res.stderr).group(1)) for k in ("User", "System"))
    return {"wall_s": round(wall, 2), "in_process_s": round(float(inner.group(1)), 2), "cpu_s": round(cpu, 2),
            "peak_rss_mb": round(rss_kb / 1024, 1), "torch_imported": inner.group(2) == "True"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=100_000)
    ap.add_argument("--height", type=int, default=80_000)
    ap.add_argument("--root", type=Path, default=Path("/tmp/histcode_bench_heatmap"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_heatmap.json"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    inputs = write_inputs(args.root, args.width, args.height)
    print(f"inputs ready in {time.perf_counter() - t0:.1f}s: {inputs['n_tiles']} tiles, "
          f"{inputs['slide'].stat().st_size / 2**20:.0f} MiB slide")
    runs = [measure(inputs, args.root / f"out{i}") for i in range(args.repeats)]
    for r in runs:
        print(r)
    summary = {"slide_px": [args.width, args.height], "n_tiles": inputs["n_tiles"], "runs": runs,
               "median_wall_s": float(np.median([r["wall_s"] for r in runs])),
               "median_peak_rss_mb": float(np.median([r["peak_rss_mb"] for r in runs])),
               "median_cpu_s": float(np.median([r["cpu_s"] for r in runs])), "load_avg_1min": os.getloadavg()[0]}
    from histcode.atomic import write_json

    write_json(args.out, summary)
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}))


if __name__ == "__main__":
    main()
