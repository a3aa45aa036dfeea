"""Fitting the cohort stain reference: a deterministic tile sample spread across the train cohort's slides."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from histcode.io.coords import read_coords
from histcode.io.manifest import read_manifest
from histcode.slides.process_list import read_process_list
from histcode.slides.reader import SlideReader
from histcode.slides.stain import StainNormalizer, create_normalizer


@dataclass(frozen=True)
class TileRef:
    """One sampled tile: slide, level-0 top-left, level-0 side and output px."""

    slide_id: str
    path: str
    x: int
    y: int
    size_level0: int
    tile_px: int


def sample_tiles(tiles_dir: str | Path, slides_csv: str | Path, n: int, seed: int) -> list[TileRef]:
    """Up to ``n`` tiles, about equally many per tiled slide (slides sorted by id), chosen with ``seed``.

    Only slides marked ``done`` in ``process_list.csv`` are used.
    """
    tiles_dir = Path(tiles_dir)
    plist = tiles_dir / "process_list.csv"
    if not plist.exists():
        raise FileNotFoundError(f"{plist}: no process list; run the tile stage for this cohort first.")
    done_ids = sorted(r["slide"] for r in read_process_list(plist) if r["status"] == "done")
    if not done_ids:
        raise ValueError(f"{plist}: no slide was tiled successfully; fix the failures listed there first.")
    manifest = read_manifest(slides_csv, sort=True).set_index("slide_id")
    rng = np.random.default_rng(seed)
    per_slide = math.ceil(n / len(done_ids))
    picked: list[TileRef] = []
    for sid in done_ids:
        coords, attrs = read_coords(tiles_dir / f"{sid}.h5")
        k = min(per_slide, len(coords))
        for idx in np.sort(rng.choice(len(coords), size=k, replace=False)):
            x, y = (int(v) for v in coords[idx])
            picked.append(TileRef(sid, str(manifest.loc[sid, "path"]), x, y, int(attrs["patch_size"]),
                                  int(attrs["tile_px"])))
    if len(picked) > n:
        keep = np.sort(rng.choice(len(picked), size=n, replace=False))
        picked = [picked[i] for i in keep]
    return picked


def read_tiles(refs: list[TileRef]) -> np.ndarray:
    """Read sampled tiles as (N, tile_px, tile_px, 3) uint8 (each slide opened once)."""
    out: list[np.ndarray] = []
    by_slide: dict[str, list[TileRef]] = {}
    for r in refs:
        by_slide.setdefault(r.slide_id, []).append(r)
    for sid in sorted(by_slide):
        group = by_slide[sid]
        with SlideReader(group[0].path, default_mpp=1.0) as slide:  # mpp unused: coords carry sizes
            out.extend(slide.read_tile(r.x, r.y, r.size_level0, r.tile_px) for r in group)
    return np.stack(out) if out else np.zeros((0, 1, 1, 3), np.uint8)


def fit_reference(method: str, tiles_dir: str | Path, slides_csv: str | Path, n: int,
                  seed: int) -> tuple[StainNormalizer, np.ndarray]:
    """Fit the ``method`` normaliser on a cohort sample; returns it and the (N, H, W, 3) tiles used."""
    norm = create_normalizer(method)
    if norm.method == "none":
        return norm, np.zeros((0, 1, 1, 3), np.uint8)
    tiles = read_tiles(sample_tiles(tiles_dir, slides_csv, n, seed))
    return norm.fit(tiles), tiles
