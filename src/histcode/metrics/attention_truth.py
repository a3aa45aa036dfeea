"""Does the tumour model's attention find the tumour? Score a slide's tile attention against a truth region.

Plain arrays in, numbers out; ``histcode.heatmaps.attention_truth`` reads the files. The target is the
**tumour bed** (``histcode.io.truth.read_tumour_bed``): the tumour region as a pathologist
outlines it. Tumour cells fill only 40-60 % of the bed in nests, glands and cords, so scoring a heatmap
against the cell-level tumour code caps its IoU far below 1 even for a perfect tumour-region heatmap; those
cell-level numbers are still reported, with the suffix ``_cells``.
- top-k precision: share of the k highest-attention tiles that lie in the region (≥ ``min_fraction`` of the
  tile's mask footprint); chance level is the region's share of all tiles (``tumour_tile_fraction``);
- AUC: threshold-free, how well the raw attention ranks region tiles above the other tiles (Mann-Whitney;
  NaN when a slide has tiles of one kind only). It bounds what any threshold of the map can reach: a map whose
  ranking mixes the region with the rest cannot be thresholded into the region;
- IoU at mask resolution between the thresholded heatmap and the region pixels of the tiled area, with its
  two halves: ``region_precision`` (share of the outlined area inside the region) and ``region_recall``. The
  heatmap is the one the figures show (``histcode.metrics.heatmap_values``: attention scale, then spatial
  smoothing over the tiles); its tiles pass an automatic threshold (Otsu, or Kittler-Illingworth minimum
  error) or a fixed percentile-normalised one.
  Top-k precision ranks the model's own raw scores (the tiles the galleries show), never the smoothed map.
"""

from __future__ import annotations

import numpy as np

from histcode.metrics.canvas import average_ranks, box_fractions, normalise_scores, paint, tile_boxes
from histcode.metrics.heatmap_values import close_region, heatmap_values

AUTO_THRESHOLDS = ("otsu", "kittler")


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of a 1-D sample (maximises between-class variance over a histogram)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0 or v.min() == v.max():
        return float(v.min()) if v.size else 0.0
    hist, edges = np.histogram(v, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres) / np.maximum(w0, 1)
    m1 = (np.sum(hist * centres) - np.cumsum(hist * centres)) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(edges[1:][int(np.argmax(between[:-1]))])


def kittler_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Kittler & Illingworth's minimum-error threshold of a 1-D sample: the cut that best fits two Gaussians
    with their own sizes and variances, J(t) = P1 ln σ1² + P2 ln σ2² − 2 (P1 ln P1 + P2 ln P2), over a histogram.

    Otsu assumes equal class variances and drifts toward equal class sizes; on a tumour slide the bed holds most
    tiles, so Otsu tends to cut inside the bed. Cuts that leave a class with zero variance are skipped; a sample
    with no valid cut falls back to Otsu's threshold.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0 or v.min() == v.max():
        return float(v.min()) if v.size else 0.0
    hist, edges = np.histogram(v, bins=bins)
    c = (edges[:-1] + edges[1:]) / 2
    p = hist / hist.sum()
    p1, m1, s1 = np.cumsum(p)[:-1], np.cumsum(p * c)[:-1], np.cumsum(p * c * c)[:-1]  # class 1 = bins [0, k)
    p2, m2, s2 = 1 - p1, (p * c).sum() - m1, (p * c * c).sum() - s1
    with np.errstate(divide="ignore", invalid="ignore"):
        v1 = s1 / p1 - (m1 / p1) ** 2
        v2 = s2 / p2 - (m2 / p2) ** 2
        ok = (p1 > 0) & (p2 > 0) & (v1 > 1e-12 * c.var()) & (v2 > 1e-12 * c.var())
        j = p1 * np.log(v1) + p2 * np.log(v2) - 2 * (p1 * np.log(p1) + p2 * np.log(p2))
    if not ok.any():
        return otsu_threshold(v, bins)
    return float(edges[1:-1][np.flatnonzero(ok)[np.argmin(j[ok])]])


