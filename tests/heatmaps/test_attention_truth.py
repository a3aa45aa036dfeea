"""Attention vs ground truth: top-k precision and heatmap IoU on hand-made maps with known answers, against a
brute-force level-0 reference, and end to end against a hand-written synthetic truth folder (tumour bed vs
tumour cells)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from histcode.heatmaps.attention_truth import evaluate_attention_truth
from histcode.io.truth import overlay_bits, region_codes, write_overlay_map, write_region_mask
from histcode.metrics.attention_truth import (
    attention_truth_metrics,
    kittler_threshold,
    otsu_threshold,
    rank_auc,
    selected_tiles,
)


def layout() -> tuple[np.ndarray, np.ndarray]:
    """A 4 x 6 grid of 256-px tiles; truth at downsample 16 under the left 3 columns."""
    xs, ys = np.meshgrid(np.arange(6) * 256, np.arange(4) * 256)
    coords = np.stack([xs.ravel(), ys.ravel()], 1)
    truth = np.zeros((64, 96), bool)
    truth[:, :48] = True
    return coords, truth


def nests(bed: np.ndarray) -> np.ndarray:
    """Tumour cells as one 8 x 12 px nest per 16 x 16 px tile inside the bed: 96 / 256 = 37.5 % of the bed."""
    cells = np.zeros_like(bed)
    for i in range(0, bed.shape[0], 16):
        for j in range(0, bed.shape[1], 16):
            cells[i + 4 : i + 12, j + 2 : j + 14] = bed[i + 4 : i + 12, j + 2 : j + 14]
    return cells


def test_perfect_and_inverted_attention() -> None:
    coords, truth = layout()
    tumour = coords[:, 0] < 768
    good = attention_truth_metrics(coords, np.where(tumour, 3.0, -3.0), 256, truth, 16, top_k=5)
    assert good["top_k_precision"] == 1.0 and good["iou"] == 1.0 and good["tumour_tile_fraction"] == 0.5
    bad = attention_truth_metrics(coords, np.where(tumour, -3.0, 3.0), 256, truth, 16, top_k=5)
    assert bad["top_k_precision"] == 0.0 and bad["iou"] == 0.0


def test_partial_overlap_matches_hand_count() -> None:
    coords, truth = layout()
    # the 4 tiles of column 2 (tumour) and column 3 (not) score high: selected area = 8 tiles, truth = 12
    scores = np.where(np.isin(coords[:, 0], [512, 768]), 1.0, 0.0)
    m = attention_truth_metrics(coords, scores, 256, truth, 16, top_k=8, threshold=0.5)
    assert m["top_k_precision"] == pytest.approx(0.5)
    assert m["iou"] == pytest.approx(4 / (8 + 12 - 4))
    # a tile straddling the boundary counts as tumour only if >= half of it is tumour
    shifted = attention_truth_metrics(
        np.array([[656, 0], [600, 0]]), np.array([2.0, 1.0]), 256, truth, 16, top_k=1
    )  # 7/16 vs 11/17 of their mask cells are tumour
    assert shifted["top_k_precision"] == 0.0 and shifted["tumour_tile_fraction"] == 0.5


def test_constant_scores_give_chance_precision() -> None:
    coords, truth = layout()
    m = attention_truth_metrics(coords, np.zeros(len(coords)), 256, truth, 16, top_k=3)
    assert m["top_k_precision"] == 0.5 and m["selected_fraction"] == 1.0 and m["iou"] == pytest.approx(0.5)


def test_otsu_splits_two_modes() -> None:
    rng = np.random.default_rng(0)
    v = np.r_[rng.normal(-4, 0.5, 300), rng.normal(3, 0.5, 100)]
    t = otsu_threshold(v)
    assert -2.5 < t < 1.5
    assert selected_tiles(v).sum() == 100
    with pytest.raises(ValueError, match=r"threshold must be one of \['otsu', 'kittler'\] or a number"):
        selected_tiles(v, "mean")


def kittler_reference(v: np.ndarray, bins: int = 256) -> float:
    """Kittler-Illingworth written out cut by cut (the textbook loop) over the same histogram; a class of one
    bin has zero variance (J = -inf: the criterion's known degenerate cut) and is skipped, up to rounding."""
    hist, edges = np.histogram(v, bins=bins)
    c, p = (edges[:-1] + edges[1:]) / 2, hist / hist.sum()
    best, t = np.inf, None
    for k in range(1, bins):
        p1, p2 = p[:k].sum(), p[k:].sum()
        if p1 <= 0 or p2 <= 0:
            continue
        m1, m2 = (p[:k] * c[:k]).sum() / p1, (p[k:] * c[k:]).sum() / p2
        v1, v2 = (p[:k] * (c[:k] - m1) ** 2).sum() / p1, (p[k:] * (c[k:] - m2) ** 2).sum() / p2
        if v1 > 1e-12 * c.var() and v2 > 1e-12 * c.var():
            j = p1 * np.log(v1) + p2 * np.log(v2) - 2 * (p1 * np.log(p1) + p2 * np.log(p2))
            if j < best:
                best, t = j, edges[k]
    return float(t)


def test_kittler_keeps_a_large_broad_class_whole_where_otsu_cuts_it() -> None:
    """200 tiles tight at 0, 800 spread over [2, 10] (a bed holding most tiles): the minimum-error cut falls
    below the broad class and keeps it whole (plus at most the far tail of the tight one); Otsu (equal variances)
    cuts the broad class near its middle."""
    rng = np.random.default_rng(1)
    v = np.r_[rng.normal(0, 0.2, 200), rng.uniform(2, 10, 800)]
    ki = selected_tiles(v, "kittler")
    assert kittler_threshold(v) < 2.0 and ki[200:].all() and ki[:200].sum() <= 4
    assert 4.0 < otsu_threshold(v) < 6.0 and 400 < selected_tiles(v, "otsu").sum() < 600
    for seed in range(5):  # the vectorised criterion picks the same cut as the loop
        w = np.exp(np.random.default_rng(seed).normal(0, 1 + seed, 300))
        assert kittler_threshold(w) == pytest.approx(kittler_reference(w))
    # here the highest score sits alone in the last bin: rounding leaves that class a tiny positive variance
    # instead of 0, which a bare `> 0` test takes for the best cut of all (ln of it is hugely negative) and
    # selects that one tile
    rng = np.random.default_rng(32)
    w = np.r_[rng.uniform(-4.0, -3.99, 6), rng.normal(0, 1, 200)]
    assert kittler_threshold(w) == pytest.approx(kittler_reference(w)) and selected_tiles(w, "kittler").sum() == 199
    assert kittler_threshold(np.r_[np.zeros(5), np.ones(5)]) == otsu_threshold(np.r_[np.zeros(5), np.ones(5)])


def test_perfect_region_heatmap_is_perfect_against_the_bed_not_the_cells() -> None:
    """Nests fill 37.5 % of their bed: a heatmap that marks exactly the bed scores 1 against it, but against
    the cells its IoU is capped at the cells' share and no tile is mostly tumour cells."""
    coords, bed = layout()
    scores = np.where(coords[:, 0] < 768, 3.0, -3.0)
    on_bed = attention_truth_metrics(coords, scores, 256, bed, 16, top_k=5)
    on_cells = attention_truth_metrics(coords, scores, 256, nests(bed), 16, top_k=5)
    assert on_bed["iou"] == 1.0 and on_bed["top_k_precision"] == 1.0 and on_bed["tumour_tile_fraction"] == 0.5
    assert on_cells["iou"] == pytest.approx(96 / 256)
    assert on_cells["top_k_precision"] == 0.0 and on_cells["tumour_tile_fraction"] == 0.0


def reference(
    coords: np.ndarray, scores: np.ndarray, patch: int, truth: np.ndarray, ds: int, top_k: int, threshold: float
) -> tuple[float, float, float]:
    """Brute force at level 0: (top-k precision, IoU, region tile share) with tiles painted pixel by pixel."""
    big = np.kron(truth, np.ones((ds, ds), dtype=bool))
    h, w = big.shape
    tiled, pred = np.zeros_like(big), np.zeros_like(big)
    rank = np.argsort(np.argsort(scores)) / (len(scores) - 1)
    in_region = np.zeros(len(scores), bool)
    for i, (x, y) in enumerate(coords):
        win = (slice(y, min(y + patch, h)), slice(x, min(x + patch, w)))
        in_region[i] = big[win].mean() >= 0.5
        tiled[win] = True
        pred[win] |= rank[i] >= threshold
    region = big & tiled
    top = np.argsort(-scores)[:top_k]
    return float(in_region[top].mean()), float((pred & region).sum() / (pred | region).sum()), in_region.mean()


@pytest.mark.parametrize("threshold", [0.5, 0.8])
def test_metrics_match_a_level0_reference(threshold: float) -> None:
    """Overlapping tiles (stride 128, 256 px) on a random blobby region, edge tiles clipped, some tiles left
    out (no tissue); numbers agree with the brute-force reference."""
    from scipy.ndimage import uniform_filter

    rng = np.random.default_rng(7)
    truth = uniform_filter(rng.random((40, 52)), 9) > 0.5
    xs, ys = np.meshgrid(np.arange(0, 832, 128), np.arange(0, 640, 128))
    coords = np.stack([xs.ravel(), ys.ravel()], 1)
    coords = coords[rng.random(len(coords)) < 0.7]
    scores = rng.normal(size=len(coords)) + 2.0 * np.array(
        [truth[y // 16 : (y + 256) // 16, x // 16 : (x + 256) // 16].mean() for x, y in coords]
    )
    m = attention_truth_metrics(coords, scores, 256, truth, 16, top_k=7, threshold=threshold)
    precision, iou, share = reference(coords, scores, 256, truth, 16, 7, threshold)
    assert 0.2 < share < 0.8 and 0.1 < iou < 0.95 and 0 < precision < 1  # a non-trivial case
    assert m["top_k_precision"] == pytest.approx(precision)
    assert m["iou"] == pytest.approx(iou)
    assert m["tumour_tile_fraction"] == pytest.approx(share)
    from sklearn.metrics import roc_auc_score

    in_region = np.array([truth[y // 16 : (y + 256) // 16, x // 16 : (x + 256) // 16].mean() >= 0.5 for x, y in coords])
    assert m["auc"] == pytest.approx(roc_auc_score(in_region, scores))


def test_rank_auc_against_sklearn_with_ties() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(5)
    s, y = rng.integers(0, 6, 300).astype(float), rng.random(300) < 0.7  # many ties
    assert rank_auc(s, y) == pytest.approx(roc_auc_score(y, s))
    assert rank_auc([1.0, 2.0, 3.0], [False, True, True]) == 1.0 and np.isnan(rank_auc([1.0, 2.0], [True, True]))


def write_truth(gt: Path, slides: dict[str, np.ndarray], *, bed_column: bool = True) -> None:
    """A synthetic ground-truth folder: per slide a region mask with tumour nests in stroma, its bed as
    overlay bit 16 (plus a lumen bit, which must not count) and the slides.csv columns the readers use."""
    codes, bits = region_codes(), overlay_bits()
    rows = []
    for sid, bed in slides.items():
        mask = np.where(nests(bed), codes["tumour"], codes["stroma"]).astype(np.uint8)
        write_region_mask(gt, "c", sid, mask)
        overlay = np.where(bed, bits["tumour_bed"], 0) | np.where(nests(bed), 0, bits["lumen"])
        write_overlay_map(gt, "c", sid, overlay.astype(np.uint8) if sid != "bad_shape" else overlay[:-1])
        rows.append({"cohort": "c", "slide_id": sid, "mask_downsample": 16.0})
        if bed_column:
            rows[-1]["tumour_share_of_bed"] = float(nests(bed)[bed].mean())
    pd.DataFrame(rows).to_csv(gt / "slides.csv", index=False)


def write_attention(path: Path, coords: np.ndarray, raw: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["coords"], f["attention_raw"] = coords, raw.astype(np.float32)
        f["attention"] = (np.exp(raw) / np.exp(raw).sum()).astype(np.float32)


def test_evaluate_scores_against_the_tumour_bed_and_reports_cells_beside_it(tmp_path: Path) -> None:
    coords, bed = layout()
    gt, att = tmp_path / "ground_truth", tmp_path / "attention"
    write_truth(gt, {"s1": bed, "s2": bed[:, ::-1].copy(), "bad_shape": bed, "no_attention": bed})
    right = coords[:, 0] >= 768
    write_attention(att / "s1.h5", coords, np.where(right, -2.0, 2.0))  # finds the bed
    write_attention(att / "s2.h5", coords, np.where(right, -2.0, 2.0))  # looks at the wrong side
    write_attention(att / "bad_shape.h5", coords, np.zeros(len(coords)))
    ids = ["s1", "s2", "bad_shape", "no_attention"]
    df, summary = evaluate_attention_truth(att, gt, "c", ids, dict.fromkeys(ids, 256.0), top_k=5)
    per = df.set_index("slide_id")
    assert per.loc["s1", "iou"] == 1.0 and per.loc["s1", "top_k_precision"] == 1.0
    assert per.loc["s1", "iou_cells"] == pytest.approx(96 / 256) and per.loc["s1", "top_k_precision_cells"] == 0.0
    assert per.loc["s2", "iou"] == 0.0 and per.loc["s2", "iou_cells"] == 0.0
    assert "does not match the region mask" in per.loc["bad_shape", "error"]
    assert "attention file missing" in per.loc["no_attention", "error"]
    assert summary["mean_iou"] == 0.5 and summary["mean_iou_cells"] == pytest.approx(0.5 * 96 / 256)
    assert summary["mean_tumour_tile_fraction"] == 0.5 and summary["mean_tumour_tile_fraction_cells"] == 0.0
    assert summary["n_slides"] == 2 and summary["n_failed"] == 2
    assert per.loc["s1", "auc"] == 1.0 and per.loc["s2", "auc"] == 0.0 and summary["mean_auc"] == 0.5

    write_truth(gt, {"s1": bed}, bed_column=False)  # a cohort generated before the bed was recorded
    df, summary = evaluate_attention_truth(att, gt, "c", ["s1"], {"s1": 256.0})
    assert "regenerate it with `histcode synth`" in df["error"][0] and summary["n_slides"] == 0


def test_heatmap_config_names_a_bad_scale_smoothing_or_threshold() -> None:
    from histcode.config import ConfigError
    from histcode.heatmaps.config import HeatmapConfig

    assert HeatmapConfig(truth_threshold="kittler", smooth_tiles=1.5).scale == "raw"
    assert HeatmapConfig(truth_threshold=0.8).truth_threshold == 0.8
    for bad, msg in (
        ({"scale": "log"}, "heatmaps.scale: 'log' is not one of"),
        ({"smooth_tiles": -1}, "heatmaps.smooth_tiles: -1 must be >= 0"),
        ({"truth_threshold": "li"}, "heatmaps.truth_threshold: 'li' is not one of"),
        ({"truth_threshold": 1.5}, r"or a number in \[0, 1\]"),
        ({"close_tiles": -1}, "heatmaps.close_tiles: -1 must be a whole number of tiles >= 0"),
        ({"close_tiles": 1.5}, "heatmaps.close_tiles: 1.5 must be a whole number"),
        ({"fill_holes": "yes"}, "heatmaps.fill_holes: 'yes' must be true or false"),
    ):
        with pytest.raises(ConfigError, match=msg):
            HeatmapConfig(**bad)
