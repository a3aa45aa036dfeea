"""The ``tile`` and ``stain`` sections of ``params.yaml`` (defaults = HistCode/CLAM segmentation settings)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from histcode.config import ConfigError


@dataclasses.dataclass(frozen=True)
class TileConfig:
    """Tissue segmentation and tile-grid settings.

    Areas ``a_t`` (minimum tissue piece) and ``a_h`` (minimum hole) are in units of one 512x512 tile at
    the target resolution (CLAM's 512x512 level-0 px for a slide scanned at the target, e.g. 20x), so the
    mask is the same in µm² whatever the scan magnification. Both are capped at ``area_slide_frac`` of the
    slide's area: CLAM's absolute limit (100 units ≈ 6.5 mm² at 0.5 µm/px) would drop a whole small
    biopsy, TMA core or cropped region.
    ``seg_downsample`` is relative to the target resolution, reduced (at most 4x) for small slides so
    the segmentation image keeps up to ``seg_min_px`` pixels on its longer side (CLAM's fixed 64x would
    leave a 2 mm biopsy 30 px wide).
    ``mpp_snap``: when target/slide µm-per-px is within this relative tolerance of a power of two (e.g. a
    0.499 µm/px "20x" slide), the exact power of two is used, so tiles need no resampling.
    """

    target_mpp: float = 0.5
    tile_px: int = 256
    tissue_threshold: float = 0.5
    tissue_rule: Literal["fraction", "four_point"] = "fraction"
    seg_downsample: int = 64
    seg_min_px: int = 1024
    median_blur: int = 7
    use_otsu: bool = True
    sthresh: int = 8
    close: int = 4
    a_t: float = 100.0
    a_h: float = 3.0
    max_n_holes: int = 2048
    area_slide_frac: float = 0.01
    exclude_pen: bool = True
    white_value: int = 220
    od_threshold: float = 0.1  # mean log10 optical density vs the slide's glass above which a pixel is tissue
    mpp_snap: float = 0.05
    mask_png_max_px: int = 2048
    workers: int = 2

    def __post_init__(self) -> None:
        if self.target_mpp <= 0 or self.tile_px <= 0:
            raise ConfigError(f"tile: target_mpp ({self.target_mpp}) and tile_px ({self.tile_px}) must be > 0")
        if not 0.0 <= self.tissue_threshold <= 1.0:
            raise ConfigError(f"tile.tissue_threshold must be in [0, 1], got {self.tissue_threshold}")
        if self.seg_downsample < 1:
            raise ConfigError(f"tile.seg_downsample must be >= 1, got {self.seg_downsample}")
        if self.median_blur < 0 or (self.median_blur > 1 and self.median_blur % 2 == 0):
            raise ConfigError(f"tile.median_blur must be 0, 1 or an odd number, got {self.median_blur}")


@dataclasses.dataclass(frozen=True)
class StainConfig:
    """Stain normalisation: method and how many train-cohort tiles fit the reference."""

    method: Literal["macenko", "reinhard", "none"] = "macenko"
    fit_tiles: int = 64

    def __post_init__(self) -> None:
        if self.fit_tiles < 1:
            raise ConfigError(f"stain.fit_tiles must be >= 1, got {self.fit_tiles}")