def rank_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC of ``scores`` for ``positive`` vs the rest (ties count half; NaN without both classes)."""
    pos = np.asarray(positive, dtype=bool).ravel()
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = average_ranks(np.asarray(scores, dtype=np.float64).ravel())
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def selected_tiles(scores: np.ndarray, threshold: str | float = "otsu") -> np.ndarray:
    """Boolean (N,) tiles of the thresholded heatmap."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    if threshold in AUTO_THRESHOLDS:
        if s.min() == s.max():
            return np.ones(s.size, bool)
        return s >= (otsu_threshold(s) if threshold == "otsu" else kittler_threshold(s))
    if isinstance(threshold, str):
        raise ValueError(f"threshold must be one of {list(AUTO_THRESHOLDS)} or a number in [0, 1], got {threshold!r}")
    return normalise_scores(s) >= float(threshold)


def outlined_tiles(
    coords: np.ndarray,
    values: np.ndarray,
    patch_size_level0: float,
    threshold: str | float = "otsu",
    close_tiles: int = 0,
    fill_holes: bool = False,
) -> np.ndarray:
    """Boolean (N,) tiles the heatmap outlines: its values thresholded, then closed into a region. The PNG draws
    this outline and the truth check scores it, so both go through here."""
    return close_region(coords, selected_tiles(values, threshold), patch_size_level0, close_tiles, fill_holes)


def attention_truth_metrics(
    coords: np.ndarray,
    scores: np.ndarray,
    patch_size_level0: float,
    truth: np.ndarray,
    downsample: float,
    *,
    top_k: int = 20,
    threshold: str | float = "otsu",
    min_fraction: float = 0.5,
    weights: np.ndarray | None = None,
    scale: str = "raw",
    smooth_tiles: float = 0.0,
    close_tiles: int = 0,
    fill_holes: bool = False,
) -> dict[str, float]:
    """Top-k precision and heatmap IoU of one slide against one truth region.

    coords (N, 2) level-0 tile corners; scores (N,) raw attention (the top-k ranking uses it as is); the
    thresholded heatmap is ``heatmap_values(coords, scores, weights, ..., scale, smooth_tiles)``, its selection
    outlined by ``outlined_tiles(.., threshold, close_tiles, fill_holes)``; truth (H, W)
    boolean region (e.g. the tumour bed) at ``downsample`` level-0 px per mask px.
    """
    coords = np.asarray(coords).reshape(-1, 2)
    s = np.asarray(scores, dtype=np.float64).ravel()
    if len(coords) != len(s) or len(s) == 0:
        raise ValueError(
            f"need one score per tile and at least one tile, got {len(coords)} coords, {len(s)} scores"
        )
    truth = np.asarray(truth, dtype=bool)
    if truth.ndim != 2:
        raise ValueError(f"truth must be a 2-D boolean map, got shape {truth.shape}")
    boxes = tile_boxes(coords, patch_size_level0, (downsample, downsample), truth.shape)
    in_tumour = box_fractions(boxes, truth) >= min_fraction
    k = min(top_k, len(s))
    top = np.argsort(-s, kind="stable")[:k]
    # constant scores (mean pooling) rank nothing: report the expectation under random tie-breaking
    precision = float(in_tumour[top].mean()) if s.max() > s.min() else float(in_tumour.mean())
    _, tiled = paint(boxes, np.ones(len(s)), truth.shape)
    values = heatmap_values(coords, s, weights, patch_size_level0, scale=scale, smooth_tiles=smooth_tiles)
    sel = outlined_tiles(coords, values, patch_size_level0, threshold, close_tiles, fill_holes)
    _, pred = paint(boxes[sel], np.ones(int(sel.sum())), truth.shape)
    tiled_truth = truth & (tiled > 0)
    pred_px = pred > 0
    union = np.logical_or(pred_px, tiled_truth).sum()
    hit = float(np.logical_and(pred_px, tiled_truth).sum())
    iou = hit / union if union else float("nan")
    n_pred, n_truth = float(pred_px.sum()), float(tiled_truth.sum())
    return {
        "top_k_precision": precision,
        "k": float(k),
        "iou": iou,
        "region_precision": hit / n_pred if n_pred else float("nan"),  # share of the outlined area in the region
        "region_recall": hit / n_truth if n_truth else float("nan"),  # share of the region outlined
        "auc": rank_auc(s, in_tumour),
        "tumour_tile_fraction": float(in_tumour.mean()),
        "selected_fraction": float(sel.mean()),
        "n_tiles": float(len(s)),
    }


CELL_KEYS = ("top_k_precision", "iou", "auc", "tumour_tile_fraction")  # also reported against tumour cells
