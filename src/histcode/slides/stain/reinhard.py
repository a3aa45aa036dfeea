"""Reinhard colour transfer (Reinhard et al. 2001) in lαβ space, vectorised over a batch in torch.

Per-channel mean and standard deviation of each tile's tissue pixels are matched to the reference's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np
import torch

from histcode.slides.stain.base import (
    BETA,
    MIN_TISSUE_PX,
    check_batch,
    fit_pixels,
    from_batch,
    optical_density,
    restore_dtype,
    to_batch,
)

_RGB2LMS = torch.tensor([[0.3811, 0.5783, 0.0402], [0.1967, 0.7244, 0.0782], [0.0241, 0.1288, 0.8444]],
                        dtype=torch.float64)
_LMS2LAB = torch.diag(torch.tensor([1 / math.sqrt(3), 1 / math.sqrt(6), 1 / math.sqrt(2)], dtype=torch.float64)) \
    @ torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, -2.0], [1.0, -1.0, 0.0]], dtype=torch.float64)
_LAB2RGB = torch.linalg.inv(_LMS2LAB)  # lαβ → log10 LMS
_LMS2RGB = torch.linalg.inv(_RGB2LMS)
_EPS = 1.0 / 255.0


def rgb_to_lab(rgb01: torch.Tensor) -> torch.Tensor:
    """(B, 3, N) RGB in [0, 1] → (B, 3, N) lαβ."""
    dt = rgb01.dtype
    lms = (_RGB2LMS.to(rgb01.device, dt) @ rgb01).clamp(min=_EPS)
    return _LMS2LAB.to(rgb01.device, dt) @ torch.log10(lms)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """(B, 3, N) lαβ → (B, 3, N) RGB (unclipped)."""
    dt = lab.dtype
    return _LMS2RGB.to(lab.device, dt) @ torch.pow(10.0, _LAB2RGB.to(lab.device, dt) @ lab)


def _tissue_stats(rgb01: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean (B, 3), std (B, 3) and count (B,) of lαβ over pixels whose mean OD >= beta."""
    mask = optical_density(rgb01 * 255.0).mean(dim=1) >= beta  # (B, N)
    n = mask.sum(dim=1)
    w = mask.to(rgb01.dtype)[:, None]
    lab = rgb_to_lab(rgb01)
    cnt = n.clamp(min=1)[:, None].to(rgb01.dtype)
    mean = (lab * w).sum(-1) / cnt
    var = (((lab - mean[..., None]) * w) ** 2).sum(-1) / cnt
    return mean, var.sqrt(), n


class ReinhardNormalizer:
    """Reinhard normaliser: ``fit`` sets the reference lαβ means and standard deviations."""

    method: ClassVar[str] = "reinhard"

    def __init__(self, *, beta: float = BETA, mean_ref: Any = (-0.25, 0.02, 0.01),
                 std_ref: Any = (0.12, 0.02, 0.015)) -> None:
        self.beta = float(beta)
        self.mean_ref = torch.as_tensor(np.asarray(mean_ref, dtype=np.float64)).reshape(3)
        self.std_ref = torch.as_tensor(np.asarray(std_ref, dtype=np.float64)).reshape(3)
        self.fitted = False

    def fit(self, images: np.ndarray | Sequence[np.ndarray]) -> Self:
        rgb = fit_pixels(images) / 255.0
        mean, std, n = _tissue_stats(rgb, self.beta)
        if int(n[0]) < MIN_TISSUE_PX or not (std[0] > 1e-6).all():
            raise ValueError(f"ReinhardNormalizer.fit: only {int(n[0])} stained pixels (or no colour "
                             "variation) in the reference images; fit on tiles that contain tissue.")
        self.mean_ref, self.std_ref, self.fitted = mean[0], std[0], True
        return self

    def transform_batch(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float in [0, 1] → same; tiles with < 64 stained pixels are returned unchanged."""
        check_batch(x)
        b, _, hgt, wid = x.shape
        rgb = x.float().reshape(b, 3, -1)
        mean, std, n = _tissue_stats(rgb, self.beta)
        ok = (n >= MIN_TISSUE_PX) & (std > 1e-6).all(dim=1)
        lab = rgb_to_lab(rgb)
        scale = self.std_ref.to(x.device, torch.float32)[None] / std.clamp(min=1e-6)  # any device
        lab = (lab - mean[..., None]) * scale[..., None] + self.mean_ref.to(x.device, torch.float32)[None, :, None]
        out = lab_to_rgb(lab).reshape(b, 3, hgt, wid)
        return restore_dtype(out, x, ok)

    def transform(self, img: np.ndarray) -> np.ndarray:
        return from_batch(self.transform_batch(to_batch(img)))

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "beta": self.beta, "fitted": self.fitted,
                "mean_ref": self.mean_ref.tolist(), "std_ref": self.std_ref.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        norm = cls(beta=data.get("beta", BETA), mean_ref=data["mean_ref"], std_ref=data["std_ref"])
        norm.fitted = bool(data.get("fitted", True))
        return norm
