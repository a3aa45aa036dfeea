"""H&E stain styles: per-slide stain vectors, amounts, illumination and blur (Beer-Lambert inputs).

Per-slide styles jitter the stain vectors, stain amounts, illumination and scanner blur so that slide
colour varies more than the tumour/normal difference: colour alone must not give the label away, and
stain normalisation has something real to correct. The CPTAC-like cohort draws from a shifted style.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Typical H&E optical-density vectors (RGB) as Macenko's method estimates them on TCGA slides.
H_REF = np.array([0.5626, 0.7201, 0.4062])
E_REF = np.array([0.2159, 0.8012, 0.5581])
# Cohort style shifts: (H vector, E vector, mean illumination, JPEG tile px, blur µm).
COHORT_STYLES: dict[str, dict[str, object]] = {
    "tcga": {"h": H_REF, "e": E_REF, "i0": (242.0, 240.0, 244.0), "blur_um": 0.30},
    "cptac": {
        "h": np.array([0.50, 0.74, 0.46]),
        "e": np.array([0.13, 0.86, 0.49]),
        "i0": (248.0, 246.0, 250.0),
        "blur_um": 0.45,
    },
}
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


def sample_style(rng: np.random.Generator, cohort_style: str, jitter: float = 1.0) -> StainStyle:
    """Draw a slide style around the cohort's reference (``jitter`` scales every spread)."""
    ref = COHORT_STYLES[cohort_style]
    h = _unit(np.clip(np.asarray(ref["h"]) + rng.normal(0, 0.07 * jitter, 3), 0.02, None))
    e = _unit(np.clip(np.asarray(ref["e"]) + rng.normal(0, 0.09 * jitter, 3), 0.02, None))
    i0 = np.asarray(ref["i0"]) * (1 + rng.normal(0, 0.05 * jitter)) + rng.normal(0, 4.0 * jitter, 3)
    thickness = np.exp(rng.normal(0, 0.3 * jitter))  # section thickness scales both stains
    region_e = np.exp(rng.normal(0, 0.25 * jitter, 8))
    region_h = np.exp(rng.normal(0, 0.25 * jitter, 8))
    return StainStyle(
        h=tuple(float(x) for x in h),
        e=tuple(float(x) for x in e),
        h_amount=float(thickness * np.exp(rng.normal(0, 0.42 * jitter))),
        e_amount=float(thickness * np.exp(rng.normal(0, 0.42 * jitter))),
        i0=tuple(float(x) for x in np.clip(i0, 200, 255)),
        blur_um=float(ref["blur_um"]) * float(rng.uniform(0.8, 1.3)),
        noise_sd=float(rng.uniform(1.5, 3.5)),
        ink=tuple(float(x) for x in INK_VECTORS[rng.integers(len(INK_VECTORS))]),
        region_e=tuple(float(x) for x in region_e),
        region_h=tuple(float(x) for x in region_h),
    )
