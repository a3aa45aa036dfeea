"""The ``heatmaps`` section of ``params.yaml``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HeatmapConfig:
    """Which slides to render and how.

    ``slides``: a number N (the N train-cohort tumour slides with the highest held-out P(tumour)) or a list
    of slide ids. ``pooling``: whose attention (null = ``mil.pooling``). ``truth_*``: attention-vs-truth
    evaluation, run for synthetic cohorts only (top-k precision, IoU at an Otsu or fixed threshold).
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
