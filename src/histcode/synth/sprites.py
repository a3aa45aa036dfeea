"""Precomputed nucleus sprites (haematoxylin concentration patches) per cell type, and fast stamping.

Rendering stamps tens of thousands of nuclei per slide; drawing each from scratch would dominate the
run time. Each cell type gets a bank of shape/orientation variants, rasterised once per process and
resolution; stamping is a single ``np.bincount`` over flattened sprite footprints (no Python loop
per nucleus or pixel).
"""

from __future__ import annotations

import dataclasses
import functools
import zlib
from dataclasses import dataclass

import cv2
import numpy as np

N_ANGLES = 12  # orientation bins; variant v has angle bin v % N_ANGLES


@dataclass(frozen=True)
class NucleusKind:
    """Morphology of one cell type's nucleus, in µm. ``harmonics`` sets boundary irregularity
    (pleomorphism), ``chromatin`` the clumped texture, ``nucleoli`` the dark dots per nucleus."""

    radius_um: tuple[float, float]
    aspect: tuple[float, float]
    harmonics: float
    intensity: float
    chromatin: float
    nucleoli: int
    rim: float
    n_variants: int = 48


KINDS: dict[str, NucleusKind] = {
    "tumour": NucleusKind((3.5, 5.4), (1.0, 1.6), 0.14, 0.42, 0.45, 2, 0.30),
    "epithelial": NucleusKind((2.7, 3.3), (1.1, 1.4), 0.03, 0.50, 0.12, 0, 0.15),
    "fibroblast": NucleusKind((1.2, 1.6), (2.6, 4.0), 0.04, 0.48, 0.10, 0, 0.05),
    "lymphocyte": NucleusKind((2.5, 3.1), (1.0, 1.12), 0.02, 0.80, 0.10, 0, 0.10),
    "debris": NucleusKind((0.7, 1.6), (1.0, 1.6), 0.25, 0.55, 0.30, 0, 0.0),
}


@functools.lru_cache(maxsize=64)
def sprite_bank(kind: str, mpp: float, scale: float = 1.0, harmonics: float | None = None) -> np.ndarray:
    """(V, S, S) float32 haematoxylin concentration sprites for ``kind`` at ``mpp`` µm/px, with the radius
    range multiplied by ``scale`` and (if given) the boundary irregularity set to ``harmonics`` (a patient's
    nuclear size and pleomorphism; callers round them so banks are reused).

    Deterministic (fixed seed per kind), so every process builds the same bank.
    """
    spec = KINDS[kind]
    if scale != 1.0 or harmonics is not None:
        spec = dataclasses.replace(
            spec,
            radius_um=(spec.radius_um[0] * scale, spec.radius_um[1] * scale),
            harmonics=spec.harmonics if harmonics is None else harmonics,
        )
    rng = np.random.default_rng(zlib.crc32(kind.encode()))
    r_max_px = spec.radius_um[1] * spec.aspect[1] ** 0.5 * (1 + 2 * spec.harmonics) / mpp
    size = int(np.ceil(2 * r_max_px)) + 3
    size += 1 - size % 2
    c = (size - 1) / 2
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - np.float32(c)
    bank = np.zeros((spec.n_variants, size, size), np.float32)
    for v in range(spec.n_variants):
        r_px = rng.uniform(*spec.radius_um) / mpp
        aspect = rng.uniform(*spec.aspect)
        angle = (v % N_ANGLES) / N_ANGLES * np.pi + rng.normal(0, 0.05)
        a, b = r_px * aspect**0.5, r_px / aspect**0.5
        xr = xx * np.cos(angle) + yy * np.sin(angle)
        yr = -xx * np.sin(angle) + yy * np.cos(angle)
        rho = np.sqrt((xr / a) ** 2 + (yr / b) ** 2)
        theta = np.arctan2(yr, xr)
        edge = np.ones_like(rho)
        for k in range(2, 6):
            edge += spec.harmonics * rng.normal(0, 1 / k) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
        dist_px = (edge - rho) * b  # signed distance to the boundary, in px (approximately)
        inside = np.clip(dist_px / 0.9 + 0.5, 0, 1)
        texture = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 0.6 / mpp)
        texture /= texture.std() + 1e-6
        conc = 1 + spec.chromatin * texture + spec.rim * np.exp(-((dist_px / (0.7 / mpp)) ** 2))
        for _ in range(rng.poisson(spec.nucleoli) if spec.nucleoli else 0):
            ny, nx = rng.normal(0, 0.35 * b, 2)
            conc += 1.2 * np.exp(-((xx - nx) ** 2 + (yy - ny) ** 2) / (2 * (0.5 / mpp) ** 2))
        bank[v] = np.clip(inside * conc * spec.intensity * rng.uniform(0.85, 1.15), 0, None)
    # Trim to the union footprint (odd, centred) so stamping touches no empty pixels.
    used = np.flatnonzero((bank > 0.01).any(axis=0).any(axis=0))
    half = int(max(c - used[0], used[-1] - c)) + 1
    lo = int(c) - half
    return np.ascontiguousarray(bank[:, lo : lo + 2 * half + 1, lo : lo + 2 * half + 1])


def stamp(
    canvas: np.ndarray,
    ys: np.ndarray,
    xs: np.ndarray,
    variants: np.ndarray,
    weights: np.ndarray,
    bank: np.ndarray,
) -> None:
    """Add sprites ``bank[variants] * weights`` centred at integer (ys, xs) onto ``canvas`` in place.

    Centres may lie outside the canvas; parts falling outside are dropped. One bincount, no loops.
    """
    if len(ys) == 0:
        return
    h, w = canvas.shape
    s = bank.shape[1]
    half = s // 2
    pad_w = w + 2 * s
    dy, dx = np.mgrid[0:s, 0:s]
    offsets = (dy * pad_w + dx).ravel()
    base = (ys.astype(np.int64) + s - half) * pad_w + (xs.astype(np.int64) + s - half)
    idx = (base[:, None] + offsets[None, :]).ravel()
    vals = (bank.reshape(len(bank), -1)[variants] * weights[:, None].astype(np.float32)).ravel()
    # zeros (half to two thirds of a sprite's square) add nothing to any bin: dropping them halves the scatter and
    # leaves every sum bit-identical (a bin starts at +0.0 and never becomes -0.0, so adding 0 changes nothing)
    ok = (vals != 0) & (idx >= 0) & (idx < (h + 2 * s) * pad_w)
    padded = np.bincount(idx[ok], weights=vals[ok], minlength=(h + 2 * s) * pad_w)
    canvas += padded.reshape(h + 2 * s, pad_w)[s : s + h, s : s + w].astype(np.float32)
