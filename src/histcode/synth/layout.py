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

from histcode.io.truth import ARTEFACT_BITS, REGION_CODES

TISSUE_CODES = (1, 2, 3, 4, 5, 8)
# The lymphocytic infiltrate is patchy in real tumours (inflamed vs excluded areas, lymphoid aggregates): dense
# infiltrates are blobs of a smooth field with a correlation length of about one to two 128 µm tiles.
INFLAMED_SIGMA_UM = 120.0


# Share of the tumour envelope that tumour cells take, per architecture, at a typical tumour fraction: the
# envelope grows so the tumour area still hits the planted tumour fraction.
ARCH_SHARE: dict[str, float] = {"solid": 0.86, "nests": 0.55, "glands": 0.6, "cords": 0.5, "single_files": 0.4}


@dataclass(frozen=True)
class Layout:
    """``codes``: final (gh, gw) uint8 map; ``under``: codes beneath pen ink (for rendering);
    ``angle``: (gh, gw) fibre orientation in radians; ``lumen``: gland lumens inside tumour (bool, region
    code stays tumour); ``artefacts``: uint8 bit map (``ARTEFACT_BITS``) of folds, bubbles, out-of-focus;
    ``bed``: the tumour bed (bool; empty on normal slides)."""

    codes: np.ndarray
    under: np.ndarray
    angle: np.ndarray
    lumen: np.ndarray | None = None
    artefacts: np.ndarray | None = None
    bed: np.ndarray | None = None


@dataclass(frozen=True)
class Artefacts:
    """Which slide-level artefacts a slide carries."""

    pen: bool = False
    tear: bool = False
    fold: bool = False
    bubble: bool = False
    out_of_focus: bool = False


@dataclass(frozen=True)
class Architecture:
    """Tumour growth pattern (``ARCH_SHARE`` keys) and the clustering of its infiltrate/aggregates."""

    pattern: str = "solid"
    infiltrate_sigma_um: float = INFLAMED_SIGMA_UM
    aggregate_radius_um: tuple[float, float] = (20.0, 50.0)
    fibre_wave: float = 6.0


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


def inflamed_zones(
    rng: np.random.Generator, within: np.ndarray, fraction: float, cell_um: float, sigma_um: float = INFLAMED_SIGMA_UM
) -> np.ndarray:
    """Blobs covering ``fraction`` of ``within``: the top of a smooth random field (always drawn, so the
    generator's random stream does not depend on the fraction)."""
    field = smooth_field(rng, within.shape, sigma_um / cell_um)
    return _top_fraction(field, within, fraction)


def _ink_rings(rng: np.random.Generator, tissue: np.ndarray, n: int, cell_um: float) -> np.ndarray:
    """``n`` closed ink rings (radius 150-400 µm, line 60-120 µm) centred on the tissue: (H, W) bool."""
    ink = np.zeros(tissue.shape, np.uint8)
    if not tissue.any():
        return ink.astype(bool)
    inner = ndimage.binary_erosion(tissue, iterations=max(1, int(150 / cell_um)))
    cells = np.argwhere(inner if inner.any() else tissue)
    for _ in range(n):
        y, x = cells[rng.integers(len(cells))]
        r = rng.uniform(150, 400) / cell_um
        axes = (int(r * rng.uniform(0.8, 1.2)), int(r * rng.uniform(0.8, 1.2)))
        width = max(2, int(rng.uniform(60, 120) / cell_um))
        cv2.ellipse(ink, (int(x), int(y)), axes, float(rng.uniform(0, 180)), 0, 360, 1, width)
    return ink.astype(bool)


