"""Shared pieces of the stain normalisers: the protocol, input coercion and optical density.

All normalisers work on batches in torch so they can run inside DataLoader workers: ``transform_batch``
takes (B, 3, H, W) float in [0, 1] and returns the same shape and dtype; ``transform`` is the single
(H, W, 3) uint8 convenience on top of it, so both paths share one implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import numpy as np
import torch

IO = 240.0  # transmitted-light intensity of the Macenko paper (background brighter than this reads as 0 OD)
BETA = 0.15  # optical-density threshold below which a pixel counts as background
MIN_TISSUE_PX = 64  # fewer tissue pixels than this → the tile is passed through unchanged (no NaN, no guess)
MAX_FIT_PX = 4_000_000  # pixels used to fit a reference (deterministic stride subsample beyond this)


@runtime_checkable
class StainNormalizer(Protocol):
    """What every normaliser offers (Macenko, Reinhard, identity)."""

    method: ClassVar[str]

    def fit(self, images: np.ndarray | Sequence[np.ndarray]) -> Self: ...

    def transform(self, img: np.ndarray) -> np.ndarray: ...

    def transform_batch(self, x: torch.Tensor) -> torch.Tensor: ...

    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self: ...


def fit_pixels(images: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
    """Stack the RGB pixels of one image (H, W, 3), a batch (N, H, W, 3) or a list of images into (1, 3, P)
    float64 in [0, 255], stride-subsampled to at most ``MAX_FIT_PX`` pixels (deterministic)."""
    if isinstance(images, np.ndarray):
        arrays = [images] if images.ndim == 3 else list(images)
    else:
        arrays = list(images)
    if not arrays:
        raise ValueError("stain fit: no images given; pass at least one (H, W, 3) uint8 tile.")
    flat = []
    for i, a in enumerate(arrays):
        a = np.asarray(a)
        if a.ndim != 3 or a.shape[-1] not in (3, 4):
            raise ValueError(f"stain fit: image {i} has shape {a.shape}; expected (H, W, 3) uint8 RGB.")
        flat.append(a[..., :3].reshape(-1, 3))
    px = np.concatenate(flat, axis=0)
    if len(px) > MAX_FIT_PX:
        px = px[:: -(-len(px) // MAX_FIT_PX)]
    return torch.from_numpy(px.astype(np.float64).T.copy())[None]


def to_batch(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 → (1, 3, H, W) float32 in [0, 1]."""
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"stain transform: expected an (H, W, 3) uint8 RGB image, got shape {img.shape}.")
    arr = np.require(img, dtype=np.uint8, requirements=["C", "W"])  # copies only read-only/strided input
    return torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255.0


def from_batch(x: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) float in [0, 1] → (H, W, 3) uint8."""
    return (x[0].permute(1, 2, 0).clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()


def check_batch(x: torch.Tensor) -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"transform_batch expects (B, 3, H, W) float in [0, 1], got shape {tuple(x.shape)}.")
    if not torch.is_floating_point(x):
        raise ValueError(f"transform_batch expects a float tensor in [0, 1], got {x.dtype}; divide by 255.")


def optical_density(rgb255: torch.Tensor) -> torch.Tensor:
    """Beer-Lambert optical density of (B, 3, N) intensities in [0, 255]: -ln((I + 1) / Io)."""
    return torch.add(rgb255, 1.0).mul_(1.0 / IO).log_().neg_()


def masked_quantile(values: torch.Tensor, mask: torch.Tensor, qs: tuple[float, ...]) -> torch.Tensor:
    """Per-row quantiles (linear interpolation, as numpy) of ``values`` (B, N) over ``mask`` (B, N).

    Returns (B, len(qs)); rows with an empty mask give 0. Tail quantiles (the Macenko 1%/99%) come from
    one ``topk`` per tail instead of a full sort: O(N log k) with k ~ 1% of N.
    """
    n = mask.sum(dim=1)
    nf = (n - 1).clamp(min=0).to(values.dtype)
    cols = []
    for q in qs:
        low = q <= 0.5
        dist = q if low else 1.0 - q  # position counted from the nearer end
        pos = dist * nf  # (B,)
        k = min(values.shape[1], int(dist * max(int(n.max()) - 1, 0)) + 2)
        fill = float("inf") if low else float("-inf")
        ends = torch.topk(values.masked_fill(~mask, fill), k, dim=1, largest=not low, sorted=True).values
        lo = pos.floor().long().clamp(max=k - 1)
        hi = pos.ceil().long().clamp(max=k - 1)
        v_lo = ends.gather(1, lo[:, None])[:, 0]
        v_hi = ends.gather(1, hi[:, None])[:, 0]
        cols.append(v_lo + (v_hi - v_lo) * (pos - lo.to(values.dtype)))
    out = torch.stack(cols, dim=1)
    return torch.where((n > 0)[:, None], out, torch.zeros_like(out))


def row_quantile(values: torch.Tensor, q: float) -> torch.Tensor:
    """q-quantile over the last dim of (..., N) (numpy-linear), via the tail ``topk`` of ``masked_quantile``."""
    flat = values.reshape(-1, values.shape[-1])
    n = flat.shape[1]
    low = q <= 0.5
    dist = q if low else 1.0 - q
    pos = dist * (n - 1)
    lo, hi = int(pos), min(int(pos) + 1, n - 1)
    ends = torch.topk(flat, min(n, hi + 1), dim=1, largest=not low, sorted=True).values
    out = ends[:, lo] + (ends[:, hi] - ends[:, lo]) * (pos - lo)
    return out.reshape(values.shape[:-1])


def restore_dtype(out: torch.Tensor, x: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """Rows flagged not ``ok`` (B,) get the input back; clamp to [0, 1]; cast to x's dtype."""
    out = out.nan_to_num_(nan=0.0).clamp_(0.0, 1.0)
    if not bool(ok.all()):
        out[~ok] = x[~ok].to(out.dtype)
    return out.to(x.dtype)
