"""Where nuclei and glands go: vectorised point processes over a slide's region map.

Tumour and lymphocyte aggregates sit on jittered hexagonal lattices (crowded but non-overlapping),
fibroblasts and scattered lymphocytes are Poisson, gland epithelium lines ellipses. Positions are in
level-0 pixels; densities are in µm so 20x and 40x renderings of a layout carry the same biology.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from histcode.io.truth import REGION_CODES as RC
from histcode.synth.sprites import KINDS, N_ANGLES


@dataclass(frozen=True)
class Biology:
    """Patient-level morphology knobs planted into the image (see docs/synthetic_cohort.md)."""

    cellularity: float  # keep-probability on the 10 µm tumour lattice (tumour nuclei density)
    til_per_mm2: float  # scattered lymphocytes per mm² inside tumour regions
    stroma_til_per_mm2: float  # scattered lymphocytes per mm² of stroma
    fibroblast_keep: float = 0.45  # share of the fibroblast point process kept in plain stroma
    fibre_amp: float = 1.0  # collagen fibre contrast multiplier
    nuclear_scale: float = 1.0  # tumour nucleus size multiplier
    pleomorphism: float = 0.14  # boundary irregularity of tumour nuclei


@dataclass
class Nuclei:
    """One cell type's nuclei: centres (level-0 px), sprite variant, intensity weight; sorted by y."""

    ys: np.ndarray
    xs: np.ndarray
    variants: np.ndarray
    weights: np.ndarray

    @classmethod
    def build(cls, ys: np.ndarray, xs: np.ndarray, variants: np.ndarray, weights: np.ndarray) -> Nuclei:
        order = np.argsort(ys, kind="stable")
        return cls(ys[order].astype(np.int64), xs[order].astype(np.int64), variants[order], weights[order])

    def rows(self, y_lo: int, y_hi: int) -> Nuclei:
        a, b = np.searchsorted(self.ys, [y_lo, y_hi])
        return Nuclei(self.ys[a:b], self.xs[a:b], self.variants[a:b], self.weights[a:b])


def _code_at(codes: np.ndarray, ys: np.ndarray, xs: np.ndarray, cell_px: float) -> np.ndarray:
    gy = np.clip((ys / cell_px).astype(np.int64), 0, codes.shape[0] - 1)
    gx = np.clip((xs / cell_px).astype(np.int64), 0, codes.shape[1] - 1)
    return codes[gy, gx]


