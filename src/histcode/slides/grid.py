"""Tile grid at a target resolution and per-tile tissue fraction from a low-resolution mask."""

from __future__ import annotations

import math

import numpy as np


def tile_size_level0(tile_px: int, target_mpp: float, slide_mpp: float, *, snap: float = 0.05) -> int:
    """Level-0 pixels covered by one ``tile_px`` tile at ``target_mpp`` on a slide scanned at ``slide_mpp``.

    A ratio within ``snap`` (relative) of a power of two is snapped to it: a 0.499 µm/px scan gives
    exactly 256 px for 256 px at 0.5 µm/px (no resampling), a 0.25 µm/px (40x) scan gives 512.
    """
    if tile_px <= 0 or target_mpp <= 0 or slide_mpp <= 0:
        raise ValueError(f"tile_size_level0: need positive sizes, got tile_px={tile_px}, "
                         f"target_mpp={target_mpp}, slide_mpp={slide_mpp}")
    ratio = target_mpp / slide_mpp
    if snap > 0:
        p2 = 2.0 ** round(math.log2(ratio))
        if abs(ratio - p2) / p2 <= snap:
            ratio = p2
    return max(1, round(tile_px * ratio))


def grid_coords(width: int, height: int, size: int, *, edges: bool = False) -> np.ndarray:
    """Top-left (x, y) of every non-overlapping ``size`` tile lying fully inside a width x height slide, and with
    ``edges`` also of the partial tiles of the last column and row (they reach past the slide's border).

    Returns (N, 2) int32 in row-major order (y, then x), the order tiles are stored in.
    """
    xs = np.arange(0, width if edges else max(0, width - size + 1), size, dtype=np.int64)
    ys = np.arange(0, height if edges else max(0, height - size + 1), size, dtype=np.int64)
    gy, gx = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.int32)


