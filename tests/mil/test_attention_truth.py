"""Attention vs ground truth: top-k precision and heatmap IoU on hand-made masks with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from histcode.mil.attention_truth import attention_truth_metrics, otsu_threshold, selected_tiles


def layout() -> tuple[np.ndarray, np.ndarray]:
    """A 4 x 6 grid of 256-px tiles; mask at downsample 16 with tumour (3) under the left 3 columns."""
    xs, ys = np.meshgrid(np.arange(6) * 256, np.arange(4) * 256)
    coords = np.stack([xs.ravel(), ys.ravel()], 1)
    mask = np.full((64, 96), 1)
    mask[:, :48] = 3
    return coords, mask


def test_perfect_and_inverted_attention() -> None:
    coords, mask = layout()
    tumour = coords[:, 0] < 768
    good = attention_truth_metrics(coords, np.where(tumour, 3.0, -3.0), 256, mask, 16, [3], top_k=5)
    assert good["top_k_precision"] == 1.0 and good["iou"] == 1.0 and good["tumour_tile_fraction"] == 0.5
    bad = attention_truth_metrics(coords, np.where(tumour, -3.0, 3.0), 256, mask, 16, [3], top_k=5)
    assert bad["top_k_precision"] == 0.0 and bad["iou"] == 0.0


def test_partial_overlap_matches_hand_count() -> None:
    coords, mask = layout()
    # the 4 tiles of column 2 (tumour) and column 3 (not) score high: selected area = 8 tiles, truth = 12
    scores = np.where(np.isin(coords[:, 0], [512, 768]), 1.0, 0.0)
    m = attention_truth_metrics(coords, scores, 256, mask, 16, [3], top_k=8, threshold=0.5)
    assert m["top_k_precision"] == pytest.approx(0.5)
    assert m["iou"] == pytest.approx(4 / (8 + 12 - 4))
    # a tile straddling the boundary counts as tumour only if >= half of it is tumour
    shifted = attention_truth_metrics(
        np.array([[656, 0], [600, 0]]), np.array([2.0, 1.0]), 256, mask, 16, [3], top_k=1
    )  # 7/16 vs 11/17 of their mask cells are tumour
    assert shifted["top_k_precision"] == 0.0 and shifted["tumour_tile_fraction"] == 0.5


def test_constant_scores_give_chance_precision() -> None:
    coords, mask = layout()
    m = attention_truth_metrics(coords, np.zeros(len(coords)), 256, mask, 16, [3], top_k=3)
    assert m["top_k_precision"] == 0.5 and m["selected_fraction"] == 1.0 and m["iou"] == pytest.approx(0.5)


def test_otsu_splits_two_modes() -> None:
    rng = np.random.default_rng(0)
    v = np.r_[rng.normal(-4, 0.5, 300), rng.normal(3, 0.5, 100)]
    t = otsu_threshold(v)
    assert -2.5 < t < 1.5
    assert selected_tiles(v).sum() == 100
    with pytest.raises(ValueError, match="threshold must be 'otsu' or a number"):
        selected_tiles(v, "mean")
