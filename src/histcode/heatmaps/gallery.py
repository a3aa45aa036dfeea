"""Galleries of the highest- and lowest-scoring tiles of a slide (read at tile size, one at a time)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from histcode.atomic import save_figure


def ranked_tiles(scores: np.ndarray, k: int, *, highest: bool = True) -> np.ndarray:
    """Indices of the k highest (or lowest) scores, best first; ties keep tile order (stable)."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    order = np.argsort(-s if highest else s, kind="stable")
    return order[: min(k, s.size)]


def render_gallery(
    slide_path: str | Path,
    coords: np.ndarray,
    scores: np.ndarray,
    patch_size_level0: int,
    out_png: str | Path,
    *,
    k: int = 8,
    highest: bool = True,
    tile_px: int = 160,
    title: str = "",
) -> Path:
    """Grid of the k top (or bottom) tiles with their rank, score and level-0 position."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from histcode.slides.reader import SlideReader

    idx = ranked_tiles(scores, k, highest=highest)
    if idx.size == 0:
        raise ValueError(f"{slide_path}: no tiles to show")
    cols = min(idx.size, 4)
    rows = math.ceil(idx.size / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.9 * rows + 0.4), squeeze=False)
    with SlideReader(slide_path) as reader:
        for ax, (rank, i) in zip(axes.ravel(), enumerate(idx, 1), strict=False):
            x, y = (int(v) for v in coords[i])
            ax.imshow(reader.read_tile(x, y, int(patch_size_level0), tile_px))
            ax.set_title(f"#{rank}  {scores[i]:.3g}\n({x}, {y})", fontsize=8)
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.suptitle(title or f"{'highest' if highest else 'lowest'} {idx.size} tiles")
    fig.tight_layout()
    out_png = Path(out_png)
    return save_figure(fig, out_png, dpi=100)
