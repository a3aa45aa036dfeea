"""The ``heatmaps`` section of ``params.yaml``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HeatmapConfig:
    """Which slides to render and how.

    ``slides``: a number N (the N train-cohort tumour slides with the highest held-out P(tumour)) or a list
    of slide ids. ``pooling``: whose attention (null = ``mil.pooling``). ``scale`` and ``smooth_tiles``: the
    map the heatmap shows and the truth check thresholds (``histcode.metrics.heatmap_values``: attention scale
    raw | weights | percentile, then a Gaussian of σ = ``smooth_tiles`` tile sides over the tile centres; 0 =
    none); ``normalise`` then maps it to colours. ``truth_*``: attention-vs-truth evaluation, run for synthetic
    cohorts only (top-k precision of the raw attention, IoU of the heatmap at an automatic threshold, ``otsu``
    or ``kittler`` (minimum error), or a fixed one in [0, 1] on the percentile scale; the PNG outlines it).
    ``close_tiles`` / ``fill_holes``: the thresholded tiles closed into a region (a disk of that many tiles,
    then enclosed holes filled; ``histcode.metrics.heatmap_values.close_region``); 0 / false = as thresholded.
    ``workers``: slides rendered at once in spawned processes while this one runs the truth check (0 = one by
    one, here).
    """

    slides: int | list[str] = 4
    pooling: str | None = None
    thumb_max_px: int = 1024
    alpha: float = 0.5
    cmap: str = "jet"
    normalise: str = "percentile"
    gallery_tiles: int = 8
    gallery_px: int = 160
    geojson: bool = True
    truth_top_k: int = 20
    truth_threshold: str | float = "otsu"
    scale: str = "raw"
    smooth_tiles: float = 0.0
    close_tiles: int = 0
    fill_holes: bool = False
    workers: int = 2

    def __post_init__(self) -> None:
        from histcode.config import ConfigError
        from histcode.metrics.attention_truth import AUTO_THRESHOLDS
        from histcode.metrics.heatmap_values import SCALES

        if self.scale not in SCALES:
            raise ConfigError(f"heatmaps.scale: {self.scale!r} is not one of {list(SCALES)}")
        if not float(self.smooth_tiles) >= 0:
            raise ConfigError(f"heatmaps.smooth_tiles: {self.smooth_tiles!r} must be >= 0 (tile sides; 0 = none)")
        if isinstance(self.close_tiles, bool) or not isinstance(self.close_tiles, int) or self.close_tiles < 0:
            raise ConfigError(f"heatmaps.close_tiles: {self.close_tiles!r} must be a whole number of tiles >= 0")
        if not isinstance(self.fill_holes, bool):
            raise ConfigError(f"heatmaps.fill_holes: {self.fill_holes!r} must be true or false")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise ConfigError(f"heatmaps.workers: {self.workers!r} must be a whole number >= 0 (0 = in this process)")
        t = self.truth_threshold
        if not (t in AUTO_THRESHOLDS or (not isinstance(t, (str, bool)) and 0 <= float(t) <= 1)):
            raise ConfigError(
                f"heatmaps.truth_threshold: {t!r} is not one of {list(AUTO_THRESHOLDS)} or a number in [0, 1]"
            )
