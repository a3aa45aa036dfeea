"""Heatmap values: the scale a heatmap thresholds (logits vs softmax weights vs percentiles), the Gaussian
smoothing over tile centres and the closing of the selection into a region, against hand-computed answers."""

from __future__ import annotations

import numpy as np
import pytest

from histcode.metrics.attention_truth import attention_truth_metrics, selected_tiles
from histcode.metrics.heatmap_values import close_region, heatmap_values, smooth_tile_scores


def row(n: int, patch: int = 256) -> np.ndarray:
    return np.stack([np.arange(n) * patch, np.zeros(n, int)], 1)


def test_smoothing_a_row_of_three_tiles_by_hand() -> None:
    """σ = 1 tile, neighbours at 1 and 2 tiles weigh e^-1/2 and e^-2 (all within 3σ)."""
    v = np.array([0.0, 3.0, 9.0])
    w1, w2 = np.exp(-0.5), np.exp(-2.0)
    want = [
        (0.0 + w1 * 3 + w2 * 9) / (1 + w1 + w2),
        (w1 * 0 + 3 + w1 * 9) / (1 + 2 * w1),
        (w2 * 0 + w1 * 3 + 9) / (1 + w1 + w2),
    ]
    np.testing.assert_allclose(smooth_tile_scores(row(3), v, 256, 1.0), want, rtol=1e-12)
    # tiles 3σ + ε apart do not see each other; σ = 0 and constant maps are returned unchanged
    far = np.array([[0, 0], [256 * 4, 0]])
    np.testing.assert_array_equal(smooth_tile_scores(far, [1.0, 5.0], 256, 1.0), [1.0, 5.0])
    np.testing.assert_array_equal(smooth_tile_scores(row(3), v, 256, 0.0), v)
    np.testing.assert_array_equal(smooth_tile_scores(row(3), np.full(3, 0.3), 256, 2.0), np.full(3, 0.3))
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        smooth_tile_scores(row(3), v, 256, -1.0)


def test_smoothing_is_layout_free() -> None:
    """Same answer in level-0 px of another patch size, and for tiles listed in any order."""
    rng = np.random.default_rng(3)
    xs, ys = np.meshgrid(np.arange(7), np.arange(5))
    grid = np.stack([xs.ravel(), ys.ravel()], 1)
    v = rng.normal(size=len(grid))
    a = smooth_tile_scores(grid * 256, v, 256, 1.5)
    b = smooth_tile_scores(grid * 512, v, 512, 1.5)
    perm = rng.permutation(len(grid))
    c = smooth_tile_scores(grid[perm] * 256, v[perm], 256, 1.5)
    np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(c, a[perm], rtol=1e-12)
    assert a.std() < v.std()  # smoothing shrinks the spread


def test_otsu_on_logits_differs_from_otsu_on_softmax_weights() -> None:
    """Logits 0 (x10), 2 (x10), 6 (x1). Between-class variance, logits: {0}|{2,6} 10·11·(26/11)² = 614.5 >
    {0,2}|{6} 20·1·5² = 500, so 11 tiles pass; weights e^0, e^2, e^6: {0}|{2,6} 10·11·42.4² ≈ 1.98e5 <
    {0,2}|{6} 20·1·398.2² ≈ 3.17e6, so only the e^6 tile passes."""
    logits = np.r_[np.zeros(10), np.full(10, 2.0), 6.0]
    weights = np.exp(logits) / np.exp(logits).sum()
    coords = row(21)
    on_logits = heatmap_values(coords, logits, weights, 256, scale="raw")
    on_weights = heatmap_values(coords, logits, weights, 256, scale="weights")
    assert selected_tiles(on_logits).sum() == 11
    assert selected_tiles(on_weights).sum() == 1
    # the log of the weights is the logits up to a constant: the same tiles pass
    assert selected_tiles(np.log(weights)).sum() == 11
    # percentile ranks keep the order; of distinct scores they are uniform, so Otsu halves them whatever the
    # scores (it carries no information about where the region ends)
    pct = heatmap_values(coords, logits, weights, 256, scale="percentile")
    assert np.array_equal(np.argsort(pct, kind="stable"), np.argsort(logits, kind="stable"))
    heavy = np.exp(np.random.default_rng(0).normal(0, 3, 400))
    assert selected_tiles(heatmap_values(row(400), heavy, None, 256, scale="percentile")).sum() == pytest.approx(
        200, abs=2
    )
    with pytest.raises(ValueError, match="unknown heatmap scale"):
        heatmap_values(coords, logits, weights, 256, scale="log")
    with pytest.raises(ValueError, match="needs the attention weights"):
        heatmap_values(coords, logits, None, 256, scale="weights")