def _hex_lattice(rng: np.random.Generator, w: int, h: int, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    row = spacing * 0.866
    gy, gx = np.mgrid[0 : int(h / row) + 2, 0 : int(w / spacing) + 2].astype(np.float64)
    xs = (gx + 0.5 * (gy % 2)) * spacing + rng.normal(0, 0.18 * spacing, gx.shape)
    ys = gy * row + rng.normal(0, 0.18 * spacing, gy.shape)
    return ys.ravel(), xs.ravel()


def _poisson(rng: np.random.Generator, w: int, h: int, per_px2: float) -> tuple[np.ndarray, np.ndarray]:
    n = rng.poisson(per_px2 * w * h)
    return rng.uniform(0, h, n), rng.uniform(0, w, n)


def place_nuclei(
    rng: np.random.Generator,
    codes: np.ndarray,
    angle: np.ndarray,
    *,
    width: int,
    height: int,
    mpp: float,
    cell_px: float,
    bio: Biology,
    lumen: np.ndarray | None = None,
) -> dict[str, Nuclei]:
    """Nuclei per sprite kind (``tumour``, ``epithelial``, ``fibroblast``, ``lymphocyte``, ``debris``);
    gland epithelium comes from :func:`place_glands`."""
    um2 = mpp * mpp
    out: dict[str, Nuclei] = {}
    nv = {k: v.n_variants for k, v in KINDS.items()}

    ys, xs = _hex_lattice(rng, width, height, 12.0 / mpp)
    code = _code_at(codes, ys, xs, cell_px)
    u = rng.uniform(size=len(ys))
    tum = (code == RC["tumour"]) & (u < bio.cellularity)
    if lumen is not None and lumen.any():  # gland lumens hold no cells
        tum &= ~_code_at(lumen, ys, xs, cell_px)
    ghost = (code == RC["necrosis"]) & (u < 0.3)
    keep = tum | ghost
    w = np.where(tum, np.exp(rng.normal(0, 0.22, len(ys))), 0.22)[keep]
    out["tumour"] = Nuclei.build(ys[keep], xs[keep], rng.integers(0, nv["tumour"], keep.sum()), w)

    ly_y, ly_x = _hex_lattice(rng, width, height, 6.6 / mpp)
    agg = (_code_at(codes, ly_y, ly_x, cell_px) == RC["lymphocyte_dense"]) & (
        rng.uniform(size=len(ly_y)) < 0.85
    )
    sy, sx = _poisson(rng, width, height, max(bio.til_per_mm2, bio.stroma_til_per_mm2) * 1e-6 * um2)
    scode = _code_at(codes, sy, sx, cell_px)
    peak = max(bio.til_per_mm2, bio.stroma_til_per_mm2, 1e-9)
    p_keep = np.where(
        scode == RC["tumour"],
        bio.til_per_mm2 / peak,
        np.where(np.isin(scode, (RC["stroma"], RC["normal_epithelium"])), bio.stroma_til_per_mm2 / peak, 0),
    )
    scat = rng.uniform(size=len(sy)) < p_keep
    ly_all_y = np.concatenate([ly_y[agg], sy[scat]])
    ly_all_x = np.concatenate([ly_x[agg], sx[scat]])
    out["lymphocyte"] = Nuclei.build(
        ly_all_y,
        ly_all_x,
        rng.integers(0, nv["lymphocyte"], len(ly_all_y)),
        np.exp(rng.normal(0, 0.1, len(ly_all_y))),
    )

    fy, fx = _poisson(rng, width, height, um2 / 16.0**2)  # intralobular stroma is cellular; stroma is not
    fcode = _code_at(codes, fy, fx, cell_px)
    kept = rng.uniform(size=len(fy)) < bio.fibroblast_keep
    fk = (fcode == RC["normal_epithelium"]) | ((fcode == RC["stroma"]) & kept)
    fy, fx = fy[fk], fx[fk]
    theta = _code_at(angle, fy, fx, cell_px)
    abin = np.round(theta / np.pi * N_ANGLES).astype(np.int64) % N_ANGLES
    variants = abin + N_ANGLES * rng.integers(0, nv["fibroblast"] // N_ANGLES, len(fy))
    out["fibroblast"] = Nuclei.build(fy, fx, variants, np.exp(rng.normal(0, 0.15, len(fy))))

    dy, dx = _poisson(rng, width, height, um2 / 8.0**2)
    dk = _code_at(codes, dy, dx, cell_px) == RC["necrosis"]
    out["debris"] = Nuclei.build(
        dy[dk], dx[dk], rng.integers(0, nv["debris"], dk.sum()), rng.uniform(0.4, 0.9, dk.sum())
    )
    return out


@dataclass(frozen=True)
class Glands:
    """Ellipses (level-0 px): centres, semi-axes a/b, angle in degrees; lumen is ``lumen_frac`` of them."""

    cy: np.ndarray
    cx: np.ndarray
    a: np.ndarray
    b: np.ndarray
    angle_deg: np.ndarray
    lumen_frac: float = 0.38


def place_glands(
    rng: np.random.Generator, codes: np.ndarray, *, width: int, height: int, mpp: float, cell_px: float
) -> tuple[Glands, Nuclei]:
    """Acini in normal-epithelium regions and the small regular nuclei lining them."""
    cy, cx = _hex_lattice(rng, width, height, 46.0 / mpp)
    keep = _code_at(codes, cy, cx, cell_px) == RC["normal_epithelium"]
    cy, cx = cy[keep], cx[keep]
    g = len(cy)
    r = rng.uniform(13, 23, g) / mpp
    aspect = rng.uniform(1.0, 1.45, g)
    glands = Glands(cy, cx, r * np.sqrt(aspect), r / np.sqrt(aspect), rng.uniform(0, 180, g))
    ring = 0.68
    perim = np.pi * (glands.a + glands.b) * ring * mpp  # µm
    n_per = np.maximum(6, (perim / 6.2).astype(np.int64))
    gi = np.repeat(np.arange(g), n_per)
    k = np.arange(len(gi)) - np.repeat(np.cumsum(n_per) - n_per, n_per)
    t = 2 * np.pi * (k + rng.uniform(-0.15, 0.15, len(gi))) / n_per[gi]
    rad = ring * (1 + rng.normal(0, 0.04, len(gi)))
    ex, ey = glands.a[gi] * rad * np.cos(t), glands.b[gi] * rad * np.sin(t)
    phi = np.deg2rad(glands.angle_deg[gi])
    ys = glands.cy[gi] + ex * np.sin(phi) + ey * np.cos(phi)
    xs = glands.cx[gi] + ex * np.cos(phi) - ey * np.sin(phi)
    nuc = Nuclei.build(
        ys, xs, rng.integers(0, KINDS["epithelial"].n_variants, len(ys)), np.exp(rng.normal(0, 0.1, len(ys)))
    )
    return glands, nuc
