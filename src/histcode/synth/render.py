"""Render one slide's level-0 RGB image from its layout, block by block.

Per block (about 1000 px square, so every temporary stays in cache): region properties (eosin and
haematoxylin amounts, texture amplitudes, tissue edge, ink) are upsampled from the region grid and
modulated by periodic textures; nuclei sprites are stamped into the haematoxylin channel; both
channels are blurred by the scanner point spread; Beer-Lambert gives RGB. Blocks overlap the grid by
one cell on each side, so bilinear upsampling and blur stitch seamlessly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from histcode.io.truth import ARTEFACT_BITS
from histcode.io.truth import REGION_CODES as RC
from histcode.synth.adipose import Membranes
from histcode.synth.cells import Biology, Glands, Nuclei, place_glands, place_nuclei
from histcode.synth.layout import Layout
from histcode.synth.sprites import sprite_bank, stamp
from histcode.synth.stain import StainStyle
from histcode.synth.textures import TILE, tiled_bank, window

# Per region code (index = code): eosin base, haematoxylin base, fibre / cell / granule texture amplitude.
#                  bg    stroma epith  tumour lymph necro  pen   blank
E_BASE = np.array([0.00, 0.40, 0.28, 0.22, 0.15, 0.28, 0.00, 0.00], np.float32)
H_BASE = np.array([0.00, 0.10, 0.10, 0.04, 0.05, 0.08, 0.00, 0.00], np.float32)
FIB_AMP = np.array([0.0, 0.50, 0.30, 0.10, 0.00, 0.00, 0.00, 0.00], np.float32)
CELL_AMP = np.array([0.0, 0.10, 0.15, 0.45, 0.20, 0.25, 0.00, 0.00], np.float32)
GRAN_AMP = np.array([0.0, 0.00, 0.00, 0.00, 0.00, 0.55, 0.00, 0.00], np.float32)
TISSUE = np.array([0, 1, 1, 1, 1, 1, 0, 0], np.float32)
GLASS_OD = 0.012
MEMBRANE_E = 0.42  # eosin of an adipocyte membrane (before the scanner blur thins its contrast)
LN10 = math.log(10.0)


@dataclass(frozen=True)
class RenderStats:
    """Counts realised in the image (ground truth for density-type targets)."""

    n_tumour_nuclei: int
    n_lymphocytes: int
    n_lymphocytes_in_tumour: int
    n_glands: int
    lymphocyte_counts: np.ndarray  # (gh, gw) lymphocyte nuclei per region-grid cell (ground truth)
    tumour_counts: np.ndarray  # (gh, gw) tumour nuclei (not ghosts in necrosis) per region-grid cell


def _grid_maps(
    layout: Layout, ink_density: float, style: StainStyle, fibre_amp: float = 1.0
) -> dict[str, np.ndarray]:
    """Per-cell rendering parameters, padded by one cell on every side (edge replicated)."""
    base = np.where(layout.codes == RC["pen_mark"], layout.under, layout.codes)
    fat = base == RC["adipose"]
    base = np.where(fat, RC["stroma"], base)  # fat borders blend into stroma; inside, membranes replace it
    e = (E_BASE * np.asarray(style.region_e, np.float32))[base]
    cos2 = np.cos(2 * layout.angle)
    maps = {
        "e": e,
        "fib0": e * FIB_AMP[base] * fibre_amp * (1 + cos2) / 2,
        "fib90": e * FIB_AMP[base] * fibre_amp * (1 - cos2) / 2,
        "cell": e * CELL_AMP[base],
        "gran": e * GRAN_AMP[base],
        "tissue": TISSUE[base],
        "h": (H_BASE * np.asarray(style.region_h, np.float32))[base],
        "ink": (layout.codes == RC["pen_mark"]) * np.float32(ink_density),
        "fat": fat.astype(np.float32),
    }
    if layout.lumen is not None and layout.lumen.any():
        maps["lumen"] = layout.lumen.astype(np.float32)
    if layout.artefacts is not None and layout.artefacts.any():
        bits = layout.artefacts
        for name, bit in ARTEFACT_BITS.items():
            if (bits & bit).any():
                maps[name] = ((bits & bit) > 0).astype(np.float32)
        if "bubble" in maps:  # the bubble's meniscus: a dark refracting rim
            inside = maps["bubble"].astype(np.uint8)
            maps["rim"] = (inside - cv2.erode(inside, np.ones((3, 3), np.uint8))).astype(np.float32)
    out = {}
    for k, v in maps.items():
        v = cv2.GaussianBlur(v.astype(np.float32), (0, 0), 0.6, borderType=cv2.BORDER_REPLICATE)
        out[k] = cv2.copyMakeBorder(v, 1, 1, 1, 1, cv2.BORDER_REPLICATE)
    return out


def _draw_glands(glands: Glands, shape: tuple[int, int]) -> np.ndarray:
    """uint8 map: 1 = gland epithelium (cytoplasm ring), 2 = lumen."""
    out = np.zeros(shape, np.uint8)
    for cy, cx, a, b, ang in zip(glands.cy, glands.cx, glands.a, glands.b, glands.angle_deg, strict=True):
        centre = (round(cx), round(cy))
        cv2.ellipse(out, centre, (int(a), int(b)), float(ang), 0, 360, 1, -1)
        cv2.ellipse(
            out, centre, (int(a * glands.lumen_frac), int(b * glands.lumen_frac)), float(ang), 0, 360, 2, -1
        )
    return out


def _compose(
    h: np.ndarray,
    e: np.ndarray,
    ink: np.ndarray | None,
    noise: np.ndarray,
    style: StainStyle,
    grey: np.ndarray | None = None,
) -> np.ndarray:
    """Beer-Lambert with fused OpenCV ops: RGB = I0·10^(−(c_H·h + c_E·e + glass + ink + grey)) + noise →
    uint8 (``grey``: neutral optical density, e.g. a bubble's rim)."""
    hv = np.asarray(style.h) * style.h_amount
    ev = np.asarray(style.e) * style.e_amount
    chans = []
    for c in range(3):
        t = cv2.addWeighted(h, -LN10 * hv[c], e, -LN10 * ev[c], -LN10 * GLASS_OD)
        if ink is not None:
            t = cv2.scaleAdd(ink, -LN10 * style.ink[c], t)
        if grey is not None:
            t = cv2.scaleAdd(grey, -LN10, t)
        cv2.exp(t, t)
        t = cv2.addWeighted(t, style.i0[c], noise, style.noise_sd, 0.0)
        chans.append(cv2.convertScaleAbs(t))
    return cv2.merge(chans)


def render_slide(
    layout: Layout,
    *,
    width: int,
    height: int,
    mpp: float,
    cell_px: int,
    style: StainStyle,
    bio: Biology,
    rng: np.random.Generator,
    ink_density: float = 0.8,
    membranes: Membranes | None = None,
) -> tuple[np.ndarray, RenderStats]:
    """(height, width, 3) uint8 RGB level-0 image and realised cell counts. ``membranes``: the adipocyte
    lattice drawn where the layout has fat (without it, fat renders empty)."""
    nuclei = place_nuclei(
        rng,
        layout.codes,
        layout.angle,
        width=width,
        height=height,
        mpp=mpp,
        cell_px=cell_px,
        bio=bio,
        lumen=layout.lumen,
    )
    glands, epi = place_glands(rng, layout.codes, width=width, height=height, mpp=mpp, cell_px=cell_px)
    nuclei["epithelial"] = epi
    gh, gw = layout.codes.shape
    gland_map = cv2.copyMakeBorder(
        _draw_glands(glands, (gh * cell_px, gw * cell_px)),
        cell_px,
        cell_px,
        cell_px,
        cell_px,
        cv2.BORDER_CONSTANT,
        value=0,
    )
    maps = _grid_maps(layout, ink_density, style, bio.fibre_amp)
    mem_e = np.float32(MEMBRANE_E * style.region_e[RC["stroma"]])
    tex = tiled_bank(mpp)
    banks = {k: sprite_bank(k, mpp) for k in nuclei}
    banks["tumour"] = sprite_bank("tumour", mpp, round(bio.nuclear_scale, 2), round(bio.pleomorphism, 2))
    oof_sigma = float(rng.uniform(1.5, 3.0)) / mpp  # out-of-focus point spread
    oy, ox = (int(v) for v in rng.integers(0, TILE, 2))
    sigma = style.blur_um / mpp
    image = np.empty((height, width, 3), np.uint8)
    step = (
        TILE // cell_px - 2
    )  # grid cells per block side, so a block plus its margins fits one texture period
    for g0 in range(0, gh, step):
        g1 = min(gh, g0 + step)
        y_off = (g0 - 1) * cell_px
        band = {
            k: n.rows(y_off - banks[k].shape[1], (g1 + 1) * cell_px + banks[k].shape[1])
            for k, n in nuclei.items()
        }
        for c0 in range(0, gw, step):
            c1 = min(gw, c0 + step)
            x_off = (c0 - 1) * cell_px
            hb, wb = (g1 - g0 + 2) * cell_px, (c1 - c0 + 2) * cell_px
            sub = {k: v[g0 : g1 + 2, c0 : c1 + 2] for k, v in maps.items()}
            up = {
                k: cv2.resize(v, (wb, hb), interpolation=cv2.INTER_LINEAR) for k, v in sub.items() if v.any()
            }
            t = {k: window(v, oy + y_off, ox + x_off, hb, wb) for k, v in tex.items()}
            zero = np.zeros((hb, wb), np.float32)
            e, h = zero.copy(), zero.copy()
            if "tissue" in up:
                ut = up["tissue"]  # ragged only at the border (4·t·(1−t) vanishes inside and outside)
                # clip((ut − 0.5 + 1.8·ut·(1 − ut)·edge)·3 + 0.5, 0, 1), in place: the same float32 steps
                tis = 1.8 * ut
                tis *= 1 - ut
                tis *= t["edge"]
                tis += ut - 0.5
                tis *= 3
                tis += 0.5
                np.clip(tis, 0, 1, out=tis)
                e = up["e"].copy()
                for k in ("fib0", "fib90", "cell", "gran"):
                    if k in up:
                        e += up[k] * t[k]
                np.maximum(e, 0.05 * up["e"], out=e)
                h = up["h"] * (1 + 0.3 * t["cell"])
            else:
                tis = zero
            gl = gland_map[g0 * cell_px : g0 * cell_px + hb, c0 * cell_px : c0 * cell_px + wb]
            if gl.any():
                ring, lumen = gl == 1, gl == 2
                e[ring] = 0.30 * (1 + 0.2 * t["cell"][ring])
                h[ring] = 0.07
                e[lumen] = 0.02
                h[lumen] = 0.0
            if "fat" in up:  # adipocytes: empty cells, eosin only on their membranes
                fat = up["fat"]
                mem = membranes.block(y_off, x_off, hb, wb) if membranes is not None else zero
                e += fat * (mem_e * mem * (1 + 0.2 * t["cell"]) - e)
                h *= 1 - fat
            if "lumen" in up:  # tumour gland lumens: empty
                keep = 1 - np.clip(up["lumen"] * 1.6 - 0.3, 0, 1)
                e = e * keep + 0.02 * (1 - keep)
                h *= keep
            e *= tis
            h *= tis
            for kind, nuc in band.items():
                s = banks[kind].shape[1]
                sel = (nuc.xs >= x_off - s) & (nuc.xs < x_off + wb + s)
                stamp(
                    h,
                    nuc.ys[sel] - y_off,
                    nuc.xs[sel] - x_off,
                    nuc.variants[sel],
                    nuc.weights[sel],
                    banks[kind],
                )
            if "fold" in up:  # the section lies double: about twice the stain
                f = 1 + 0.85 * up["fold"]
                h *= f
                e *= f
            if "bubble" in up:  # under an air bubble the tissue looks paler
                f = 1 - 0.25 * up["bubble"]
                h *= f
                e *= f
            if sigma > 0.3:
                h = cv2.GaussianBlur(h, (0, 0), sigma)
                e = cv2.GaussianBlur(e, (0, 0), sigma)
            if "out_of_focus" in up:
                m = up["out_of_focus"]
                h += m * (cv2.GaussianBlur(h, (0, 0), oof_sigma) - h)
                e += m * (cv2.GaussianBlur(e, (0, 0), oof_sigma) - e)
            ink = up["ink"] * (1 + 0.15 * t["edge"]) if "ink" in up else None
            grey = 0.35 * up["rim"] if "rim" in up else None
            rgb = _compose(h, e, ink, t["noise"], style, grey)
            y0, x0 = g0 * cell_px, c0 * cell_px
            y1, x1 = min(g1 * cell_px, height), min(c1 * cell_px, width)
            image[y0:y1, x0:x1] = rgb[cell_px : cell_px + y1 - y0, cell_px : cell_px + x1 - x0]
    ly = cell_counts(nuclei["lymphocyte"], layout.codes.shape, cell_px)
    tum_ly = int(ly[np.isin(layout.codes, (RC["tumour"], RC["lymphocyte_dense"]))].sum())
    real = nuclei["tumour"].weights > 0.3  # ghosts of necrosis carry weight 0.22
    tum = Nuclei(nuclei["tumour"].ys[real], nuclei["tumour"].xs[real], nuclei["tumour"].variants[real],
                 nuclei["tumour"].weights[real])
    stats = RenderStats(
        int(real.sum()),
        len(nuclei["lymphocyte"].ys),
        tum_ly,
        len(glands.cy),
        ly,
        cell_counts(tum, layout.codes.shape, cell_px),
    )
    return image, stats


def cell_counts(nuc: Nuclei, shape: tuple[int, int], cell_px: int) -> np.ndarray:
    """(gh, gw) uint16 number of nuclei whose centre lies in each region-grid cell."""
    gy = np.clip(nuc.ys // cell_px, 0, shape[0] - 1)
    gx = np.clip(nuc.xs // cell_px, 0, shape[1] - 1)
    counts = np.bincount(gy * shape[1] + gx, minlength=shape[0] * shape[1]).reshape(shape)
    return np.minimum(counts, np.iinfo(np.uint16).max).astype(np.uint16)
