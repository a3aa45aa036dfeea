"""Tiling throughput: time per slide vs slide area (must scale linearly or better) and the read bounds.

Writes synthetic pyramidal JPEG TIFFs of growing size (procedural tissue, no big arrays in memory),
times ``tile_slide`` on one core, and measures the ``read_region`` bound for 256 px tiles on one core
(raw OpenSlide vs ``SlideReader.read_tile``) on the real CMU-1 slide and the synthetic slides.

    python benchmarks/bench_tiling.py [--sizes 2048 4096 8192] [--out benchmarks/results/bench_tiling.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import tifffile

from histcode.atomic import write_json
from histcode.slides.config import TileConfig
from histcode.slides.job import tile_slide
from histcode.slides.reader import SlideReader

TILE = 512
CMU1 = Path(__file__).resolve().parents[1] / "tests" / "data" / "CMU-1-Small-Region.svs"


def _layout(side: int, seed: int) -> np.ndarray:
    """Low-resolution (side/64) tissue field in [0, 1]: a few blobs covering about 40% of the slide."""
    rng = np.random.default_rng(seed)
    n = max(8, side // 64)
    field = cv2.GaussianBlur(rng.random((n, n)).astype(np.float32), (0, 0), n / 10)
    return (field > np.quantile(field, 0.6)).astype(np.float32)


def _tiles(side: int, ds: int, layout: np.ndarray, rng: np.random.Generator):
    """Yield TILE x TILE RGB tiles of the level with downsample ``ds`` (row-major)."""
    lv = -(-side // ds)
    big = cv2.resize(layout, (lv, lv), interpolation=cv2.INTER_LINEAR)
    pink, glass = np.array([215, 140, 190], np.float32), np.array([242, 242, 244], np.float32)
    for y in range(0, lv, TILE):
        for x in range(0, lv, TILE):
            m = np.zeros((TILE, TILE), np.float32)
            sub = big[y:y + TILE, x:x + TILE]
            m[:sub.shape[0], :sub.shape[1]] = sub
            noise = rng.normal(0, 12, (TILE, TILE, 1)).astype(np.float32)
            tile = m[..., None] * (pink + noise) + (1 - m[..., None]) * glass
            yield np.clip(tile, 0, 255).astype(np.uint8)


def write_slide(path: Path, side: int, seed: int = 0) -> None:
    """A side x side 20x slide (0.5 µm/px), JPEG tiles, pyramid downsamples 1, 4, 16 (like Aperio)."""
    layout = _layout(side, seed)
    rng = np.random.default_rng(seed)
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        for i, ds in enumerate((1, 4, 16)):
            lv = -(-side // ds)
            res = 1e4 / (0.5 * ds)
            tw.write(_tiles(side, ds, layout, rng), shape=(lv, lv, 3), dtype=np.uint8, tile=(TILE, TILE),
                     photometric="rgb", compression="jpeg", compressionargs={"level": 85},
                     resolution=(res, res), resolutionunit="CENTIMETER", subfiletype=1 if i else 0,
                     metadata=None)


def read_bound(path: Path, n: int, seed: int = 0) -> dict[str, float]:
    """256 px level-0 tiles per second on one core: raw OpenSlide read_region vs SlideReader.read_tile."""
    import openslide

    with SlideReader(path) as s:
        w, h = s.dimensions
    rng = np.random.default_rng(seed)
    xy = np.stack([rng.integers(0, w - 256, n), rng.integers(0, h - 256, n)], 1).tolist()
    osr = openslide.OpenSlide(str(path))
    t0 = time.perf_counter()
    for x, y in xy:
        np.asarray(osr.read_region((x, y), 0, (256, 256)))
    raw = n / (time.perf_counter() - t0)
    osr.close()
    with SlideReader(path) as s:
        t0 = time.perf_counter()
        for x, y in xy:
            s.read_tile(x, y, 256, 256)
        ours = n / (time.perf_counter() - t0)
    return {"raw_read_region_tiles_per_s": raw, "read_tile_tiles_per_s": ours, "read_tile_vs_bound": ours / raw}


@contextlib.contextmanager
def seg_read_timer() -> Iterator[list[float]]:
    """Within the block, the seconds of every whole-slide low-resolution read (``SlideReader.read_downsampled_masked``,
    which segmentation calls; ``read_downsampled`` wraps it) are appended to the yielded list: the decode bound of
    tiling. Callers clear the list per slide and must find it non-empty (else the tiler reads another way)."""
    orig, seconds = SlideReader.read_downsampled_masked, []

    def timed(self: SlideReader, downsample: float) -> tuple[np.ndarray, float, np.ndarray | None]:
        t0 = time.perf_counter()
        out = orig(self, downsample)
        seconds.append(time.perf_counter() - t0)
        return out

    SlideReader.read_downsampled_masked = timed  # type: ignore[method-assign]
    try:
        yield seconds
    finally:
        SlideReader.read_downsampled_masked = orig  # type: ignore[method-assign]


NO_READ = ("tiling made no read_downsampled_masked call to time; update seg_read_timer to the reader method "
           "segmentation uses")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096, 8192])
    ap.add_argument("--reads", type=int, default=300)
    ap.add_argument("--out", default="benchmarks/results/bench_tiling.json")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cfg = TileConfig()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, seg_read_timer() as read_seconds:
        for side in args.sizes:
            path = Path(tmp) / f"s{side}.tiff"
            write_slide(path, side)
            read_seconds.clear()
            t0 = time.perf_counter()
            res = tile_slide(path, f"s{side}", Path(tmp) / "out", cfg)
            sec = time.perf_counter() - t0
            if not read_seconds:
                raise SystemExit(NO_READ)
            seg_read = sum(read_seconds)  # the bound: decoding the low-resolution reads tiling needs
            mpx = side * side / 1e6
            rows.append({"side_px": side, "area_mpx": mpx, "area_mm2": mpx * 0.25, "seconds": sec,
                         "ms_per_mpx": 1000 * sec / mpx, "n_tiles": res.n_tiles,
                         "read_seconds": seg_read, "tiling_vs_read_bound": seg_read / sec})
            print(json.dumps(rows[-1]))
        if len(rows) >= 2:
            a = np.log([r["area_mpx"] for r in rows])
            t = np.log([r["seconds"] for r in rows])
            slope = float(np.polyfit(a, t, 1)[0])
        else:
            slope = math.nan
        reads = {"cmu1_svs_jpeg": read_bound(CMU1, args.reads),
                 "synthetic_tiff_jpeg": read_bound(Path(tmp) / f"s{args.sizes[-1]}.tiff", args.reads)}
    result = {"per_slide": rows, "time_vs_area_loglog_slope": slope, "linear_or_better": slope <= 1.1,
              "read_bound_one_core_256px": reads, "cpu_count": os.cpu_count(),
              "load_avg_1min": os.getloadavg()[0]}
    print(json.dumps(result, indent=2))
    write_json(args.out, result)


if __name__ == "__main__":
    main()
