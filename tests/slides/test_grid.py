"""Tile grid: sizes at a target µm/px, bounds, exact area-weighted tissue fractions, CLAM four-point."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from histcode.slides.grid import four_point, grid_coords, select_tiles, tile_size_level0, tissue_fractions


@pytest.mark.parametrize(("mpp", "size"), [(0.499, 256), (0.5, 256), (0.25, 512), (0.2527, 512),
                                           (0.3, 427), (2.004, 64), (1.0, 128)])
def test_tile_size_level0(mpp: float, size: int) -> None:
    assert tile_size_level0(256, 0.5, mpp) == size


def test_tile_size_without_snap() -> None:
    assert tile_size_level0(256, 0.5, 0.499, snap=0.0) == 257


@settings(max_examples=60, deadline=None)
@given(w=st.integers(1, 5000), h=st.integers(1, 5000), size=st.integers(16, 700))
def test_grid_inside_bounds_non_overlapping(w: int, h: int, size: int) -> None:
    c = grid_coords(w, h, size)
    assert c.dtype == np.int32
    if len(c):
        assert (c >= 0).all() and (c[:, 0] + size <= w).all() and (c[:, 1] + size <= h).all()
        assert (c % size == 0).all() and len(np.unique(c[:, 1].astype(np.int64) * w + c[:, 0])) == len(c)
    assert len(c) == (w // size) * (h // size)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), ds=st.integers(1, 9), size=st.integers(1, 40))
def test_fractions_equal_upsampled_reference(seed: int, ds: int, size: int) -> None:
    """Area-weighted fractions equal the mean of the mask upsampled to level 0 (exact, any alignment)."""
    rng = np.random.default_rng(seed)
    mask = rng.random((rng.integers(2, 12), rng.integers(2, 12))) > 0.5
    full = np.kron(mask, np.ones((ds, ds), bool))
    coords = grid_coords(full.shape[1], full.shape[0], size)
    got = tissue_fractions(mask, float(ds), coords, size)
    ref = np.array([full[y:y + size, x:x + size].mean() for x, y in coords])
    np.testing.assert_allclose(got, ref, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), thr=st.floats(0.05, 1.0))
def test_selected_tiles_inside_and_above_threshold(seed: int, thr: float) -> None:
    rng = np.random.default_rng(seed)
    mask = rng.random((30, 40)) > 0.4
    w, h, size = int(rng.integers(200, 640)), int(rng.integers(200, 480)), int(rng.integers(8, 64))
    coords, frac = select_tiles(mask, 16.0, w, h, size, threshold=thr)
    assert ((coords[:, 0] + size <= w) & (coords[:, 1] + size <= h)).all()
    assert (frac >= thr).all()


def test_four_point_rule() -> None:
    mask = np.zeros((8, 8), bool)
    mask[1, 1] = True  # covers level-0 [16, 32) at ds 16: the top-left point of the tile at (0, 0)
    coords = np.array([[0, 0], [64, 0]], np.int32)
    np.testing.assert_array_equal(four_point(mask, 16.0, coords, 64), [True, False])
    kept, _ = select_tiles(mask, 16.0, 128, 64, 64, threshold=0.9, rule="four_point")
    assert kept.tolist() == [[0, 0]]
    with pytest.raises(ValueError, match="valid: \\['fraction', 'four_point'\\]"):
        select_tiles(mask, 16.0, 128, 64, 64, threshold=0.5, rule="centre")


@settings(max_examples=60, deadline=None)
@given(w=st.integers(1, 5000), h=st.integers(1, 5000), size=st.integers(16, 700))
def test_edge_grid_covers_the_slide_once(w: int, h: int, size: int) -> None:
    """``edges``: the whole-tile grid plus the partial last column and row; every level-0 pixel in one tile."""
    c = grid_coords(w, h, size, edges=True)
    assert len(c) == -(-w // size) * -(-h // size)
    assert (c[:, 0] < w).all() and (c[:, 1] < h).all() and (c % size == 0).all()
    whole = {tuple(t) for t in grid_coords(w, h, size).tolist()}
    assert whole <= {tuple(t) for t in c.tolist()}


def test_edge_tiles_score_the_outside_as_glass() -> None:
    """Tissue along the right border: a partial tile is kept when its inside part holds >= threshold of the
    whole tile's area (the part past the border is glass), never otherwise; without ``edges`` none is."""
    w, h, size, ds = 1000, 256, 64, 4.0  # last column: x 960..1024, 40 px inside the slide
    mask = np.zeros((64, 250), bool)
    mask[:, 235:] = True  # level-0 x >= 940: tissue up to the border
    coords, frac = select_tiles(mask, ds, w, h, size, threshold=0.5, edges=True)
    assert sorted({int(x) for x in coords[:, 0]}) == [960]  # 40 of 64 px on tissue = 0.625; x 896 holds 0.31
    np.testing.assert_allclose(frac, 40 / 64)
    assert len(select_tiles(mask, ds, w, h, size, threshold=0.7, edges=True)[0]) == 0
    assert len(select_tiles(mask, ds, w, h, size, threshold=0.5)[0]) == 0
