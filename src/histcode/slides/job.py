"""Tiling of one slide: resolve µm/px → segment tissue → select grid tiles → write coords .h5 + mask PNG.

The coords file is written last, so its presence (with a matching ``tile_config_digest``) marks the slide
complete for resume. ``run_slide`` never raises: any error becomes a ``failed`` result with its reason.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from histcode import __version__
from histcode.config import to_dict
from histcode.io.coords import CoordsError, read_coords, write_coords
from histcode.slides.config import TileConfig
from histcode.slides.grid import contour_grid_tiles, select_tiles, tile_size_level0
from histcode.slides.mask import TissueMask, segment_tissue
from histcode.slides.notes import DAMAGED_PREFIX
from histcode.slides.reader import MAX_LEVEL_PIXELS, SlideError, SlideReader
from histcode.slides.render import render_mask, write_png

SEG_MAX_REFINE = 4  # small slides segment at most 4x finer than seg_downsample
CLAM_SEG_DOWNSAMPLE = 64.0  # CLAM segments the level closest to this level-0 downsample
AREA_UNIT_PX = 512  # a_t / a_h unit: one 512x512 tile at the target resolution (CLAM's ref_patch_size)


@dataclasses.dataclass(frozen=True)
class SlideResult:
    """One row of ``process_list.csv``."""

    slide: str
    status: str  # done | failed
    n_tiles: int
    reason: str = ""
    mpp: float | None = None
    mpp_source: str = ""
    tile_size_level0: int | None = None
    tissue_area_mm2: float | None = None
    seconds: float = 0.0  # wall time of this run (not written to process_list: it is not reproducible)

    def row(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("seconds")
        return d


def seg_downsample(cfg: TileConfig, longest_target_px: float) -> float:
    """Segmentation downsample relative to the target resolution: ``seg_downsample`` (CLAM's 64x), lowered
    for small slides to keep ``seg_min_px`` px on the longer side, but never below a quarter of it
    (16x = 8 µm/px at 0.5 µm/px), where single nuclei would start to read as dark ink or holes."""
    fine = max(cfg.seg_downsample / SEG_MAX_REFINE, 1.0)
    return float(min(cfg.seg_downsample, max(fine, longest_target_px / cfg.seg_min_px)))


def level0_per_target_px(slide: SlideReader, cfg: TileConfig) -> tuple[int, float]:
    """(level-0 px of one tile, level-0 px per target px) at the slide's µm/px."""
    size = tile_size_level0(cfg.tile_px, cfg.target_mpp, slide.mpp, snap=cfg.mpp_snap)
    return size, size / cfg.tile_px


def seg_read_downsample(slide: SlideReader, cfg: TileConfig, ratio: float) -> float:
    """Level-0 downsample of the segmentation read. ``seg_level: clam``: the level CLAM picks (closest to
    64x), unless it has over ``MAX_LEVEL_PIXELS`` (a large single-level slide, which CLAM would read
    whole) and is then read shrunk to 64x; ``auto``: :func:`seg_downsample` at the target scale (``ratio``
    level-0 px per target px)."""
    if cfg.seg_level == "clam":
        level = slide.best_level(CLAM_SEG_DOWNSAMPLE)
        lw, lh = slide.level_dimensions[level]
        return float(slide.level_downsamples[level]) if lw * lh <= MAX_LEVEL_PIXELS else CLAM_SEG_DOWNSAMPLE
    return seg_downsample(cfg, max(slide.dimensions) / ratio) * ratio


def tiling_modules() -> list[Path]:
    """This module and the ``histcode.slides`` modules it imports, directly or not: the code that shapes coords
    and masks. Derived from the imports, so a new mask module is covered and an edit to e.g. the tile
    dataset is not (it would re-tile every slide and rerun every later stage for nothing)."""
    here = Path(__file__).parent
    todo, seen = [Path(__file__)], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if name.startswith("histcode.slides."):
                    parts = name.split(".")[2:]
                    todo.extend(p for p in (here.joinpath(*parts).with_suffix(".py"),
                                            here.joinpath(*parts, "__init__.py")) if p.exists())
    return sorted(seen)


def code_of(path: Path) -> str:
    """A module's syntax tree without its docstrings: what the code does, not how it is written or documented
    (comments, layout and docstrings are not in it), so an edit to the prose does not re-tile a cohort."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
                    first.value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def fingerprint_modules(paths: list[Path]) -> str:
    """Hash of the code (:func:`code_of`) of ``paths``, by file name."""
    h = hashlib.md5()
    for path in paths:
        h.update(path.name.encode() + b"\0" + code_of(path).encode())
    return h.hexdigest()[:16]


@functools.cache
def code_fingerprint() -> str:
    """Hash of the tiling code (:func:`tiling_modules`). Part of the digest, so a slide tiled by other code is
    tiled again: with settings alone, ``dvc repro`` after a change to the tissue model resumed every slide
    from its old coords and reported the stage done (the demo kept tiles of an older mask). Docstrings,
    comments and layout are not part of it: after an edit to them alone ``dvc repro`` reruns the stage, which
    resumes every slide, and the stages after it see the same tiles."""
    return fingerprint_modules(tiling_modules())


def config_digest(cfg: TileConfig) -> str:
    """Hash of every setting that changes the outputs (``workers`` excluded) and of the code that makes them."""
    d = to_dict(cfg)
    d.pop("workers", None)
    d["code"] = code_fingerprint()
    return hashlib.md5(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def output_paths(out_dir: Path, slide_id: str) -> tuple[Path, Path]:
    """(coords .h5, mask PNG) of a slide, laid out as ``Paths.coords_h5``/``Paths.mask_png``."""
    return out_dir / f"{slide_id}.h5", out_dir / "masks" / f"{slide_id}.png"


def completed(out_dir: Path, slide_id: str, digest: str) -> SlideResult | None:
    """The result recorded in an existing, complete output for the same config, else None."""
    h5, png = output_paths(out_dir, slide_id)
    if not (h5.exists() and png.exists()):
        return None
    try:
        coords, attrs = read_coords(h5)
    except CoordsError:
        return None
    if attrs.get("tile_config_digest") != digest:
        return None
    note = str(attrs.get("unreadable_note") or "")
    return SlideResult(slide=slide_id, status="done", n_tiles=len(coords), reason=note, mpp=attrs["slide_mpp"],
                       mpp_source=str(attrs.get("mpp_source") or ""), tile_size_level0=attrs["patch_size"],
                       tissue_area_mm2=attrs.get("tissue_area_mm2"))


def remove_stale_temps(out_dir: Path, slide_id: str) -> None:
    """Delete temp files a killed run left for this slide (atomic writes leave only ``.<name>.*.tmp``)."""
    for folder, name in ((out_dir, f"{slide_id}.h5"), (out_dir / "masks", f"{slide_id}.png")):
        if folder.is_dir():
            for tmp in folder.glob(f".{name}.*.tmp"):
                tmp.unlink(missing_ok=True)


@dataclasses.dataclass(frozen=True)
class Segmentation:
    """A slide's tissue mask and tile size: ``image`` (h, w, 3) uint8 RGB at ``tissue.downsample``."""

    tissue: TissueMask
    image: np.ndarray
    size: int  # level-0 px per tile
    # (h, w) bool: pixels with no image data, never scanned (transparent) or unreadable at every level (inpainted in
    # ``image``), and the pixel around them; kept out of segmentation's statistics and of the tissue area
    unknown: np.ndarray | None = None
    damaged: np.ndarray | None = None  # (h, w) bool: the unreadable part of ``unknown`` (red in the QC picture)


def segment_slide(slide: SlideReader, cfg: TileConfig) -> Segmentation:
    """Resolve the tile size at ``cfg.target_mpp`` and segment tissue on a low-resolution read."""
    mpp = slide.mpp
    size, ratio = level0_per_target_px(slide, cfg)  # segmentation is defined at target scale
    width, height = slide.dimensions
    if width < size or height < size:
        raise SlideError(f"{slide.path}: slide is {width}x{height} px, smaller than one tile "
                         f"({size} level-0 px at {mpp:.3f} µm/px); lower tile.tile_px or drop the slide.")
    seg_rgb, seg_ds, nodata = slide.read_downsampled_masked(seg_read_downsample(slide, cfg, ratio))
    unknown = damaged = None
    if nodata is not None:  # never scanned (transparent) or unreadable: white that is not the slide's glass
        unknown = cv2.dilate(nodata.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)  # and the blend
    if slide.unreadable:
        damaged = unreadable_pixels(seg_rgb.shape[:2], slide.unreadable, seg_ds)
        seg_rgb = fill_unreadable(seg_rgb, damaged)
        unknown = damaged if unknown is None else unknown | damaged
    unit = AREA_UNIT_PX * (ratio if cfg.area_units == "target" else 1.0)
    tissue = segment_tissue(seg_rgb, seg_ds, cfg, area_unit_px=unit**2, seg_um=seg_ds * mpp, unknown=unknown)
    return Segmentation(tissue=tissue, image=seg_rgb, size=size, unknown=unknown, damaged=damaged)


def unreadable_pixels(shape: tuple[int, ...], rects: list[tuple[int, int, int, int]], seg_ds: float) -> np.ndarray:
    """(h, w) bool: the segmentation pixels that the level-0 ``rects`` touch, one more on each side for the blend
    of white into their neighbours when the read was shrunk (INTER_AREA)."""
    h, w = shape[:2]
    unknown = np.zeros((h, w), bool)
    for x, y, bw, bh in rects:
        x0, y0 = max(0, int(x // seg_ds) - 1), max(0, int(y // seg_ds) - 1)
        x1, y1 = min(w, -int(-(x + bw) // seg_ds) + 1), min(h, -int(-(y + bh) // seg_ds) + 1)
        unknown[y0:y1, x0:x1] = True
    return unknown


def fill_unreadable(seg_rgb: np.ndarray, unknown: np.ndarray) -> np.ndarray:
    """The segmentation image with the pixels no level could decode inpainted from their surroundings (Telea).

    The reader leaves them white; inpainted, a block inside tissue does not cut the tissue's outline (a hole or a
    split contour). Segmentation also keeps them out of its slide-wide statistics (``Segmentation.unknown``), the
    tissue area leaves them out, and tiles over them are dropped (``drop_unreadable``): what is there is unknown."""
    return cv2.inpaint(np.ascontiguousarray(seg_rgb), unknown.astype(np.uint8), 3, cv2.INPAINT_TELEA)


def select_coords(seg: Segmentation, width: int, height: int, cfg: TileConfig) -> np.ndarray:
    """(K, 2) int32 level-0 coords of the kept tiles (slide grid or CLAM's per-contour grids)."""
    t = seg.tissue
    if cfg.grid_origin == "contour":
        coords, _ = contour_grid_tiles(t.contours, t.holes, t.hole_owner, t.mask, t.downsample, seg.size,
                                       threshold=cfg.tissue_threshold, rule=cfg.tissue_rule)
    else:
        coords, _ = select_tiles(t.mask, t.downsample, width, height, seg.size,
                                 threshold=cfg.tissue_threshold, rule=cfg.tissue_rule, edges=cfg.edge_tiles)
    return coords


def tile_slide(path: str | Path, slide_id: str, out_dir: str | Path, cfg: TileConfig, *,
               mpp_override: float | None = None, default_mpp: float | None = None) -> SlideResult:
    """Tile one slide and write its outputs; raises ``SlideError`` for bad input (see ``run_slide``)."""
    out_dir = Path(out_dir)
    h5_path, png_path = output_paths(out_dir, slide_id)
    with SlideReader(path, mpp_override=mpp_override, default_mpp=default_mpp) as slide:
        seg = segment_slide(slide, cfg)
        tissue, size, seg_ds = seg.tissue, seg.size, seg.tissue.downsample
        width, height = slide.dimensions
        coords = select_coords(seg, width, height, cfg)
        mpp, mpp_source, path_str = slide.mpp, slide.mpp_source, str(slide.path)
        lost, cause = np.asarray(slide.unreadable, np.int64).reshape(-1, 4), slide.unreadable_cause
    coords, note = drop_unreadable(coords, size, lost, mpp, cause)
    readable = tissue.mask if seg.unknown is None else tissue.mask & ~seg.unknown
    tissue_mm2 = float(readable.sum()) * (seg_ds * mpp) ** 2 / 1e6
    out_dir.mkdir(parents=True, exist_ok=True)
    write_png(png_path, render_mask(seg.image, tissue, coords, size, title=slide_id, max_px=cfg.mask_png_max_px,
                                    unreadable=seg.damaged))
    if len(coords) == 0:
        raise SlideError(f"{path_str}: no tissue found (tissue area {tissue_mm2:.3f} mm², threshold "
                         f"{tissue.threshold:.0f} on saturation, no {cfg.tile_px}px tile reaches tissue "
                         f"fraction {cfg.tissue_threshold}); check the mask PNG {png_path} — lower "
                         "tile.tissue_threshold or a_t if tissue is missed, else drop the slide.")
    attrs = {
        "patch_size": int(size), "patch_level": 0, "downsample": [1.0, 1.0],
        "level_dim": [int(width), int(height)], "downsampled_level_dim": [int(width), int(height)],
        "name": slide_id, "target_mpp": float(cfg.target_mpp), "tile_px": int(cfg.tile_px),
        "slide_mpp": float(mpp), "mpp_source": mpp_source, "tissue_threshold": float(cfg.tissue_threshold),
        "tissue_rule": cfg.tissue_rule, "seg_downsample": float(seg_ds), "tissue_area_mm2": tissue_mm2,
        "histcode_version": __version__, "tile_config_digest": config_digest(cfg),
    }
    if note:  # only damaged slides carry these, so every other slide's file is as before
        attrs.update({"unreadable_regions": lost.tolist(), "unreadable_note": note})
    write_coords(h5_path, coords, attrs)
    return SlideResult(slide=slide_id, status="done", n_tiles=len(coords), reason=note, mpp=float(mpp),
                       mpp_source=mpp_source, tile_size_level0=int(size), tissue_area_mm2=tissue_mm2)


def drop_unreadable(coords: np.ndarray, size: int, lost: np.ndarray, mpp: float,
                    cause: str) -> tuple[np.ndarray, str]:
    """Coords without the tiles that overlap a region no pyramid level could decode (their reads would fail at
    extraction), and the note for ``process_list.csv`` ("" when the slide read whole)."""
    if len(lost) == 0:
        return coords, ""
    x, y = coords[:, :1].astype(np.int64), coords[:, 1:].astype(np.int64)
    hit = ((x < lost[:, 0] + lost[:, 2]) & (lost[:, 0] < x + size)
           & (y < lost[:, 1] + lost[:, 3]) & (lost[:, 1] < y + size)).any(axis=1)
    area_mm2 = float((lost[:, 2] * lost[:, 3]).sum()) * mpp**2 / 1e6
    x0, y0, w0, h0 = (int(v) for v in lost[0])
    note = (f"{DAMAGED_PREFIX}{len(lost)} region(s) unreadable at every pyramid level ({area_mm2:.3f} mm², first at "
            f"x={x0} y={y0} {w0}x{h0} level-0 px; {cause}), drawn red in the mask PNG; {int(hit.sum())} "
            "tiles over them dropped; re-download the slide to recover them")
    return coords[~hit], note


def run_slide(path: str, slide_id: str, out_dir: str, cfg: TileConfig, mpp_override: float | None,
              default_mpp: float | None) -> SlideResult:
    """``tile_slide`` for a worker process: every exception becomes a ``failed`` result with its reason."""
    cv2.setNumThreads(1)  # slides run in parallel processes; one thread each avoids oversubscription
    t0 = time.perf_counter()
    remove_stale_temps(Path(out_dir), slide_id)
    try:
        res = tile_slide(path, slide_id, out_dir, cfg, mpp_override=mpp_override, default_mpp=default_mpp)
    except Exception as exc:
        reason = str(exc) if isinstance(exc, SlideError) else f"{path}: {type(exc).__name__}: {exc}"
        res = SlideResult(slide=slide_id, status="failed", n_tiles=0, reason=reason)
    return dataclasses.replace(res, seconds=time.perf_counter() - t0)


def tile_area_mm2(n_tiles: int, size: int | None, mpp: float | None) -> float:
    return float(n_tiles * (size or 0) ** 2 * (mpp or 0.0) ** 2 / 1e6)