def nested_bed() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A 6 x 8 tile grid (256 px tiles, truth at 16 px per mask px), bed = the left 4 columns: nests (logit 4)
    alternate with stroma (logit 1) in a checkerboard inside it, 0 outside. Returns coords, scores, the bed
    tiles and the truth mask."""
    xs, ys = np.meshgrid(np.arange(8), np.arange(6))
    coords = np.stack([xs.ravel(), ys.ravel()], 1) * 256
    bed_tile = xs.ravel() < 4
    nest = bed_tile & ((xs.ravel() + ys.ravel()) % 2 == 0)
    scores = np.where(nest, 4.0, np.where(bed_tile, 1.0, 0.0))
    truth = np.zeros((6 * 16, 8 * 16), bool)
    truth[:, : 4 * 16] = True
    return coords, scores, bed_tile, truth


def test_smoothing_fills_a_nested_tumour_bed() -> None:
    """A 6 x 8 tile grid, bed = the left 4 columns. Inside the bed tumour nests (logit 4) alternate with
    stroma (logit 1) in a checkerboard; outside all tiles are 0. Otsu on the raw map selects only the 12
    nests (IoU 12/24 = 0.5); after σ = 1 tile smoothing every bed tile averages well above every non-bed
    tile and the whole bed passes (IoU 1), while top-k precision (raw ranking) stays 1."""
    coords, scores, _, truth = nested_bed()
    raw = attention_truth_metrics(coords, scores, 256, truth, 16, top_k=10)
    assert raw["iou"] == pytest.approx(0.5) and raw["selected_fraction"] == pytest.approx(12 / 48)
    smooth = attention_truth_metrics(coords, scores, 256, truth, 16, top_k=10, smooth_tiles=1.0)
    assert smooth["iou"] == 1.0 and smooth["top_k_precision"] == 1.0
    assert raw["top_k_precision"] == 1.0


def grid_coords(h: int, w: int, patch: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w]
    return np.stack([xs.ravel(), ys.ravel()], 1) * patch, xs.ravel(), ys.ravel()


def test_closing_bridges_gaps_up_to_twice_the_radius() -> None:
    """A row of 10 tiles selected as X.X...X...: radius 1 closes the one-tile gap, not the three-tile one;
    radius 2 closes both. Tiles past the last selected one stay out: their unselected neighbours erode them."""
    coords = row(10)
    sel = np.array([1, 0, 1, 0, 0, 0, 1, 0, 0, 0], bool)
    assert close_region(coords, sel, 256, close_tiles=1).astype(int).tolist() == [1, 1, 1, 0, 0, 0, 1, 0, 0, 0]
    assert close_region(coords, sel, 256, close_tiles=2).astype(int).tolist() == [1, 1, 1, 1, 1, 1, 1, 0, 0, 0]
    assert close_region(coords, sel, 256, close_tiles=0).tolist() == sel.tolist()


def test_fill_holes_selects_enclosed_tiles_only() -> None:
    """A 5 x 5 grid with a selected ring of side 3 around tile (2, 2): filling selects the centre and nothing
    outside the ring."""
    coords, xs, ys = grid_coords(5, 5)
    ring = (np.abs(xs - 2) <= 1) & (np.abs(ys - 2) <= 1) & ~((xs == 2) & (ys == 2))
    out = close_region(coords, ring, 256, fill_holes=True)
    assert out.sum() == 9 and out[(xs == 2) & (ys == 2)].all()


def test_closing_never_selects_cells_without_a_tile() -> None:
    """Two selected tiles on either side of a glass cell (no tile): the closing bridges the gap in the grid
    but only existing tiles come back, so the result is the two tiles."""
    coords = np.array([[0, 0], [512, 0]])
    out = close_region(coords, np.array([True, True]), 256, close_tiles=1, fill_holes=True)
    assert out.tolist() == [True, True] and len(out) == 2


def test_closing_turns_nests_into_the_bed() -> None:
    """The nested bed of the smoothing test: the 12 nests alone give IoU 0.5. A closing of radius 1 (a cross)
    fills every stroma tile of the bed whose four neighbours are nests or outside the tissue: all 12 but the
    three on the bed's border with the normal tiles (x = 3, y even), whose normal neighbour erodes them:
    21 of 24 bed tiles, IoU 0.875, nothing outside the bed."""
    coords, scores, bed_tile, truth = nested_bed()
    closed = attention_truth_metrics(coords, scores, 256, truth, 16, top_k=10, close_tiles=1)
    assert closed["iou"] == pytest.approx(21 / 24) and closed["selected_fraction"] == pytest.approx(21 / 48)
    assert close_region(coords, scores >= 4, 256, close_tiles=1)[~bed_tile].sum() == 0


def test_closing_rejects_a_negative_radius_and_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="radius"):
        close_region(row(3), np.ones(3, bool), 256, close_tiles=-1)
    with pytest.raises(ValueError, match="one selection flag per tile"):
        close_region(row(3), np.ones(2, bool), 256, close_tiles=1)