def _integral_at(integral: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Area integral of the mask over [0, u] x [0, v] (mask px, fractional) by bilinear interpolation of
    the (h+1, w+1) summed-area table (exact for a piecewise-constant mask)."""
    h, w = integral.shape[0] - 1, integral.shape[1] - 1
    u = np.clip(u, 0.0, w)
    v = np.clip(v, 0.0, h)
    i0 = np.minimum(np.floor(u).astype(np.int64), max(w - 1, 0))
    j0 = np.minimum(np.floor(v).astype(np.int64), max(h - 1, 0))
    fu, fv = u - i0, v - j0
    i1, j1 = np.minimum(i0 + 1, w), np.minimum(j0 + 1, h)
    return (integral[j0, i0] * (1 - fu) * (1 - fv) + integral[j0, i1] * fu * (1 - fv)
            + integral[j1, i0] * (1 - fu) * fv + integral[j1, i1] * fu * fv)


def tissue_fractions(mask: np.ndarray, downsample: float, coords: np.ndarray, size: int) -> np.ndarray:
    """Fraction of each level-0 tile (coords (N, 2), side ``size``) covered by the (h, w) bool mask whose
    pixels are ``downsample`` level-0 px wide; area-weighted, so tiles need not align with mask pixels."""
    if len(coords) == 0:
        return np.zeros(0, np.float64)
    integral = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), np.float64)
    integral[1:, 1:] = np.cumsum(np.cumsum(mask.astype(np.float64), axis=0), axis=1)
    x0 = coords[:, 0].astype(np.float64) / downsample
    y0 = coords[:, 1].astype(np.float64) / downsample
    x1, y1 = x0 + size / downsample, y0 + size / downsample
    inside = (_integral_at(integral, x1, y1) - _integral_at(integral, x0, y1)
              - _integral_at(integral, x1, y0) + _integral_at(integral, x0, y0))
    return np.clip(inside / ((x1 - x0) * (y1 - y0)), 0.0, 1.0)


def four_point(mask: np.ndarray, downsample: float, coords: np.ndarray, size: int) -> np.ndarray:
    """CLAM's ``four_pt`` rule: keep a tile if any of the points centre ± size/4 lies on tissue. (N,) bool."""
    if len(coords) == 0:
        return np.zeros(0, bool)
    h, w = mask.shape
    keep = np.zeros(len(coords), bool)
    centre = coords.astype(np.float64) + size / 2.0
    for dx in (-size / 4.0, size / 4.0):
        for dy in (-size / 4.0, size / 4.0):
            i = np.clip(((centre[:, 0] + dx) / downsample).astype(np.int64), 0, w - 1)
            j = np.clip(((centre[:, 1] + dy) / downsample).astype(np.int64), 0, h - 1)
            keep |= mask[j, i]
    return keep


def select_tiles(mask: np.ndarray, downsample: float, width: int, height: int, size: int, *,
                 threshold: float, rule: str = "fraction", edges: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Grid tiles kept on tissue: ((K, 2) int32 coords, (K,) tissue fractions).

    rule ``fraction`` keeps tiles with tissue fraction >= ``threshold`` (and > 0); ``four_point`` uses
    CLAM's four-point test instead. ``edges``: the partial border tiles too (``grid_coords``); the fraction is
    of the whole tile, so the part past the border counts as glass.
    """
    coords = grid_coords(width, height, size, edges=edges)
    frac = tissue_fractions(mask, downsample, coords, size)
    if rule == "fraction":
        keep = (frac >= threshold) & (frac > 0)
    elif rule == "four_point":
        keep = four_point(mask, downsample, coords, size)
    else:
        raise ValueError(f"unknown tissue_rule {rule!r}; valid: ['fraction', 'four_point']")
    return coords[keep], frac[keep]


def _lookup(raster: np.ndarray, downsample: float, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """raster value at level-0 points (outside the raster: False)."""
    h, w = raster.shape
    i = np.floor(xs / downsample).astype(np.int64)
    j = np.floor(ys / downsample).astype(np.int64)
    ok = (i >= 0) & (i < w) & (j >= 0) & (j < h)
    out = np.zeros(len(xs), bool)
    out[ok] = raster[j[ok], i[ok]]
    return out


def contour_grid_tiles(contours: list[np.ndarray], holes: list[np.ndarray], hole_owner: list[int],
                       mask: np.ndarray, downsample: float, size: int, *, threshold: float,
                       rule: str = "four_point") -> tuple[np.ndarray, np.ndarray]:
    """CLAM's tile grids (``process_contour`` with ``use_padding``): one grid per tissue piece, starting at
    its level-0 bounding box, extending up to one tile past it. ``four_point`` is CLAM's ``four_pt`` test
    against the piece (any of centre ± size/4 inside) with the centre outside the piece's holes;
    ``fraction`` keeps tiles whose mask fraction reaches ``threshold``. Coordinates appearing in several
    pieces' grids are kept once. Returns ((K, 2) int32 coords, (K,) tissue fractions)."""
    import cv2

    found: list[np.ndarray] = []
    for k, cont in enumerate(contours):
        c0 = np.asarray(cont * downsample, np.int32)  # CLAM's scaleContourDim
        x0, y0, w, h = cv2.boundingRect(c0)
        gx, gy = np.meshgrid(np.arange(x0, x0 + w, size), np.arange(y0, y0 + h, size), indexing="ij")
        cand = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.int64)
        if rule == "fraction":
            frac = tissue_fractions(mask, downsample, cand, size)
            found.append(cand[(frac >= threshold) & (frac > 0)])
            continue
        if rule != "four_point":
            raise ValueError(f"unknown tissue_rule {rule!r}; valid: ['fraction', 'four_point']")
        piece = np.zeros(mask.shape, np.uint8)
        cv2.drawContours(piece, [cont], -1, 1, thickness=cv2.FILLED)
        own = [holes[i] for i, o in enumerate(hole_owner) if o == k]
        hole = np.zeros(mask.shape, np.uint8)
        if own:
            cv2.drawContours(hole, own, -1, 1, thickness=cv2.FILLED)
            cv2.drawContours(hole, own, -1, 0, thickness=1)  # CLAM: a hole's boundary is not inside it
        cx, cy = cand[:, 0] + size // 2, cand[:, 1] + size // 2
        shift = int(size // 2 * 0.5)
        inside = np.zeros(len(cand), bool)
        for dx, dy in ((-shift, -shift), (shift, shift), (shift, -shift), (-shift, shift)):
            inside |= _lookup(piece.astype(bool), downsample, cx + dx, cy + dy)
        found.append(cand[inside & ~_lookup(hole.astype(bool), downsample, cx, cy)])
    if not found:
        return np.zeros((0, 2), np.int32), np.zeros(0)
    coords = np.unique(np.concatenate(found), axis=0)
    coords = coords[np.lexsort((coords[:, 0], coords[:, 1]))].astype(np.int32)
    return coords, tissue_fractions(mask, downsample, coords, size)
