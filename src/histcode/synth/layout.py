"""Slide layout: the region map (one integer code per grid cell) that the renderer paints and the
ground truth stores.

The grid has a fixed cell size in µm (``mask_downsample`` × 0.5 µm), so 20x and 40x slides of the same
tissue share one map. Regions come from thresholded smooth random fields, with thresholds chosen from
quantiles so that tissue fill, tumour fraction and necrosis hit their planted values.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

# Region codes of the ground-truth masks (documented in docs/synthetic_cohort.md).
REGION_CODES: dict[str, int] = {
    "background": 0,
    "stroma": 1,
    "normal_epithelium": 2,
    "tumour": 3,
    "lymphocyte_dense": 4,
    "necrosis": 5,
    "pen_mark": 6,
    "blank": 7,
    "adipose": 8,
}
REGION_DESCRIPTIONS: dict[str, str] = {
    "background": "glass outside the tissue",
    "stroma": "fibrous stroma with sparse elongated fibroblast nuclei (incl. desmoplastic strands in tumour)",
    "normal_epithelium": "normal lobules: glands with lumens lined by small regular epithelial nuclei",
    "tumour": "invasive tumour: sheets of large pleomorphic hyperchromatic nuclei",
    "lymphocyte_dense": "lymphocyte aggregate: dense small dark round nuclei",
    "necrosis": "necrosis: pale granular eosin with nuclear debris and ghost nuclei",
    "pen_mark": "ink of a pen mark (over glass or tissue)",
    "blank": "artefact: tissue tear inside the section, bare glass",
    "adipose": "fat: empty adipocytes (50-150 µm) outlined by thin eosin membranes (normal breast, often at the edge)",
}
TISSUE_CODES = (1, 2, 3, 4, 5, 8)
# The lymphocytic infiltrate is patchy in real tumours (inflamed vs excluded areas, lymphoid aggregates): dense
# infiltrates are blobs of a smooth field with a correlation length of about one to two 128 µm tiles.
INFLAMED_SIGMA_UM = 120.0


@dataclass(frozen=True)
class Layout:
    """``codes``: final (gh, gw) uint8 map; ``under``: codes beneath pen ink (for rendering);
    ``angle``: (gh, gw) fibre orientation in radians."""

    codes: np.ndarray
    under: np.ndarray
    angle: np.ndarray


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian random field with correlation length ``sigma`` cells."""
    f = cv2.GaussianBlur(
        rng.standard_normal(shape).astype(np.float32), (0, 0), max(sigma, 0.3), borderType=cv2.BORDER_REFLECT
    )
    return (f - f.mean()) / (f.std() + 1e-6)


def _top_fraction(field: np.ndarray, within: np.ndarray, frac: float) -> np.ndarray:
    """Cells of ``within`` holding the highest ``frac`` of ``field`` values."""
    if frac <= 0 or not within.any():
        return np.zeros_like(within)
    thr = np.quantile(field[within], 1 - min(frac, 1.0))
    return within & (field >= thr)


def _tissue(rng: np.random.Generator, shape: tuple[int, int], fill: float) -> np.ndarray:
    gh, gw = shape
    yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
    cy, cx = gh / 2 + rng.normal(0, gh * 0.04), gw / 2 + rng.normal(0, gw * 0.04)
    prior = 1 - ((yy - cy) / (gh * 0.62)) ** 2 - ((xx - cx) / (gw * 0.62)) ** 2
    field = (
        2.2 * prior + 0.7 * smooth_field(rng, shape, min(gh, gw) / 9) + 0.25 * smooth_field(rng, shape, 2.5)
    )
    edge = max(2, int(min(gh, gw) * 0.02))
    field[:edge], field[-edge:], field[:, :edge], field[:, -edge:] = -9, -9, -9, -9
    tissue = _top_fraction(field, np.ones(shape, bool), fill)
    tissue = ndimage.binary_fill_holes(tissue)
    labels, n = ndimage.label(tissue)
    if n > 1:  # drop specks; keep fragments of at least 2% of the tissue
        sizes = ndimage.sum(tissue, labels, range(1, n + 1))
        tissue = np.isin(labels, 1 + np.flatnonzero(sizes >= 0.02 * sizes.sum()))
    return tissue


def inflamed_zones(rng: np.random.Generator, within: np.ndarray, fraction: float, cell_um: float) -> np.ndarray:
    """Blobs covering ``fraction`` of ``within``: the top of a smooth random field (always drawn, so the
    generator's random stream does not depend on the fraction)."""
    field = smooth_field(rng, within.shape, INFLAMED_SIGMA_UM / cell_um)
    return _top_fraction(field, within, fraction)


