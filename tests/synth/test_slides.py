"""Every generated slide opens in OpenSlide with the resolution, pyramid and vendor it claims."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openslide
import pytest
import tifffile

from histcode.io import truth
from histcode.synth.layout import TISSUE_CODES


def _truth(cohort: Path):
    return truth.read_slide_truth(cohort / "ground_truth")


def test_every_slide_opens_with_expected_mpp_levels_vendor(tiny_cohort: Path) -> None:
    st = _truth(tiny_cohort)
    assert len(st) == 2 * (4 + 2)
    for r in st.itertuples():
        path = tiny_cohort / r.cohort / "slides" / r.file_name
        with openslide.OpenSlide(str(path)) as s:
            props = s.properties
            assert float(props["openslide.mpp-x"]) == pytest.approx(r.mpp, rel=1e-3)
            assert float(props["openslide.mpp-y"]) == pytest.approx(r.mpp, rel=1e-3)
            assert s.dimensions == (r.width, r.height)
            assert s.level_count == r.n_levels >= 2
            assert s.level_downsamples[1] == pytest.approx(4.0, rel=0.01)
            if r.format == "svs":
                assert path.suffix == ".svs"
                assert props["openslide.vendor"] == "aperio"
                assert int(props["aperio.AppMag"]) == round(10 / r.mpp)
                assert float(props["aperio.MPP"]) == pytest.approx(r.mpp, rel=1e-3)
                assert "label" in s.associated_images and "thumbnail" in s.associated_images
            else:
                assert path.suffix == ".tiff"
                assert props["openslide.vendor"] == "generic-tiff"
            # pixels are H&E-like, not blank: tissue darker than glass somewhere in the thumbnail
            thumb = np.asarray(s.get_thumbnail((256, 256)).convert("RGB"), dtype=float)
            assert thumb.mean(axis=2).min() < 200 < thumb.mean(axis=2).max()


def test_cohort_has_svs_40x_and_separate_level_pages(tiny_cohort: Path) -> None:
    st = _truth(tiny_cohort)
    tcga = st[st["cohort"] == "tcga_synth"]
    assert (tcga["format"] == "svs").sum() == 1 and (tcga["format"] == "tiff").sum() == 7
    assert (st[st["cohort"] == "cptac_synth"]["format"] == "svs").sum() == 1
    hi = st[st["mpp"] == 0.25]
    assert len(hi) == 1 and hi["magnification"].iloc[0] == 40
    some_tiff = tcga[tcga["format"] == "tiff"].iloc[0]
    with tifffile.TiffFile(tiny_cohort / "tcga_synth" / "slides" / some_tiff["file_name"]) as tf:
        assert len(tf.pages) == some_tiff["n_levels"]  # one top-level page per level
        assert all(not p.subifds for p in tf.pages)
        assert all(p.is_tiled and p.compression == 7 for p in tf.pages)  # JPEG tiles


def test_40x_twin_covers_same_tissue_at_20x(tiny_cohort: Path) -> None:
    gt = tiny_cohort / "ground_truth"
    st = _truth(tiny_cohort)
    r = st[st["mpp"] == 0.25].iloc[0]
    twin = gt / r["twin_file"]
    assert twin == truth.twin_path(gt, r["cohort"], r["slide_id"])
    with (
        openslide.OpenSlide(str(twin)) as t,
        openslide.OpenSlide(str(tiny_cohort / r["cohort"] / "slides" / r["file_name"])) as s,
    ):
        assert float(t.properties["openslide.mpp-x"]) == pytest.approx(0.5)
        assert (t.dimensions[0] * 0.5, t.dimensions[1] * 0.5) == (
            s.dimensions[0] * 0.25,
            s.dimensions[1] * 0.25,
        )
        a = np.asarray(t.read_region((0, 0), 0, t.dimensions).convert("RGB"), dtype=float)
        b = np.asarray(s.read_region((0, 0), 0, s.dimensions).convert("RGB"), dtype=float)
        b = b.reshape(b.shape[0] // 2, 2, b.shape[1] // 2, 2, 3).mean(axis=(1, 3))
        assert a.shape == b.shape and np.abs(a - b).mean() < 6  # same tissue, two JPEG encodings apart


def test_tiny_slides_have_at_least_20_tissue_tiles(tiny_cohort: Path) -> None:
    gt = tiny_cohort / "ground_truth"
    for r in _truth(tiny_cohort).itertuples():
        mask, ds = truth.read_region_mask(gt, r.cohort, r.slide_id)
        patch = round(256 * 0.5 / r.mpp)  # 256 px tiles at 0.5 µm/px
        coords = [
            (x, y)
            for y in range(0, r.height - patch + 1, patch)
            for x in range(0, r.width - patch + 1, patch)
        ]
        frac = truth.tile_region_fractions(mask, ds, np.array(coords), patch)
        assert (frac[:, list(TISSUE_CODES)].sum(axis=1) >= 0.5).sum() >= 20, r.slide_id