def _disks(shape: tuple[int, int], centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    for (y, x), r in zip(centres, radii, strict=True):
        cv2.circle(out, (int(x), int(y)), max(1, int(r)), 1, -1)
    return out.astype(bool)


def _tumour_pattern(
    rng: np.random.Generator, env: np.ndarray, pattern: str, inside: float, cell_um: float
) -> tuple[np.ndarray, np.ndarray]:
    """(tumour, lumen) cells inside the envelope ``env``: ``inside`` of it in the given growth pattern.

    solid: sheets cut by thin desmoplastic strands; nests: islands 50-120 µm in stroma; glands: nests with a
    central lumen (lumens count as tumour); cords / single files: a network of ridges, thinner for single
    files. ``inside`` is capped by the envelope (at most 95 % of the tissue), so at very high tumour
    fractions nests merge and single files thicken into cords.
    """
    shape = env.shape
    strands = smooth_field(rng, shape, 1.1)
    nest = smooth_field(rng, shape, float(rng.uniform(18, 35)) / cell_um)
    ridge = -np.abs(smooth_field(rng, shape, float(rng.uniform(20, 45)) / cell_um))
    lumen = np.zeros(shape, bool)
    if pattern == "solid":
        tum = _top_fraction(-strands, env, min(inside, 0.97))
    elif pattern == "nests":
        tum = _top_fraction(nest, env, inside)
    elif pattern == "glands":
        tum, lumen = _glands(rng, env, inside, cell_um)
    else:  # cords and single files: the same ridges, thinner for single files (a wider envelope)
        tum = _top_fraction(ridge, env, inside)
    return tum, lumen


def _glands(
    rng: np.random.Generator, env: np.ndarray, inside: float, cell_um: float
) -> tuple[np.ndarray, np.ndarray]:
    """Tubules: round glands (radius 25-60 µm) on a jittered lattice in the envelope, each a ring of tumour
    epithelium around a lumen; where ``inside`` asks for more tumour than glands cover, solid nests fill in."""
    radius = float(rng.uniform(25, 60)) / cell_um
    spacing = 2.3 * radius
    gh, gw = env.shape
    gy, gx = np.mgrid[0 : int(gh / (0.866 * spacing)) + 2, 0 : int(gw / spacing) + 2].astype(float)
    cy = (gy * 0.866 * spacing + rng.normal(0, 0.12 * spacing, gy.shape)).ravel()
    cx = ((gx + 0.5 * (gy % 2)) * spacing + rng.normal(0, 0.12 * spacing, gx.shape)).ravel()
    r = radius * rng.uniform(0.7, 1.15, cy.size)
    keep_u = rng.uniform(size=cy.size)
    fill = smooth_field(rng, env.shape, 3.0)
    ok = (cy >= 0) & (cy < gh) & (cx >= 0) & (cx < gw)
    ok[ok] &= env[cy[ok].astype(int), cx[ok].astype(int)]
    cover = np.pi * radius**2 / (0.866 * spacing**2)  # share of the envelope a full lattice of glands covers
    ok &= keep_u < min(1.0, inside / cover)
    glands = _disks(env.shape, np.stack([cy[ok], cx[ok]], 1), r[ok]) & env
    lumen = _disks(env.shape, np.stack([cy[ok], cx[ok]], 1), np.maximum(1.0, 0.5 * r[ok] - 0.5)) & glands
    missing = inside * env.sum() - glands.sum()
    if missing > 0:  # more tumour than the glands hold: solid nests between them
        rest = env & ~ndimage.binary_dilation(glands)
        glands |= _top_fraction(fill, rest, missing / max(rest.sum(), 1))
    return glands, lumen


def _fold(rng: np.random.Generator, tissue: np.ndarray, cell_um: float) -> np.ndarray:
    """A tissue fold: a curved band 80-300 µm wide across the section, where the tissue lies double."""
    gh, gw = tissue.shape
    t = np.linspace(0, 1, 24)
    ang = rng.uniform(0, np.pi)
    c = np.array([gw, gh]) * rng.uniform(0.3, 0.7, 2)
    length = max(gh, gw) * rng.uniform(0.4, 0.9)
    bend = rng.normal(0, 0.12) * length
    d, n = np.array([np.cos(ang), np.sin(ang)]), np.array([-np.sin(ang), np.cos(ang)])
    pts = c + (t[:, None] - 0.5) * length * d + (4 * t * (1 - t))[:, None] * bend * n
    out = np.zeros(tissue.shape, np.uint8)
    width = max(2, int(rng.uniform(80, 300) / cell_um))
    cv2.polylines(out, [np.round(pts).astype(np.int32)], False, 1, width)
    return out.astype(bool) & tissue


def _bubble(rng: np.random.Generator, shape: tuple[int, int], cell_um: float) -> np.ndarray:
    """An air bubble under the coverslip: a disk 150-500 µm in radius, anywhere on the slide."""
    gh, gw = shape
    r = max(3.0, rng.uniform(150, 500) / cell_um)
    return _disks(shape, np.array([[rng.uniform(0, gh), rng.uniform(0, gw)]]), np.array([r]))


def _out_of_focus(rng: np.random.Generator, tissue: np.ndarray, cell_um: float) -> np.ndarray:
    """Out-of-focus patches: smooth blobs (300-800 µm) over 8-25 % of the tissue."""
    field = smooth_field(rng, tissue.shape, float(rng.uniform(150, 400)) / cell_um)
    return _top_fraction(field, tissue, float(rng.uniform(0.08, 0.25)))


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
    arch: Architecture | None = None,
    artefacts: Artefacts | None = None,
    pen_rings: int = 0,
) -> Layout:
    """Region map for one slide. ``lymph_clusters_per_mm2`` counts small round aggregates per mm² of tumour
    (tumour slides) or of tissue (normal slides); ``inflamed_fraction`` is the share of the tumour and the
    stroma around it (tumour slides) or of the tissue (normal slides) taken over by dense lymphocytic
    infiltrates (``lymphocyte_dense``). ``arch`` sets the growth pattern and clustering; ``artefacts`` the
    slide-level artefacts (``pen``/``blank`` are the pen mark and the tear); ``pen_rings`` closed ink rings
    drawn over the tissue of a pen slide, as pathologists circle regions (none in the demo)."""
    arch = arch or Architecture()
    art = artefacts or Artefacts()
    codes = np.zeros(shape, np.uint8)
    tissue = _tissue(rng, shape, tissue_fill)
    codes[tissue] = REGION_CODES["stroma"]
    mm2_per_cell = (cell_um / 1000.0) ** 2
    tum = np.zeros(shape, bool)
    lumen = np.zeros(shape, bool)
    env = np.zeros(shape, bool)
    if tumour:
        share = ARCH_SHARE[arch.pattern]
        env_frac = min(0.95, tumour_fraction / share)
        env = _top_fraction(smooth_field(rng, shape, min(shape) / 11), tissue, env_frac)
        tum, lumen = _tumour_pattern(rng, env, arch.pattern, tumour_fraction / max(env_frac, 1e-6), cell_um)
        codes[tum] = REGION_CODES["tumour"]
        interior = ndimage.binary_erosion(env, iterations=3)
        nec = _top_fraction(
            smooth_field(rng, shape, 3.0), interior, necrosis_fraction * tum.sum() / max(interior.sum(), 1)
        )
        codes[nec] = REGION_CODES["necrosis"]
        tum &= ~nec
        lumen &= ~nec
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
    inflamed = inflamed_zones(rng, host_inf, inflamed_fraction, cell_um, arch.infiltrate_sigma_um)
    codes[inflamed] = REGION_CODES["lymphocyte_dense"]
    if n_clusters and host.any():
        cells = np.argwhere(host)
        centres = cells[rng.integers(0, len(cells), n_clusters)]
        radii = rng.uniform(*arch.aggregate_radius_um, n_clusters) / cell_um  # small TLS
        agg = _disks(shape, centres, radii) & tissue & (codes != REGION_CODES["necrosis"])
        codes[agg] = REGION_CODES["lymphocyte_dense"]
    lumen &= codes == REGION_CODES["tumour"]
    if blank and tissue.any():
        inner = ndimage.binary_erosion(tissue, iterations=6)
        cells = np.argwhere(inner if inner.any() else tissue)
        y, x = cells[rng.integers(len(cells))]
        r = rng.uniform(40, 110) / cell_um
        tear = _disks(shape, np.array([[y, x]]), np.array([r]))
        tear &= smooth_field(rng, shape, 1.5) > -0.6
        codes[tear & tissue] = REGION_CODES["blank"]
        lumen &= ~tear
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
    if pen and pen_rings > 0:  # a stream of their own: without rings the slide's randomness is unchanged
        codes[_ink_rings(np.random.default_rng(rng.integers(0, 2**63)), tissue, pen_rings, cell_um)] = \
            REGION_CODES["pen_mark"]
    angle = np.pi * (0.5 + 0.5 * np.tanh(smooth_field(rng, shape, arch.fibre_wave)))
    bits = np.zeros(shape, np.uint8)
    art_rng = np.random.default_rng(rng.integers(0, 2**63))  # artefacts never shift the rest of the stream
    for name, on, draw in (
        ("fold", art.fold, lambda: _fold(art_rng, tissue, cell_um)),
        ("bubble", art.bubble, lambda: _bubble(art_rng, shape, cell_um)),
        ("out_of_focus", art.out_of_focus, lambda: _out_of_focus(art_rng, tissue, cell_um)),
    ):
        if on:
            bits[draw()] |= ARTEFACT_BITS[name]
    bed = env & np.isin(under, TISSUE_CODES)
    return Layout(codes=codes, under=under, angle=angle.astype(np.float32), lumen=lumen, artefacts=bits, bed=bed)
