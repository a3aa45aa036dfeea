"""Tile reads through the stored tiles (``slides/stored_tiles.py``) against OpenSlide's region reads, same slides,
same process, interleaved.

For each slide set: every coords tile is read with ``SlideReader.read_tile`` twice, once as the loaders read (a
tile-sized region goes through the stored tiles, each decoded by libjpeg-turbo in strict mode) and once through
OpenSlide's region read only, in alternating passes; reports ms a tile (median pass), the ratio, and that the
pixels are identical. Run after ``make demo`` (it reads data/); CMU-1 (tests/data) stands for TCGA's 240-px SVS
tiles under a 256-px grid.

    python benchmarks/bench_tile_reads.py --out benchmarks/results/bench_tile_reads.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import h5py
import numpy as np

from histcode.slides import stored_tiles
from histcode.slides.reader import SlideReader

ROOT = Path(__file__).resolve().parents[1]


def _coords(cohort: str, n_slides: int) -> list[tuple[Path, np.ndarray, int]]:
    """(slide path, level-0 coords, patch size) of the cohort's first ``n_slides`` slides."""
    import csv

    with open(ROOT / "data" / "manifests" / cohort / "slides.csv") as fh:
        rows = list(csv.DictReader(fh))[:n_slides]
    out = []
    for r in rows:
        with h5py.File(ROOT / "data" / "tiles" / cohort / f"{r['slide_id']}.h5") as f:
            path = Path(r["path"]) if Path(r["path"]).is_absolute() else ROOT / r["path"]
            out.append((path, f["coords"][:], int(f["coords"].attrs["patch_size"])))
    return out


def _grid(path: Path, side: int) -> list[tuple[Path, np.ndarray, int]]:
    with SlideReader(path) as s:
        w, h = s.dimensions
    xy = np.array([(x, y) for y in range(0, h - side, side) for x in range(0, w - side, side)])
    return [(path, xy, side)]


def _pass(slides: list[tuple[Path, np.ndarray, int]], px: int, stored: bool) -> tuple[float, list[np.ndarray]]:
    stored_tiles._CACHE = stored_tiles._TileCache(stored_tiles.CACHE_BYTES)  # each pass starts cold
    stored_tiles._cached.cache_clear()
    tiles, t0 = [], time.perf_counter()
    for path, xy, side in slides:
        with SlideReader(path) as s:
            if not stored:
                s._stored = None
            tiles += [s.read_tile(int(x), int(y), side, px) for x, y in xy]
    return (time.perf_counter() - t0) / len(tiles) * 1e3, tiles


def measure(name: str, slides: list[tuple[Path, np.ndarray, int]], px: int, passes: int) -> dict[str, float]:
    fast, plain, same = [], [], True
    for _ in range(passes):
        ms, a = _pass(slides, px, stored=True)
        fast.append(ms)
        ms, b = _pass(slides, px, stored=False)
        plain.append(ms)
        same &= all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    row = {"tiles": len(a), "stored_ms": statistics.median(fast), "openslide_ms": statistics.median(plain),
           "identical": same}
    row["speedup"] = row["openslide_ms"] / row["stored_ms"]
    print(f"{name:<40} {row['tiles']:>6} tiles  stored {row['stored_ms']:.3f} ms  OpenSlide "
          f"{row['openslide_ms']:.3f} ms  x{row['speedup']:.2f}  identical {same}", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slides", type=int, default=8, help="slides per demo cohort")
    ap.add_argument("--px", type=int, default=128, help="tile size returned (the demo's extract.input_px)")
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_tile_reads.json")
    args = ap.parse_args()
    results = {
        "tcga_synth (generic TIFF / SVS, 256-px tiles)": measure("tcga_synth", _coords("tcga_synth", args.slides),
                                                                 args.px, args.passes),
        "cptac_synth (512-px tiles: crops)": measure("cptac_synth", _coords("cptac_synth", args.slides), args.px,
                                                     args.passes),
        "CMU-1 SVS (240-px tiles, 256-px grid: stitched)": measure(
            "CMU-1", _grid(ROOT / "tests" / "data" / "CMU-1-Small-Region.svs", 256), args.px, args.passes),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"px": args.px, "passes": args.passes, "results": results}, indent=2) + "\n")
    print(f"→ {args.out}")


if __name__ == "__main__":
    main()
