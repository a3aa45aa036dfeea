"""Attention heatmaps painted on a slide thumbnail, the original thumbnail beside it, with a colour bar.

``render_heatmap`` is shared by the tumour model (attention) and the DE stage (per-gene attention). The
slide is read only as a thumbnail (``SlideReader.thumbnail`` downsamples from a low pyramid level in
strips), so a 100k × 100k px slide costs a few MB.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from histcode.atomic import save_figure
from histcode.metrics.canvas import normalise_scores, paint, tile_boxes


def read_thumbnail(slide_path: str | Path, max_px: int) -> tuple[np.ndarray, tuple[float, float]]:
    """(thumbnail (h, w, 3) uint8, level-0 px per thumbnail px along (x, y))."""
    from histcode.slides.reader import SlideReader

    with SlideReader(slide_path) as reader:
        thumb = reader.thumbnail(max_px)
        w0, h0 = reader.dimensions
    return thumb, (w0 / thumb.shape[1], h0 / thumb.shape[0])


def overlay(thumb: np.ndarray, heat: np.ndarray, *, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """Blend colour-mapped ``heat`` (h, w) in [0, 1] (NaN = no tile: left as is) onto ``thumb``."""
    import matplotlib

    rgba = matplotlib.colormaps[cmap](np.nan_to_num(heat, nan=0.0))[..., :3]
    tiles = ~np.isnan(heat)
    out = thumb.astype(np.float32) / 255.0
    out[tiles] = (1 - alpha) * out[tiles] + alpha * rgba[tiles]
    return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)


def render_heatmap(
    slide_path: str | Path,
    coords: np.ndarray,
    scores: np.ndarray,
    patch_size_level0: float,
    out_png: str | Path,
    *,
    title: str = "",
    thumb_max_px: int = 1024,
    alpha: float = 0.5,
    cmap: str = "jet",
    normalise: str = "percentile",
    label: str = "attention percentile",
    thumbnail: tuple[np.ndarray, tuple[float, float]] | None = None,
    region: np.ndarray | None = None,
    region_label: str = "thresholded region",
) -> Path:
    """Write a two-panel PNG (thumbnail | heatmap overlay + colour bar) of per-tile ``scores``.

    coords (N, 2) level-0 top-left (x, y) of tiles of ``patch_size_level0`` px; scores (N,) any scale
    (normalised by ``normalise``); only tile areas (tissue) are coloured. ``thumbnail`` = a precomputed
    ``read_thumbnail`` result (to render several score sets of one slide without re-reading it). ``region``
    (N,) boolean: tiles whose outline is drawn on the heatmap panel (e.g. the thresholded map the truth check
    scores), named ``region_label`` in the legend; the slide panel stays clean for reading the tissue.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    coords = np.asarray(coords).reshape(-1, 2)
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if len(coords) != len(scores):
        raise ValueError(f"{slide_path}: {len(coords)} tile coords but {len(scores)} scores")
    thumb, ds = thumbnail if thumbnail is not None else read_thumbnail(slide_path, thumb_max_px)
    boxes = tile_boxes(coords, patch_size_level0, ds, thumb.shape[:2])
    heat, _ = paint(boxes, normalise_scores(scores, normalise), thumb.shape[:2])
    blended = overlay(thumb, heat, alpha=alpha, cmap=cmap)

    h, w = thumb.shape[:2]
    fig_w = 12.0
    fig_h = max(3.0, fig_w / 2 * h / w + 0.9)
    fig, axes = plt.subplots(1, 2, figsize=(fig_w, fig_h), constrained_layout=True)
    axes[0].imshow(thumb)
    axes[0].set_title("slide")
    axes[1].imshow(blended)
    axes[1].set_title(f"{len(scores)} tiles")
    if region is not None:
        region = np.asarray(region, dtype=bool).ravel()
        if len(region) != len(scores):
            raise ValueError(f"{slide_path}: {len(region)} region flags for {len(scores)} tiles")
        _, inside = paint(boxes[region], np.ones(int(region.sum())), thumb.shape[:2])
        if inside.any() and not inside.all():
            axes[1].contour(inside > 0, levels=[0.5], colors="white", linewidths=1.2)
            axes[1].plot([], [], color="white", lw=1.2, label=region_label)
            axes[1].legend(loc="lower right", fontsize=8, facecolor="0.3", labelcolor="white", framealpha=0.8)
    for ax in axes:
        ax.set_axis_off()
    fig.colorbar(
        ScalarMappable(Normalize(0, 1), cmap=cmap), ax=axes[1], fraction=0.046, pad=0.02, label=label
    )
    if title:
        fig.suptitle(title)
    out_png = Path(out_png)
    return save_figure(fig, out_png, dpi=max(100, int(w / (fig_w / 2) * 1.0)))
