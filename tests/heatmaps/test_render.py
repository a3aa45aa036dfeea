"""Heatmap canvas, overlay, galleries and GeoJSON on a real (small) tiled TIFF read through OpenSlide."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from histcode.heatmaps.gallery import ranked_tiles, render_gallery
from histcode.heatmaps.geojson import tiles_geojson, write_geojson
from histcode.heatmaps.render import overlay, read_thumbnail, render_heatmap
from histcode.metrics.canvas import box_fractions, normalise_scores, paint, tile_boxes

from .conftest import PATCH, grid_coords


def test_percentile_normalisation_is_rank_based() -> None:
    s = np.array([0.001, 5.0, 0.002, 0.002, 100.0])
    np.testing.assert_allclose(normalise_scores(s), [0, 0.75, 0.375, 0.375, 1.0])
    assert normalise_scores(np.array([3.0])).tolist() == [1.0]
    from scipy.stats import rankdata

    from histcode.metrics.canvas import average_ranks

    many = np.random.default_rng(0).integers(0, 50, 2000).astype(float)  # many ties
    np.testing.assert_array_equal(average_ranks(many), rankdata(many, method="average"))
    np.testing.assert_allclose(
        normalise_scores(np.arange(101.0), "minmax"), np.clip((np.arange(101) - 1) / 98, 0, 1)
    )
    with pytest.raises(ValueError, match="unknown normalisation 'zscore'"):
        normalise_scores(s, "zscore")


def test_tiles_paint_their_own_thumbnail_area() -> None:
    coords = np.array([[0, 0], [256, 0], [128, 0]])
    boxes = tile_boxes(coords, 256, (16.0, 16.0), (40, 64))
    assert boxes.tolist() == [[0, 0, 16, 16], [16, 0, 32, 16], [8, 0, 24, 16]]
    heat, cnt = paint(boxes, np.array([0.0, 1.0, 0.5]), (40, 64))
    assert heat[0, 0] == 0.0 and heat[0, 30] == 1.0 and heat[0, 12] == pytest.approx(0.25)  # overlap averages
    assert cnt[0, 12] == 2 and np.isnan(heat[20, 0])  # no tile → not painted
    binary = np.zeros((40, 64), bool)
    binary[:, :8] = True
    np.testing.assert_allclose(box_fractions(boxes, binary), [0.5, 0.0, 0.0])


def test_overlay_blends_only_tiles() -> None:
    thumb = np.full((4, 4, 3), 200, np.uint8)
    heat = np.full((4, 4), np.nan, np.float32)
    heat[0, 0] = 1.0
    out = overlay(thumb, heat, alpha=0.5, cmap="jet")
    assert (out[1:, :] == 200).all() and (out[0, 1:] == 200).all()
    red = np.array([0.5, 0.0, 0.0]) * 255  # jet(1.0) = (0.5, 0, 0)
    np.testing.assert_allclose(out[0, 0], np.round(0.5 * 200 + 0.5 * red), atol=1)


def test_render_heatmap_on_a_slide(slide_file: Path, tmp_path: Path) -> None:
    coords = grid_coords()
    scores = np.where(coords[:, 0] < 1024, 5.0, -5.0) + np.arange(len(coords)) * 1e-3
    thumb, ds = read_thumbnail(slide_file, 256)
    assert max(thumb.shape[:2]) == 256 and ds == pytest.approx((8.0, 8.0))
    out = render_heatmap(slide_file, coords, scores, PATCH, tmp_path / "h.png", title="t", thumb_max_px=256)
    img = np.asarray(Image.open(out))
    assert img.shape[1] > 600 and img.shape[0] > 200
    with pytest.raises(ValueError, match="24 tile coords but 3 scores"):
        render_heatmap(slide_file, coords, scores[:3], PATCH, tmp_path / "x.png")
    # the thresholded region is outlined in white on the heatmap panel only
    plain = np.asarray(Image.open(render_heatmap(slide_file, coords, scores, PATCH, tmp_path / "p.png",
                                                 thumb_max_px=256)))
    lined = np.asarray(Image.open(render_heatmap(slide_file, coords, scores, PATCH, tmp_path / "r.png",
                                                 thumb_max_px=256, region=coords[:, 0] < 1024)))
    changed = np.any(plain != lined, axis=2)
    assert changed[:, : plain.shape[1] // 2].sum() == 0 and changed[:, plain.shape[1] // 2 :].sum() > 100
    with pytest.raises(ValueError, match="3 region flags for 24 tiles"):
        render_heatmap(slide_file, coords, scores, PATCH, tmp_path / "y.png", region=np.ones(3, bool))


def test_galleries_show_the_extreme_tiles(slide_file: Path, tmp_path: Path) -> None:
    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.0])
    assert ranked_tiles(scores, 3).tolist() == [1, 3, 2]
    assert ranked_tiles(scores, 2, highest=False).tolist() == [4, 0]
    coords = grid_coords()
    s = coords[:, 0].astype(float)
    out = render_gallery(slide_file, coords, s, PATCH, tmp_path / "g.png", k=6, tile_px=64)
    assert Image.open(out).size[0] > 300


def test_geojson_is_qupath_tiles_with_measurements(tmp_path: Path) -> None:
    coords = np.array([[10, 20], [266, 20]])
    gj = tiles_geojson(coords, 256, {"attention": np.array([0.25, 0.75])})
    assert gj["type"] == "FeatureCollection" and len(gj["features"]) == 2
    f = gj["features"][1]
    assert f["geometry"]["coordinates"][0] == [[266, 20], [522, 20], [522, 276], [266, 276], [266, 20]]
    assert f["properties"] == {"objectType": "tile", "name": "tile", "measurements": {"attention": 0.75}}
    path = write_geojson(tmp_path / "t.geojson", coords, 256, {"attention": np.array([0.25, 0.75])})
    assert json.loads(path.read_text()) == gj
    with pytest.raises(ValueError, match="has 1 values for 2 tiles"):
        tiles_geojson(coords, 256, {"a": np.array([1.0])})
