"""Per-tile heatmap values: which attention scale a heatmap shows and thresholds, and spatial smoothing over
the tiles, shared by the heatmap figures (``histcode.heatmaps``) and their scoring against the truth
(``histcode.metrics.attention_truth``) so that the figure shows exactly the map that is scored.

- ``scale``: ``raw`` the model's per-tile scores before normalisation (attention logits for the attention
  poolings: their Otsu threshold is that of the log softmax weights, which differ only by a constant);
  ``weights`` the softmax weights (heavy-tailed: Otsu picks the few highest tiles); ``percentile`` the rank
  percentile of the raw scores (CLAM's heatmap scale).
- ``smooth_tiles``: Gaussian σ in tile side lengths over tile centres, normalised over the tissue tiles
  present (no background pulls an edge tile down). CLAM draws heatmaps from patches overlapping by 50-95 %
  whose scores are averaged, which smooths over about a tile; this does the same on the stored tile grid.
- ``close_tiles`` / ``fill_holes`` (``close_region``): after thresholding, a morphological closing of the
  selected tiles on the tile grid and the filling of enclosed holes, so that selected nests become the region
  that holds them, as a pathologist outlines a tumour bed rather than its nests.
"""

from __future__ import annotations

import numpy as np

SCALES = ("raw", "weights", "percentile")


def smooth_tile_scores(
    coords: np.ndarray, values: np.ndarray, patch_size_level0: float, sigma_tiles: float, *, truncate: float = 3.0
) -> np.ndarray:
    """Gaussian-weighted mean of ``values`` over tiles whose centres lie within ``truncate``·σ (σ in tiles).

    v'_i = Σ_j w_ij v_j / Σ_j w_ij with w_ij = exp(-d_ij² / 2σ²), d_ij the centre distance in tile sides,
    over the tiles present (so a layout with holes or several grids works); σ = 0 returns ``values``.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if sigma_tiles < 0:
        raise ValueError(f"smoothing sigma must be >= 0 tiles, got {sigma_tiles}")
    if sigma_tiles == 0 or v.size < 2 or v.min() == v.max():  # a constant map stays exactly constant
        return v.copy()
    from scipy.spatial import cKDTree

    c = np.asarray(coords, dtype=np.float64).reshape(-1, 2) / float(patch_size_level0)
    if len(c) != v.size:
        raise ValueError(f"need one value per tile, got {len(c)} coords and {v.size} values")
    pairs = cKDTree(c).query_pairs(truncate * sigma_tiles, output_type="ndarray")  # i < j, self excluded
    i, j = pairs[:, 0], pairs[:, 1]
    w = np.exp(-np.sum((c[i] - c[j]) ** 2, axis=1) / (2.0 * sigma_tiles**2))
    num = v.copy()  # self weight 1
    den = np.ones_like(v)
    np.add.at(num, i, w * v[j])
    np.add.at(num, j, w * v[i])
    np.add.at(den, i, w)
    np.add.at(den, j, w)
    return num / den


def heatmap_values(
    coords: np.ndarray,
    raw: np.ndarray,
    weights: np.ndarray | None,
    patch_size_level0: float,
    *,
    scale: str = "raw",
    smooth_tiles: float = 0.0,
) -> np.ndarray:
    """(N,) values a heatmap shows and thresholds: ``raw``/``weights``/``percentile`` scale, then smoothing."""
    from histcode.metrics.canvas import normalise_scores

    r = np.asarray(raw, dtype=np.float64).ravel()
    if scale == "raw":
        v = r
    elif scale == "weights":
        if weights is None:
            raise ValueError("heatmap scale 'weights' needs the attention weights")
        v = np.asarray(weights, dtype=np.float64).ravel()
    elif scale == "percentile":
        v = normalise_scores(r, "percentile")
    else:
        raise ValueError(f"unknown heatmap scale {scale!r}; valid: {list(SCALES)} (params.yaml heatmaps.scale)")
    return smooth_tile_scores(coords, v, patch_size_level0, smooth_tiles)


def close_region(
    coords: np.ndarray, selected: np.ndarray, patch_size_level0: float, close_tiles: int = 0, fill_holes: bool = False
) -> np.ndarray:
    """(N,) selection after a closing by a disk of radius ``close_tiles`` tiles and optional hole filling.

    Works on the tile grid (level-0 corners / patch size, rounded). The closing runs on the tissue: cells
    without a tile (glass, beyond the slide) are never selected and never erode a region, so nests at the edge
    of the section close as well as inner ones, while a non-selected tissue tile erodes as usual. A tile grid
    with several origins (CLAM's per-contour grids) maps each tile to its nearest cell.
    """
    sel = np.asarray(selected, dtype=bool).ravel()
    r = int(close_tiles)
    if r < 0:
        raise ValueError(f"closing radius must be >= 0 tiles, got {close_tiles}")
    if (r == 0 and not fill_holes) or sel.size == 0 or not sel.any():
        return sel.copy()
    from scipy import ndimage

    c = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    if len(c) != sel.size:
        raise ValueError(f"need one selection flag per tile, got {len(c)} coords and {sel.size} flags")
    ij = np.rint((c - c.min(axis=0)) / float(patch_size_level0)).astype(np.int64) + r + 1
    shape = tuple(ij.max(axis=0) + r + 2)
    grid, tissue = np.zeros(shape, dtype=bool), np.zeros(shape, dtype=bool)
    grid[ij[sel, 0], ij[sel, 1]] = True
    tissue[ij[:, 0], ij[:, 1]] = True
    if r:
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
        disk = (yy**2 + xx**2) <= r * r
        grown = ndimage.binary_dilation(grid, structure=disk) | ~tissue  # no tile: no evidence either way
        grid = ndimage.binary_erosion(grown, structure=disk, border_value=1) & tissue
    if fill_holes:
        grid = ndimage.binary_fill_holes(grid)
    return sel | grid[ij[:, 0], ij[:, 1]]
