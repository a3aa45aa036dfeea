"""Batched H&E tile augmentations on tensors (CPU or GPU), one random draw per sample.

Everything works on a whole batch (B, 3, H, W) float in [0, 1] with per-sample parameters drawn from an
explicit ``torch.Generator`` so two runs with equal seeds see identical views (bit-for-bit resume).
Crops use ``roi_align`` (one batched, anti-aliased crop+resize); colour work uses per-sample 3×3
matrices; blur is a grouped separable convolution. No per-image Python loops, except JPEG re-compression
(torchvision's batched encode/decode over a list of images). An op applied with probability p computes only the
samples it selects (HED jitter, colour, grey, blur: half of a view's time went to samples then thrown away).

The H&E-specific part is what a model must not rely on when it moves to another site: stain concentrations
and stain vectors (HED jitter), scanner optics (blur) and the scanner's JPEG compression. The synthetic
sites (histcode.synth.sites) vary exactly these between cohorts.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg
from torchvision.ops import roi_align

log = logging.getLogger(__name__)

# Stain vectors (rows: haematoxylin, eosin, DAB) in optical-density space (Ruifrok & Johnston).
RGB_FROM_HED = torch.tensor([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
LUMA = torch.tensor([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges; defaults follow MoCo-v2 colour strength plus pathology-specific
    90° rotations, vertical flips, HED stain jitter with stain-vector jitter (Tellez et al., 2019), and JPEG
    re-compression at quality 40-95 (scanners store 70-90; lower covers re-saved images)."""

    out_px: int = 96
    crop_scale: tuple[float, float] = (0.3, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    p_hflip: float = 0.5
    p_vflip: float = 0.5
    rot90: bool = True
    p_hed: float = 0.5
    hed_sigma: float = 0.05
    stain_vector_sigma: float = 0.05  # Gaussian jitter of the H/E/DAB OD vectors (re-normalised) per sample
    p_jitter: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    p_gray: float = 0.1
    p_blur: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    p_jpeg: float = 0.5
    jpeg_quality: tuple[int, int] = (40, 95)


def _u(g: torch.Generator, n: int, lo: float, hi: float, *shape: int) -> torch.Tensor:
    return torch.rand(n, *shape, generator=g) * (hi - lo) + lo


def _mask(g: torch.Generator, n: int, p: float) -> torch.Tensor:
    return torch.rand(n, generator=g) < p


SampleOp = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (selected samples, their indices) → new samples


def _apply(mask: torch.Tensor, x: torch.Tensor, op: SampleOp) -> torch.Tensor:
    """``op(x[sel], sel)`` written into a copy of ``x`` at the selected samples only: the unselected ones cost
    nothing (a whole-batch op then ``where`` computed every sample). ``op`` gets the selected indices to pick
    its per-sample parameters, which are drawn for every sample so the generator stream does not depend on the
    selection."""
    sel = torch.nonzero(mask).flatten()
    if len(sel) == 0:
        return x
    out = x.clone()
    out[sel.to(x.device)] = op(x[sel.to(x.device)], sel)
    return out


def random_resized_crop(x: torch.Tensor, out_px: int, g: torch.Generator, scale: tuple[float, float],
                        ratio: tuple[float, float]) -> torch.Tensor:
    """(B, 3, H, W) → (B, 3, out_px, out_px): per-sample area fraction ∈ scale and aspect ∈ ratio."""
    b, _, h, w = x.shape
    area = _u(g, b, *scale) * h * w
    log_r = _u(g, b, math.log(ratio[0]), math.log(ratio[1]))
    aspect = torch.exp(log_r)
    cw = torch.sqrt(area * aspect).clamp(1.0, w)
    ch = torch.sqrt(area / aspect).clamp(1.0, h)
    x0 = torch.rand(b, generator=g) * (w - cw)
    y0 = torch.rand(b, generator=g) * (h - ch)
    boxes = torch.stack([torch.arange(b, dtype=torch.float32), x0, y0, x0 + cw, y0 + ch], dim=1)
    return roi_align(x, boxes.to(x.device, x.dtype), output_size=(out_px, out_px), spatial_scale=1.0,
                     sampling_ratio=0, aligned=True)  # adaptive: anti-aliased when shrinking


def flips_and_rotations(x: torch.Tensor, g: torch.Generator, p_h: float, p_v: float, rot90: bool) -> torch.Tensor:
    """Dihedral group moves: histology has no canonical orientation. A horizontal flip, then a vertical one, then
    k quarter turns; the samples that share a move are moved together, each pixel once."""
    b = x.shape[0]
    hflip, vflip = _mask(g, b, p_h), _mask(g, b, p_v)
    square = rot90 and x.shape[2] == x.shape[3]
    turns = torch.randint(0, 4, (b,), generator=g) if square else torch.zeros(b, dtype=torch.long)
    move = hflip.long() + 2 * vflip.long() + 4 * turns
    out = x.clone() if bool((move > 0).any()) else x
    for m in move.unique().tolist():
        if m == 0:
            continue
        sel = torch.nonzero(move == m).flatten().to(x.device)
        y = x[sel]
        if m & 1:
            y = y.flip(3)
        if m & 2:
            y = y.flip(2)
        if m >> 2:
            y = torch.rot90(y, m >> 2, dims=(2, 3))
        out[sel] = y
    return out


def hed_jitter(x: torch.Tensor, g: torch.Generator, sigma: float, p: float, vector_sigma: float = 0.0) -> torch.Tensor:
    """Perturb haematoxylin/eosin/DAB concentrations, s' = α·s + β (α ∈ 1±σ, β ∈ ±σ per sample & stain), and
    recompose with stain vectors jittered by N(0, ``vector_sigma``) (another lab's stain hue)."""
    b = x.shape[0]
    m = RGB_FROM_HED / RGB_FROM_HED.norm(dim=1, keepdim=True)
    m_inv = torch.linalg.inv(m)
    alpha = _u(g, b, 1 - sigma, 1 + sigma, 3)
    beta = _u(g, b, -sigma, sigma, 3)
    noise = torch.randn(b, 3, 3, generator=g) * vector_sigma
    m_new = (m.unsqueeze(0) + noise).clamp_min(1e-3)
    m_new = m_new / m_new.norm(dim=2, keepdim=True)  # (B, stain, RGB)
    # od' = ((od · M⁻¹) ⊙ α + β) · M_new, folded into one affine map of the OD per sample: od' = od · A + c
    a_map = m_inv.unsqueeze(0) * alpha.unsqueeze(1) @ m_new  # (B, RGB in, RGB out)
    c_map = (beta.unsqueeze(1) @ m_new).squeeze(1)  # (B, RGB out)

    def jitter(y: torch.Tensor, sel: torch.Tensor) -> torch.Tensor:
        n, _, h, w = y.shape
        od = torch.log(y.clamp_min(1.0 / 255.0)).reshape(n, 3, h * w)  # −OD, (n, 3, HW)
        a, c = a_map[sel].to(y.device, y.dtype), c_map[sel].to(y.device, y.dtype)
        out = torch.baddbmm(-c.unsqueeze(2), a.transpose(1, 2), od)  # −OD' = A^T (−OD) − c
        return out.exp_().clamp_(0.0, 1.0).reshape(n, 3, h, w)

    return _apply(_mask(g, b, p), x, jitter)


def jpeg_compress(x: torch.Tensor, g: torch.Generator, quality: tuple[int, int], p: float) -> torch.Tensor:
    """Re-compress the selected samples as JPEG at a per-sample quality in ``quality`` (another scanner's
    compression: 8×8 block edges, chroma subsampling, ringing). Parameters are drawn for every sample, so the
    generator stream does not depend on which are selected."""
    b = x.shape[0]
    q = torch.randint(int(quality[0]), int(quality[1]) + 1, (b,), generator=g)
    sel = torch.nonzero(_mask(g, b, p)).flatten()
    if len(sel) == 0:
        return x
    u8 = (x[sel].clamp(0, 1) * 255).round().to(torch.uint8)
    groups: list[tuple[int, list[torch.Tensor]]] = []
    order: list[int] = []  # the tiles' places in ``sel``, in the groups' order
    q_sel = q[sel]
    for qual in q_sel.unique().tolist():  # the encoder takes one quality per call
        idx = torch.nonzero(q_sel == qual).flatten().tolist()
        groups.append((int(qual), [u8[i] for i in idx]))
        order.extend(idx)
    out = x.clone()
    out[sel[torch.tensor(order)]] = torch.stack(_jpeg_roundtrip(groups)).to(x.device, x.dtype) / 255.0
    return out


_GPU_JPEG_FAILED: list[str] = []


def _jpeg_roundtrip(groups: list[tuple[int, list[torch.Tensor]]]) -> list[torch.Tensor]:
    """Encode each group of uint8 (3, H, W) images at its quality, then decode them all in one batched call, in
    group order. On a GPU with nvJPEG (torchvision) the images stay there, so the training step does not wait
    for a CPU round trip, and the bytes reach the host (where the decoder reads them) in one copy, not one
    blocking copy per image; elsewhere (or if nvJPEG is missing: one warning) the CPU codec does both."""
    dev = groups[0][1][0].device
    if dev.type == "cuda" and not _GPU_JPEG_FAILED:
        try:
            enc = [e for qual, ims in groups for e in encode_jpeg(ims, quality=qual)]
            data = list(torch.cat(enc).cpu().split([e.numel() for e in enc]))
            return decode_jpeg(data, mode=ImageReadMode.RGB, device=dev)
        except (RuntimeError, TypeError) as exc:  # a codec without CUDA support raises a RuntimeError subclass
            _GPU_JPEG_FAILED.append(f"{type(exc).__name__}: {exc}")
            log.warning("JPEG augmentation on the GPU failed (%s); using the CPU codec", _GPU_JPEG_FAILED[0])
    data = [e for qual, ims in groups for e in encode_jpeg([im.cpu() for im in ims], quality=qual)]
    return decode_jpeg(data, mode=ImageReadMode.RGB)


def color_jitter(x: torch.Tensor, g: torch.Generator, cfg: AugmentConfig) -> torch.Tensor:
    """Brightness, contrast, saturation (per-sample factors) and hue (rotation of YIQ chroma)."""
    b = x.shape[0]
    dev = x.device
    bright = _u(g, b, 1 - cfg.brightness, 1 + cfg.brightness).to(dev).view(b, 1, 1, 1)
    contrast = _u(g, b, 1 - cfg.contrast, 1 + cfg.contrast).to(dev).view(b, 1, 1, 1)
    sat = _u(g, b, 1 - cfg.saturation, 1 + cfg.saturation).to(dev).view(b, 1, 1, 1)
    theta = _u(g, b, -cfg.hue, cfg.hue) * 2 * math.pi
    luma = LUMA.to(dev).view(1, 3, 1, 1)
    cos, sin = torch.cos(theta), torch.sin(theta)
    rot = torch.zeros(b, 3, 3)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
    mats = torch.linalg.inv(RGB_TO_YIQ) @ rot @ RGB_TO_YIQ  # (B, 3, 3)

    def jitter(y: torch.Tensor, sel: torch.Tensor) -> torch.Tensor:
        n, _, h, w = y.shape
        s_ = sel.to(dev)
        y = (y * bright[s_]).clamp_(0, 1)
        mean = (y * luma).sum(1, keepdim=True).mean(dim=(2, 3), keepdim=True)
        y = ((y - mean) * contrast[s_] + mean).clamp_(0, 1)
        gray = (y * luma).sum(1, keepdim=True)
        y = ((y - gray) * sat[s_] + gray).clamp_(0, 1)
        y = torch.bmm(mats[sel].to(dev, y.dtype), y.reshape(n, 3, h * w)).clamp_(0, 1)
        return y.reshape(n, 3, h, w)

    return _apply(_mask(g, b, cfg.p_jitter), x, jitter)


def random_gray(x: torch.Tensor, g: torch.Generator, p: float) -> torch.Tensor:
    luma = LUMA.to(x.device).view(1, 3, 1, 1)
    return _apply(_mask(g, x.shape[0], p), x, lambda y, _: (y * luma).sum(1, keepdim=True).expand_as(y))


def gaussian_blur(x: torch.Tensor, g: torch.Generator, sigma: tuple[float, float], p: float) -> torch.Tensor:
    """Per-sample σ via one grouped separable convolution (kernel radius 3σ_max, reflect padding)."""
    b, c, h, w = x.shape
    sig = _u(g, b, *sigma)
    radius = max(1, min(math.ceil(3 * sigma[1]), (min(h, w) - 1) // 2))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(t.view(1, -1) ** 2) / (2 * sig.view(-1, 1) ** 2))
    k = k / k.sum(1, keepdim=True)  # (B, 2r+1)

    def blur(y: torch.Tensor, sel: torch.Tensor) -> torch.Tensor:
        n = y.shape[0]
        ks = k[sel].repeat_interleave(c, dim=0).to(y.device, y.dtype)  # (n·C, 2r+1)
        y = F.pad(y.reshape(1, n * c, h, w), (radius, radius, radius, radius), mode="reflect")
        y = F.conv2d(y, ks.view(n * c, 1, 1, -1), groups=n * c)
        return F.conv2d(y, ks.view(n * c, 1, -1, 1), groups=n * c).view(n, c, h, w)

    return _apply(_mask(g, b, p), x, blur)


class HEAugment:
    """One stochastic view per call: (B, 3, H, W) float [0, 1] → (B, 3, out_px, out_px) float [0, 1]."""

    def __init__(self, cfg: AugmentConfig) -> None:
        self.cfg = cfg

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"HEAugment: expected (B, 3, H, W) float input, got {tuple(x.shape)}")
        c = self.cfg
        x = x.float()
        x = random_resized_crop(x, c.out_px, generator, c.crop_scale, c.crop_ratio)
        x = flips_and_rotations(x, generator, c.p_hflip, c.p_vflip, c.rot90)
        x = hed_jitter(x, generator, c.hed_sigma, c.p_hed, c.stain_vector_sigma)
        x = color_jitter(x, generator, c)
        x = random_gray(x, generator, c.p_gray)
        x = gaussian_blur(x, generator, c.blur_sigma, c.p_blur)
        x = jpeg_compress(x, generator, c.jpeg_quality, c.p_jpeg)
        return x.clamp(0.0, 1.0)