def _disks(shape: tuple[int, int], centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    for (y, x), r in zip(centres, radii, strict=True):
        cv2.circle(out, (int(x), int(y)), max(1, int(r)), 1, -1)
    return out.astype(bool)


def make_layout(
    rng: np.random.Generator,
    shape: tuple[int, int],
    *,
    tumour: bool,
    tumour_fraction: float,
    necrosis_fraction: float,
    lymph_clusters_per_mm2: float,
    cell_um: float,
    tissue_fill: float,
    pen: bool,
    blank: bool,
    inflamed_fraction: float = 0.0,
) -> Layout:
    """Region map for one slide. ``lymph_clusters_per_mm2`` counts small round aggregates per mm² of tumour
    (tumour slides) or of tissue (normal slides); ``inflamed_fraction`` is the share of the tumour and the
    stroma around it (tumour slides) or of the tissue (normal slides) taken over by dense lymphocytic
    infiltrates (``lymphocyte_dense``)."""
    codes = np.zeros(shape, np.uint8)
    tissue = _tissue(rng, shape, tissue_fill)
    codes[tissue] = REGION_CODES["stroma"]
    mm2_per_cell = (cell_um / 1000.0) ** 2
    tum = np.zeros(shape, bool)
    if tumour:
        tum = _top_fraction(smooth_field(rng, shape, min(shape) / 11), tissue, tumour_fraction)
        strands = _top_fraction(smooth_field(rng, shape, 1.1), tum, 0.14)  # desmoplastic stroma in nests
        tum &= ~strands
        codes[tum] = REGION_CODES["tumour"]
        interior = ndimage.binary_erosion(tum, iterations=3)
        nec = _top_fraction(
            smooth_field(rng, shape, 3.0), interior, necrosis_fraction * tum.sum() / max(interior.sum(), 1)
        )
        codes[nec] = REGION_CODES["necrosis"]
    rest = tissue & ~tum & (codes != REGION_CODES["necrosis"])
    lobules = _top_fraction(smooth_field(rng, shape, 4.0), rest, 0.16 if tumour else 0.45)
    codes[lobules] = REGION_CODES["normal_epithelium"]
    # Lymphocyte aggregates: at the tumour edge/inside tumour for tumour slides, anywhere in normal tissue.
    host = (ndimage.binary_dilation(tum, iterations=3) & tissue) if tumour else rest
    area_mm2 = (tum.sum() if tumour else tissue.sum()) * mm2_per_cell
    n_clusters = int(rng.poisson(lymph_clusters_per_mm2 * area_mm2))
    # tumour slides: in the tumour and its rim; normal slides: anywhere (lymphocytic lobulitis), so that an
    # infiltrate alone does not tell tumour from normal
    host_inf = ndimage.binary_dilation(tum, iterations=4) & tissue if tumour else tissue.copy()
    host_inf &= codes != REGION_CODES["necrosis"]
    inflamed = inflamed_zones(rng, host_inf, inflamed_fraction, cell_um)
    codes[inflamed] = REGION_CODES["lymphocyte_dense"]
    if n_clusters and host.any():
        cells = np.argwhere(host)
        centres = cells[rng.integers(0, len(cells), n_clusters)]
        radii = rng.uniform(20, 50, n_clusters) / cell_um  # 40-100 µm aggregates (small TLS)
        agg = _disks(shape, centres, radii) & tissue & (codes != REGION_CODES["necrosis"])
        codes[agg] = REGION_CODES["lymphocyte_dense"]
    if blank and tissue.any():
        inner = ndimage.binary_erosion(tissue, iterations=6)
        cells = np.argwhere(inner if inner.any() else tissue)
        y, x = cells[rng.integers(len(cells))]
        r = rng.uniform(40, 110) / cell_um
        tear = _disks(shape, np.array([[y, x]]), np.array([r]))
        tear &= smooth_field(rng, shape, 1.5) > -0.6
        codes[tear & tissue] = REGION_CODES["blank"]
    under = codes.copy()
    if pen:  # an arc of a circle drawn around the tissue, as pathologists mark regions
        gh, gw = shape
        centre = (int(gw * rng.uniform(0.4, 0.6)), int(gh * rng.uniform(0.4, 0.6)))
        axes = (int(gw * rng.uniform(0.42, 0.5)), int(gh * rng.uniform(0.42, 0.5)))
        start = rng.uniform(0, 360)
        width = max(2, int(min(rng.uniform(40, 120) / cell_um, 0.035 * min(shape))))
        ink = np.zeros(shape, np.uint8)
        span = rng.uniform(50, 140)
        cv2.ellipse(ink, centre, axes, float(rng.uniform(0, 180)), start, start + span, 1, width)
        codes[ink.astype(bool)] = REGION_CODES["pen_mark"]
    angle = np.pi * (0.5 + 0.5 * np.tanh(smooth_field(rng, shape, 6.0)))
    return Layout(codes=codes, under=under, angle=angle.astype(np.float32))
