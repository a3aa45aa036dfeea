"""Adipose tissue: where fat lies in normal breast, and the lattice of thin eosin membranes it renders as.

Fat is what tissue detectors miss: an adipocyte is an empty cell 50–150 µm across whose only stain is
its 1–2 µm membrane, so at the segmentation level a fat lobule looks almost like glass. Real normal
breast is 20–70 % fat, much of it at the edge of the section. This module draws both parts:

* :func:`adipose_region` turns a share of a normal slide's stroma (and, less readily, lobules) into the
  ``adipose`` region code, preferring the tissue edge, so the truth masks count fat as tissue.
* :func:`membrane_lattice` places one seed per adipocyte on a jittered hexagonal lattice and keeps the
  Voronoi facets; :meth:`Membranes.block` rasterises the facet borders of one render block
  (anti-aliased, sub-pixel), so fat costs no full-resolution map.

The caller gives each step its own random stream, so adding fat changes nothing else on a slide.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from histcode.io.truth import REGION_CODES
from histcode.synth.layout import Layout, smooth_field

ADIPOSE = REGION_CODES["adipose"]
CELL_DIAMETER_UM = (70.0, 110.0)  # per-slide mean adipocyte size; jitter spreads cells over ~50-150 µm
MEMBRANE_UM = 1.0  # membrane thickness
PATCH_UM = 250.0  # correlation length of the fat field (fat lobules of a few hundred µm)
EDGE_UM = 300.0  # fat prefers the outer ~300 µm of the section
_SHIFT = 4  # fixed-point bits for sub-pixel polylines


def adipose_region(
    rng: np.random.Generator, codes: np.ndarray, fraction: float, cell_um: float
) -> np.ndarray:
    """Boolean grid of the cells that become fat: ``fraction`` of the tissue, taken from stroma and
    normal lobules (lobules only where the field is high), biased towards the tissue edge."""
    tissue = codes > 0
    host = np.isin(codes, (REGION_CODES["stroma"], REGION_CODES["normal_epithelium"]))
    field = smooth_field(rng, codes.shape, PATCH_UM / cell_um)  # always drawn: stream independent of fraction
    if fraction <= 0 or not host.any():
        return np.zeros(codes.shape, bool)
    depth_um = ndimage.distance_transform_edt(np.pad(tissue, 1))[1:-1, 1:-1] * cell_um
    field = field + 1.5 * np.exp(-depth_um / EDGE_UM) - 0.8 * (codes == REGION_CODES["normal_epithelium"])
    n = min(round(fraction * tissue.sum()), int(host.sum()))
    if n <= 0:
        return np.zeros(codes.shape, bool)
    thr = np.partition(field[host], -n)[-n]
    return host & (field >= thr)


def add_adipose(rng: np.random.Generator, layout: Layout, fraction: float, cell_um: float) -> Layout:
    """``layout`` with ``fraction`` of its tissue turned into fat (also under pen ink)."""
    fat = adipose_region(rng, layout.under, fraction, cell_um)
    under = layout.under.copy()
    under[fat] = ADIPOSE
    codes = layout.codes.copy()
    codes[fat & (codes == layout.under)] = ADIPOSE
    return dataclasses.replace(layout, codes=codes, under=under)


@dataclass(frozen=True)
class Membranes:
    """Voronoi facets of the adipocytes (level-0 px, float) and their bounding boxes ``(x0, y0, x1, y1)``."""

    facets: tuple[np.ndarray, ...]
    boxes: np.ndarray
    thickness_px: int

    def block(self, y0: int, x0: int, h: int, w: int) -> np.ndarray:
        """(h, w) float32 membrane coverage in [0, 1] of the level-0 window at ``(y0, x0)``."""
        out = np.zeros((h, w), np.uint8)
        if not self.facets:
            return out.astype(np.float32)
        pad = self.thickness_px + 1
        b = self.boxes
        sel = np.flatnonzero((b[:, 2] >= x0 - pad) & (b[:, 0] < x0 + w + pad) & (b[:, 3] >= y0 - pad)
                             & (b[:, 1] < y0 + h + pad))
        if len(sel):
            off = np.array([x0, y0], np.float64)
            pts = [np.round((self.facets[i] - off) * (1 << _SHIFT)).astype(np.int32) for i in sel]
            cv2.polylines(out, pts, True, 255, self.thickness_px, cv2.LINE_AA, _SHIFT)
        return out.astype(np.float32) * np.float32(1 / 255)


def membrane_lattice(
    rng: np.random.Generator, fat: np.ndarray, *, cell_px: int, mpp: float, width: int, height: int
) -> Membranes:
    """Adipocyte membranes covering the grid cells ``fat`` (and a margin, so borders blend)."""
    thickness = max(1, round(MEMBRANE_UM / mpp))
    diameter_px = float(rng.uniform(*CELL_DIAMETER_UM)) / mpp
    spacing = diameter_px * 0.93  # hexagonal cell of this spacing has about the drawn area
    rows = np.arange(-spacing, height + spacing, spacing * np.sqrt(3) / 2)
    cols = np.arange(-spacing, width + 2 * spacing, spacing)
    yy, xx = np.meshgrid(rows, cols, indexing="ij")
    xx = xx + (np.arange(len(rows))[:, None] % 2) * spacing / 2
    pts = np.stack([xx.ravel(), yy.ravel()], 1) + rng.normal(0, 0.22 * spacing, (xx.size, 2))
    keep = rng.uniform(size=len(pts)) > 0.12  # dropped seeds merge neighbours into larger cells
    if not fat.any():
        return Membranes((), np.zeros((0, 4)), thickness)
    margin = int(np.ceil(2 * spacing / cell_px)) + 1
    near = ndimage.binary_dilation(fat, iterations=margin)
    gy = np.clip((pts[:, 1] // cell_px).astype(int), 0, fat.shape[0] - 1)
    gx = np.clip((pts[:, 0] // cell_px).astype(int), 0, fat.shape[1] - 1)
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < width) & (pts[:, 1] >= 0) & (pts[:, 1] < height)
    pts = pts[keep & inside & near[gy, gx]]
    if len(pts) < 3:
        return Membranes((), np.zeros((0, 4)), thickness)
    subdiv = cv2.Subdiv2D((0, 0, width, height))
    subdiv.insert([(float(x), float(y)) for x, y in pts])
    facets, _ = subdiv.getVoronoiFacetList([])
    limit = 3 * spacing  # unbounded facets of the outermost seeds lie outside the fat: drop them
    kept = []
    for f in facets:
        f = np.asarray(f, np.float64)
        if len(f) >= 3 and np.ptp(f[:, 0]) < limit and np.ptp(f[:, 1]) < limit:
            kept.append(f)
    boxes = np.array([[f[:, 0].min(), f[:, 1].min(), f[:, 0].max(), f[:, 1].max()] for f in kept]).reshape(-1, 4)
    return Membranes(tuple(kept), boxes, thickness)
