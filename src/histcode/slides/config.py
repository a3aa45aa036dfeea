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
    ``tissue_model``: ``regions`` (fat recognised, holes cut only when large and glass), ``otsu_od`` (the
    previous mask) or ``clam`` (CLAM's segmentation); see :mod:`histcode.slides.mask`.
    ``area_units: level0`` counts ``a_t``/``a_h`` in CLAM's 512x512 level-0 px instead; ``grid_origin:
    contour`` lays CLAM's grid, one per tissue piece from its bounding box (padded), instead of one grid
    from the slide's corner. ``seg_level: clam`` segments the pyramid level CLAM picks (closest to 64x
    level-0 downsample, often level 0 on small slides) instead of ``seg_downsample``. :meth:`clam` is the
    preset that reproduces CLAM's ``create_patches_fp.py``.
    ``edge_tiles`` (slide grid): also the partial column and row at the slide's right and bottom border, read
    padded with white and scored with their outside as glass, so tissue touching the border is not dropped
    (CLAM pads its per-contour grids likewise); ``false``: whole tiles only.
    ``mpp_snap``: when target/slide µm-per-px is within this relative tolerance of a power of two (e.g. a
    0.499 µm/px "20x" slide), the exact power of two is used, so tiles need no resampling.
    """

    target_mpp: float = 0.5
    tile_px: int = 256
    tissue_threshold: float = 0.5
    tissue_rule: Literal["fraction", "four_point"] = "fraction"
    tissue_model: Literal["regions", "otsu_od", "clam"] = "regions"
    area_units: Literal["target", "level0"] = "target"
    grid_origin: Literal["slide", "contour"] = "slide"
    edge_tiles: bool = True
    seg_level: Literal["auto", "clam"] = "auto"
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
    pen_dark_ratio: float = 0.55  # ink's lighter part: darker than this x the median tissue brightness, touching ink
    black_ink_ratio: float = 0.4  # near-black ink only below this x the median tissue brightness (0: any V < 50);
    # acts only on slides stained near-black (tissue median < 125); black_ink_relative_preregistration.txt
    red_ink_anchor: float = 60.0  # light red is ink only where some red is this far above the red saturation floor
    # (0: always), so blood and heavy eosin are not taken for red marker; red_ink_anchor_preregistration.txt
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
        if not 0.0 < self.pen_dark_ratio < 1.0:
            raise ConfigError(f"tile.pen_dark_ratio must be in (0, 1), got {self.pen_dark_ratio}; 0.55 is the "
                              "default, 0.70 finds lighter violet-black marker strokes")
        if not 0.0 <= self.black_ink_ratio < 1.0:
            raise ConfigError(f"tile.black_ink_ratio must be in [0, 1), got {self.black_ink_ratio}; 0 takes every "
                              "near-black region for ink, 0.4 keeps the stroma of slides stained near-black")
        if not 0.0 <= self.red_ink_anchor <= 255.0:
            raise ConfigError(f"tile.red_ink_anchor must be in [0, 255], got {self.red_ink_anchor}; 0 takes every "
                              "bright or saturated red region for ink, 60 only those on slides with a red marker")
        if self.median_blur < 0 or (self.median_blur > 1 and self.median_blur % 2 == 0):
            raise ConfigError(f"tile.median_blur must be 0, 1 or an odd number, got {self.median_blur}")


    @classmethod
    def clam(cls, **overrides: object) -> TileConfig:
        """CLAM-compatible preset: CLAM's segmentation, four-point rule, level-0 area units, per-contour
        grids, no slide-size cap on the areas (CLAM's ``tiny_otsu``-like areas unless overridden)."""
        values: dict[str, object] = dict(tissue_model="clam", tissue_rule="four_point", area_units="level0",
                                         grid_origin="contour", seg_level="clam", area_slide_frac=1.0, a_t=1.0, a_h=1.0,
                                         max_n_holes=8)
        values.update(overrides)
        return dataclasses.replace(cls(), **values)  # type: ignore[arg-type]

    def with_settings(self, items: list[str] | None) -> TileConfig:
        """This config with ``KEY=VALUE`` settings as a user types them (values read as YAML scalars: ``0.7``,
        ``true``, ``regions``); benchmarks take them on the command line to compare settings on the same slides."""
        import yaml

        over: dict[str, object] = {}
        for item in items or []:
            key, sep, value = item.partition("=")
            if not sep or key not in type(self).__dataclass_fields__:
                raise ConfigError(f"tile setting {item!r}: expected KEY=VALUE with KEY one of params.yaml's tile "
                                  "options (e.g. pen_dark_ratio=0.7)")
            over[key] = yaml.safe_load(value)
        try:
            return dataclasses.replace(self, **over)  # type: ignore[arg-type]
        except TypeError as e:  # a value of the wrong kind fails a range check with a bare TypeError
            raise ConfigError(f"tile setting {' '.join(items or [])!r}: a value has the wrong type ({e})") from None


@dataclasses.dataclass(frozen=True)
class StainConfig:
    """Stain normalisation: method and how many train-cohort tiles fit the reference."""

    method: Literal["macenko", "reinhard", "none"] = "macenko"
    fit_tiles: int = 64

    def __post_init__(self) -> None:
        if self.fit_tiles < 1:
            raise ConfigError(f"stain.fit_tiles must be >= 1, got {self.fit_tiles}")
