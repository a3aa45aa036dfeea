"""Macenko stain normalisation (Macenko et al., ISBI 2009), vectorised over a batch in torch.

Each tile's H and E optical-density vectors are estimated from the angular extremes (alpha, 100-alpha
percentiles) of its tissue pixels in the plane of the two leading OD eigenvectors; concentrations are
rescaled so their 99th percentiles match the reference, then re-rendered with the reference vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np
import torch

from histcode.slides.stain.base import (
    BETA,
    IO,
    MIN_TISSUE_PX,
    check_batch,
    fit_pixels,
    from_batch,
    masked_quantile,
    optical_density,
    restore_dtype,
    row_quantile,
    to_batch,
)

# Reference of the original implementation (used until ``fit`` is called).
DEFAULT_HE = ((0.5626, 0.2159), (0.7201, 0.8012), (0.4062, 0.5581))
DEFAULT_MAX_C = (1.9705, 1.0308)


MIN_OD_VARIANCE = 1e-4  # flat tiles (uniformly black or one solid colour) carry no stain contrast


def estimate_stains(od: torch.Tensor, *, alpha: float = 1.0,
                    beta: float = BETA) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image stain matrix and concentrations from optical densities.

    od: (B, 3, N). Returns he (B, 3, 2) unit columns [H, E], conc (B, 2, N) and n_tissue (B,), the number
    of pixels with every channel's OD >= beta (the pixels the vectors were estimated from); set to 0 for
    images whose tissue OD has no variance, so callers treat them as having no usable tissue.
    """
    mask = od.amin(dim=1) >= beta  # (B, N): every channel stained
    n = mask.sum(dim=1)
    nf = n.clamp(min=1).to(od.dtype)
    odw = od * mask.unsqueeze(1)  # (B, 3, N), zero off tissue
    mean = odw.sum(-1) / nf[:, None]  # (B, 3)
    second = (odw @ od.transpose(1, 2)) / nf[:, None, None]  # E[od od^T] over tissue (B, 3, 3)
    cov = (second - mean[:, :, None] * mean[:, None, :]) * (nf / (n - 1).clamp(min=1))[:, None, None]
    cov = cov.double() + torch.eye(3, dtype=torch.float64, device=od.device) * 1e-9  # well defined on empty/flat tiles
    _, vecs = torch.linalg.eigh(cov)  # ascending eigenvalues
    plane = vecs[:, :, 1:3].to(od.dtype)  # (B, 3, 2): second and first principal directions
    flip = torch.where(plane[:, :, 1].sum(1) < 0, -1.0, 1.0).to(od.dtype)  # leading vector into +OD
    plane[:, :, 1] = plane[:, :, 1] * flip[:, None]
    proj = plane.transpose(1, 2) @ od  # (B, 2, N)
    phi = torch.atan2(proj[:, 1], proj[:, 0])  # (B, N)
    lo, hi = masked_quantile(phi, mask, (alpha / 100.0, 1.0 - alpha / 100.0)).unbind(1)
    v_lo = (plane @ torch.stack([lo.cos(), lo.sin()], dim=1)[..., None])[..., 0]  # (B, 3)
    v_hi = (plane @ torch.stack([hi.cos(), hi.sin()], dim=1)[..., None])[..., 0]
    lo_is_h = (v_lo[:, 0] > v_hi[:, 0])[:, None]  # haematoxylin absorbs red most
    h = torch.where(lo_is_h, v_lo, v_hi)
    e = torch.where(lo_is_h, v_hi, v_lo)
    he = torch.stack([h, e], dim=2)
    he = he / he.norm(dim=1, keepdim=True).clamp(min=1e-8)
    conc = torch.linalg.pinv(he) @ od  # least squares (B, 2, N)
    flat = cov.diagonal(dim1=1, dim2=2).sum(1) < MIN_OD_VARIANCE
    return he, conc, torch.where(flat, torch.zeros_like(n), n)


class MacenkoNormalizer:
    """Macenko normaliser: ``fit`` sets the reference H&E vectors and 99th-percentile concentrations."""

    method: ClassVar[str] = "macenko"

    def __init__(self, *, alpha: float = 1.0, beta: float = BETA, he_ref: Any = DEFAULT_HE,
                 max_c_ref: Any = DEFAULT_MAX_C) -> None:
        if not 0.0 <= alpha < 50.0:
            raise ValueError(f"MacenkoNormalizer: alpha must be in [0, 50), got {alpha}")
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.he_ref = torch.as_tensor(np.asarray(he_ref, dtype=np.float64)).reshape(3, 2)
        self.max_c_ref = torch.as_tensor(np.asarray(max_c_ref, dtype=np.float64)).reshape(2)
        self.fitted = False

    def fit(self, images: np.ndarray | Sequence[np.ndarray]) -> Self:
        """Reference from one tile or a cohort sample (all pixels pooled); needs some stained tissue."""
        od = optical_density(fit_pixels(images))
        he, conc, n = estimate_stains(od, alpha=self.alpha, beta=self.beta)
        if int(n[0]) < MIN_TISSUE_PX:
            raise ValueError(f"MacenkoNormalizer.fit: only {int(n[0])} stained pixels in the reference "
                             "images; fit on tiles that contain tissue.")
        max_c = row_quantile(conc, 0.99)[0]
        if not torch.isfinite(he).all() or not (max_c > 0).all():
            raise ValueError("MacenkoNormalizer.fit: degenerate stain estimate (no H&E contrast); fit on "
                             "H&E tiles with both nuclei and stroma.")
        self.he_ref, self.max_c_ref, self.fitted = he[0], max_c, True
        return self

    def transform_batch(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float in [0, 1] → same; tiles with < 64 stained pixels are returned unchanged."""
        check_batch(x)
        b, _, hgt, wid = x.shape
        od = optical_density(x.float().reshape(b, 3, -1) * 255.0)
        _, conc, n = estimate_stains(od, alpha=self.alpha, beta=self.beta)
        max_c = row_quantile(conc, 0.99)
        ok = (n >= MIN_TISSUE_PX) & (max_c > 1e-6).all(dim=1) & torch.isfinite(max_c).all(dim=1)
        scale = self.max_c_ref.to(x.device, torch.float32)[None] / max_c.clamp(min=1e-6)  # (B, 2), any device
        mix = self.he_ref.to(x.device, torch.float32)[None] * scale[:, None, :]  # ref vectors x rescaling (B, 3, 2)
        out = torch.bmm(mix, conc).neg_().exp_().mul_(IO / 255.0)  # Io·exp(-HE_ref·C') in [0, 1] units
        return restore_dtype(out.reshape(b, 3, hgt, wid), x, ok)

    def transform(self, img: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 → (H, W, 3) uint8."""
        return from_batch(self.transform_batch(to_batch(img)))

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "alpha": self.alpha, "beta": self.beta, "fitted": self.fitted,
                "he_ref": self.he_ref.tolist(), "max_c_ref": self.max_c_ref.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        norm = cls(alpha=data.get("alpha", 1.0), beta=data.get("beta", BETA), he_ref=data["he_ref"],
                   max_c_ref=data["max_c_ref"])
        norm.fitted = bool(data.get("fitted", True))
        return norm
