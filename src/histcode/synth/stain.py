"""H&E stain styles: per-slide stain vectors, amounts, illumination and blur (Beer-Lambert inputs).

Per-slide styles jitter the stain vectors, stain amounts, illumination and scanner blur so that slide
colour varies more than the tumour/normal difference: colour alone must not give the label away, and
stain normalisation has something real to correct. Each site (histcode.synth.sites) has its own reference
vectors, white point, blur range and spreads; the external site is shifted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from histcode.synth.sites import SiteProfile

INK_VECTORS = (np.array([0.85, 0.45, 0.10]), np.array([0.70, 0.25, 0.60]), np.array([0.60, 0.62, 0.58]))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


@dataclass(frozen=True)
class StainStyle:
    """One slide's appearance. ``h``/``e``: unit OD vectors; ``h_amount``/``e_amount``: concentration
    multipliers; ``i0``: illumination per RGB channel; ``blur_um``: scanner point-spread sigma;
    ``region_e``/``region_h``: per-region-code uptake multipliers (fixation/thickness differences)."""

    h: tuple[float, float, float]
    e: tuple[float, float, float]
    h_amount: float
    e_amount: float
    i0: tuple[float, float, float]
    blur_um: float
    noise_sd: float
    ink: tuple[float, float, float]
    region_e: tuple[float, ...] = (1.0,) * 8
    region_h: tuple[float, ...] = (1.0,) * 8

    def matrix(self) -> np.ndarray:
        """(2, 3) stain matrix, rows H and E (unit OD vectors), as Macenko estimates it."""
        return np.array([self.h, self.e])


def sample_style(rng: np.random.Generator, site: SiteProfile, jitter: float = 1.0) -> StainStyle:
    """Draw a slide style around the site's reference stain and scanner (``jitter`` scales every stain
    spread)."""
    h = _unit(np.clip(np.asarray(site.h_ref) + rng.normal(0, site.stain_vector_sd[0] * jitter, 3), 0.02, None))
    e = _unit(np.clip(np.asarray(site.e_ref) + rng.normal(0, site.stain_vector_sd[1] * jitter, 3), 0.02, None))
    i0 = np.asarray(site.white_point) * (1 + rng.normal(0, 0.05 * jitter)) + rng.normal(
        0, site.white_point_sd * jitter, 3
    )
    thickness = np.exp(rng.normal(0, site.thickness_sd * jitter))  # section thickness scales both stains
    region_e = np.exp(rng.normal(0, 0.25 * jitter, 8))
    region_h = np.exp(rng.normal(0, 0.25 * jitter, 8))
    bias = np.exp(site.eosin_bias / 2)
    return StainStyle(
        h=tuple(float(x) for x in h),
        e=tuple(float(x) for x in e),
        h_amount=float(thickness * np.exp(rng.normal(0, site.stain_amount_sd * jitter)) / bias),
        e_amount=float(thickness * np.exp(rng.normal(0, site.stain_amount_sd * jitter)) * bias),
        i0=tuple(float(x) for x in np.clip(i0, 200, 255)),
        blur_um=float(rng.uniform(*site.blur_um)),
        noise_sd=float(rng.uniform(1.5, 3.5)),
        ink=tuple(float(x) for x in INK_VECTORS[rng.integers(len(INK_VECTORS))]),
        region_e=tuple(float(x) for x in region_e),
        region_h=tuple(float(x) for x in region_h),
    )
