"""Hand-crafted nuclear and stain features of a tile ("histomics"): an encoder with no learned weights.

Why: at the matched-pair counts of real cohorts (13-110 pairs) a DE model cannot learn which morphology a gene
follows from a 256-dim embedding; slide variables it can read directly (nuclei per mm², how dark and how
crowded they are, eosin without nuclei, fine eosin texture) need no training data at all. Counting nuclei
is what HistomicsTK/CellProfiler pipelines do; here it is a few convolutions in torch on the stain-normalised
batch, so it runs inside extraction beside AdCo and writes the same ``.h5`` feature files.

Stains are separated with the stain reference's own H&E optical-density vectors (the normaliser re-renders
every tile with them, so the deconvolution is exact up to clipping); thresholds are fractions of the
reference's 99th-percentile concentrations, so they mean the same on every site after normalisation.
Nuclei are difference-of-Gaussian peaks of the haematoxylin concentration at two scales (lymphocyte-sized,
σ 2 µm; epithelial-sized, σ 3.5 µm), sized in µm from the tile's physical side.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from histcode.slides.stain.base import IO

FEATURES: tuple[str, ...] = (
    "h_mean",  # mean haematoxylin concentration over tissue
    "e_mean",  # mean eosin concentration over tissue
    "h_sd",  # haematoxylin contrast
    "e_sd",
    "tissue_frac",  # share of the tile with stain (not glass/fat lumen)
    "nuclear_frac",  # share of tissue above the nuclear haematoxylin level
    "eosin_only_frac",  # share of tissue with eosin but no nuclear haematoxylin (stroma, necrosis, fibrin)
    "nuclei_small_k_mm2",  # σ 2 µm nuclei (lymphocyte-sized) per mm² of tissue, thousands
    "nuclei_large_k_mm2",  # σ 3.5 µm nuclei (epithelial-sized) per mm² of tissue, thousands
    "dark_small_k_mm2",  # small nuclei whose centre is dark (lymphocytes, pyknosis), thousands per mm²
    "nuclear_peak_h",  # mean haematoxylin at the large-scale nuclear centres (chromasia)
    "e_fine",  # eosin fine texture (granularity: necrotic debris, fibrin) over tissue
    "h_fine",  # haematoxylin fine texture (karyorrhexis, chromatin)
    "nuclear_spacing_um",  # mean distance implied by the large-nucleus density, µm (crowding)
)

SIGMA_SMALL_UM = 2.0
SIGMA_LARGE_UM = 3.5
TISSUE_OD = 0.15  # summed RGB optical density above which a pixel is stained
NUCLEAR_LEVEL = 0.35  # × the reference's 99th-percentile H concentration: nuclear chromatin
DARK_LEVEL = 0.6  # × the same: dark (lymphocyte / pyknotic) nuclear centre
EOSIN_LEVEL = 0.25  # × the reference's 99th-percentile E concentration
BLOB_LEVEL = 0.05  # × the 99th-percentile H: minimum DoG response of a nucleus
MIN_TISSUE = 0.05  # per-mm² densities use at least this share of the tile as its tissue area


def _gaussian(sigma_px: float) -> torch.Tensor:
    r = max(1, math.ceil(3 * sigma_px))
    x = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma_px) ** 2)
    return k / k.sum()


class HistomicsEncoder(nn.Module):
    """(B, 3, P, P) stain-normalised tiles in [0, 1] → (B, len(FEATURES)) float32 hand-crafted features.

    ``he``: (3, 2) optical-density vectors of haematoxylin and eosin (the stain reference's ``he_ref``);
    ``max_c``: their 99th-percentile concentrations; ``um_per_px``: physical size of one input pixel."""

    def __init__(self, he: Sequence[Sequence[float]], max_c: Sequence[float], um_per_px: float) -> None:
        super().__init__()
        if not um_per_px > 0:
            raise ValueError(f"histomics: um_per_px must be > 0, got {um_per_px}")
        he_t = torch.as_tensor(he, dtype=torch.float64)
        if he_t.shape != (3, 2):
            raise ValueError(f"histomics: he must be the (3, 2) H&E optical-density matrix, got {tuple(he_t.shape)}")
        # buffers (not constants) so the encoder's fingerprint changes with the reference or the pixel size
        self.register_buffer("unmix", torch.linalg.pinv(he_t).float())  # (2, 3): OD → (H, E) concentrations
        self.register_buffer("max_c", torch.as_tensor(max_c, dtype=torch.float32).reshape(2))
        self.register_buffer("um_per_px", torch.tensor(float(um_per_px)))
        self.register_buffer("k_small", _gaussian(SIGMA_SMALL_UM / um_per_px))
        self.register_buffer("k_small2", _gaussian(1.6 * SIGMA_SMALL_UM / um_per_px))
        self.register_buffer("k_large", _gaussian(SIGMA_LARGE_UM / um_per_px))
        self.register_buffer("k_large2", _gaussian(1.6 * SIGMA_LARGE_UM / um_per_px))
        self.register_buffer("k_fine", _gaussian(max(0.5, 1.0 / um_per_px)))
        self.win_small = 2 * int(SIGMA_SMALL_UM / um_per_px) + 1
        self.win_large = 2 * int(SIGMA_LARGE_UM / um_per_px) + 1
        self.dim = len(FEATURES)

    @staticmethod
    def _blur(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Separable Gaussian of (B, 1, P, P) maps, each map its own group: a depthwise convolution is ~20×
        faster on CPU than one single-channel convolution over the batch."""
        b, _, hgt, wid = x.shape
        r = k.numel() // 2
        y = F.pad(x.reshape(1, b, hgt, wid), (r, r, r, r), mode="replicate")
        y = F.conv2d(y, k.view(1, 1, 1, -1).expand(b, 1, 1, -1), groups=b)
        y = F.conv2d(y, k.view(1, 1, -1, 1).expand(b, 1, -1, 1), groups=b)
        return y.reshape(b, 1, hgt, wid)

    def _peaks(self, g1: torch.Tensor, g2: torch.Tensor, win: int, level: torch.Tensor) -> torch.Tensor:
        """Boolean (B, 1, P, P) difference-of-Gaussian maxima (blurs ``g1`` - ``g2`` of the H map) above the blob
        response level, one per ``win``-px window (≈ 2σ + 1: one peak per nucleus)."""
        dog = g1 - g2
        local_max = F.max_pool2d(dog, win, stride=1, padding=win // 2)
        return (dog >= local_max) & (dog > BLOB_LEVEL * level) & (g1 > NUCLEAR_LEVEL * 0.5 * level)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return self._features(x.float())

    def _stains(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(H, E concentrations, tissue mask), each (B, 1, P, P)."""
        od = torch.add(x * 255.0, 1.0).mul_(1.0 / IO).log_().neg_().clamp_(min=0.0)  # as the normaliser's OD
        conc = torch.einsum("sc,bchw->bshw", self.unmix, od).clamp_(min=0.0)
        return conc[:, :1], conc[:, 1:], (od.sum(dim=1, keepdim=True) > TISSUE_OD).float()

    def _nuclei(self, h: torch.Tensor, tissue: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Boolean (B, 1, P, P) nucleus centres: small, large, dark small; and the two blurred H maps."""
        hmax = self.max_c[0]
        g_small, g_large = self._blur(h, self.k_small), self._blur(h, self.k_large)
        small = self._peaks(g_small, self._blur(h, self.k_small2), self.win_small, hmax) & (tissue > 0)
        large = self._peaks(g_large, self._blur(h, self.k_large2), self.win_large, hmax) & (tissue > 0)
        return small, large, small & (g_small > DARK_LEVEL * hmax), g_small, g_large

    @torch.no_grad()
    def nuclei_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The detected nucleus centres behind the counts (QC pictures): ``small``, ``large``, ``dark`` (B, P, P)
        booleans, and ``tissue``."""
        with torch.autocast(x.device.type, enabled=False):
            h, _, tissue = self._stains(x.float())
            small, large, dark, _, _ = self._nuclei(h, tissue)
        return {"small": small[:, 0], "large": large[:, 0], "dark": dark[:, 0], "tissue": tissue[:, 0] > 0}

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        b, _, hgt, wid = x.shape
        h, e, tissue = self._stains(x)
        hmax, emax = self.max_c[0], self.max_c[1]
        frac = tissue.sum(dim=(1, 2, 3)) / (hgt * wid)
        n_tis = tissue.sum(dim=(1, 2, 3)).clamp(min=1.0)

        def tmean(v: torch.Tensor) -> torch.Tensor:
            return (v * tissue).sum(dim=(1, 2, 3)) / n_tis

        h_mean, e_mean = tmean(h), tmean(e)
        h_sd = (tmean(h * h) - h_mean**2).clamp(min=0).sqrt()
        e_sd = (tmean(e * e) - e_mean**2).clamp(min=0).sqrt()
        nuclear = (h > NUCLEAR_LEVEL * hmax).float()
        eosin_only = ((e > EOSIN_LEVEL * emax) & (h < 0.5 * NUCLEAR_LEVEL * hmax)).float()
        area_mm2 = (frac.clamp(min=MIN_TISSUE) * hgt * wid * self.um_per_px**2 / 1e6)
        small, large, dark, _, g_large = self._nuclei(h, tissue)
        n_small = small.sum(dim=(1, 2, 3)).float()
        n_large = large.sum(dim=(1, 2, 3)).float()
        peak_h = (g_large * large).sum(dim=(1, 2, 3)) / n_large.clamp(min=1.0)
        e_fine = tmean((e - self._blur(e, self.k_fine)).abs())
        h_fine = tmean((h - self._blur(h, self.k_fine)).abs())
        density_large = n_large / area_mm2  # per mm²
        spacing = 1e3 / density_large.clamp(min=1.0).sqrt()  # µm between nuclei on a square lattice
        out = torch.stack([
            h_mean, e_mean, h_sd, e_sd, frac, tmean(nuclear), tmean(eosin_only),
            n_small / area_mm2 / 1e3, density_large / 1e3, dark.sum(dim=(1, 2, 3)).float() / area_mm2 / 1e3,
            peak_h, e_fine, h_fine, spacing.clamp(max=1e3),
        ], dim=1)
        return out.reshape(b, len(FEATURES))
