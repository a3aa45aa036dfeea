"""Adipose tissue: the planted fat share, its place at the tissue edge, and the membrane lattice it renders."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from scipy import ndimage

from histcode.config import ConfigError
from histcode.io import truth
from histcode.io.truth import REGION_CODES
from histcode.synth import SynthConfig
from histcode.synth.adipose import ADIPOSE, adipose_region, membrane_lattice
from histcode.synth.layout import TISSUE_CODES, make_layout
from histcode.synth.sites import site

CELL_UM = 8.0


def _normal_layout(seed: int = 3):
    rng = np.random.default_rng(seed)
    return make_layout(
        rng, (160, 192), tumour=False, tumour_fraction=0.0, necrosis_fraction=0.0, lymph_clusters_per_mm2=0.25,
        cell_um=CELL_UM, tissue_fill=0.8, pen=False, blank=False,
    )


@pytest.mark.parametrize("fraction", [0.2, 0.45, 0.7])
def test_fat_takes_the_planted_share_of_tissue_mostly_at_the_edge(fraction: float) -> None:
    codes = _normal_layout().codes
    fat = adipose_region(np.random.default_rng(0), codes, fraction, CELL_UM)
    tissue = codes > 0
    assert fat.sum() / tissue.sum() == pytest.approx(fraction, abs=0.01)
    assert set(np.unique(codes[fat]).tolist()) <= {REGION_CODES["stroma"], REGION_CODES["normal_epithelium"]}
    depth = ndimage.distance_transform_edt(np.pad(tissue, 1))[1:-1, 1:-1]
    band = tissue & (depth <= 10)  # the outer 80 µm of the section
    assert fat[band].mean() > fraction + 0.05  # fat is richer at the edge than overall
    assert (fat & (depth <= 2)).any()  # ... and reaches it


def test_no_fat_at_zero_fraction_and_the_stream_does_not_depend_on_it() -> None:
    codes = _normal_layout().codes
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    assert not adipose_region(a, codes, 0.0, CELL_UM).any()
    adipose_region(b, codes, 0.5, CELL_UM)
    assert a.random() == b.random()


def test_membranes_outline_adipocytes_of_50_to_150_um() -> None:
    mpp = 0.5
    cell_px = int(CELL_UM / mpp)
    fat = np.zeros((96, 96), bool)
    fat[8:88, 8:88] = True
    mem = membrane_lattice(np.random.default_rng(1), fat, cell_px=cell_px, mpp=mpp, width=1536, height=1536)
    block = mem.block(256, 256, 1024, 1024)
    assert block.dtype == np.float32 and block.min() >= 0.0 and block.max() <= 1.0
    assert 0.005 < (block > 0.5).mean() < 0.08  # thin lines, mostly empty cells
    _, _, stats, _ = cv2.connectedComponentsWithStats((block < 0.5).astype(np.uint8), connectivity=4)
    inner = stats[1:][(stats[1:, 0] > 0) & (stats[1:, 1] > 0) & (stats[1:, 0] + stats[1:, 2] < 1024)
                      & (stats[1:, 1] + stats[1:, 3] < 1024)]
    diam_um = 2 * np.sqrt(inner[:, cv2.CC_STAT_AREA] / np.pi) * mpp
    assert len(diam_um) > 20
    assert 50 <= np.median(diam_um) <= 150 and np.percentile(diam_um, 10) >= 35
    # a block away from the fat has no membranes
    assert not mem.block(0, 0, 64, 64).any() or fat[:4, :4].any()


def test_tiny_cohort_normals_carry_fat_that_renders_as_membranes(tiny_cohort: Path) -> None:
    gt = tiny_cohort / "ground_truth"
    st = truth.read_slide_truth(gt)
    # tumour slides carry some fat too (the site's tumour range); the patient's propensity sets both shares
    for r in st[st.label == 1].itertuples():
        lo, hi = site(r.site).adipose_tumour
        assert lo <= r.planted_adipose_fraction <= hi
    assert ADIPOSE in TISSUE_CODES
    normals = st[(st.label == 0) & (st.planted_adipose_fraction > 0.1) & (st.mpp == 0.5)]
    assert len(normals)
    for r in normals.itertuples():
        mask, ds = truth.read_region_mask(gt, r.cohort, r.slide_id)
        share = (mask == ADIPOSE).sum() / np.isin(mask, TISSUE_CODES).sum()
        assert share == pytest.approx(r.planted_adipose_fraction, abs=0.03)
        image = tifffile.imread(tiny_cohort / r.cohort / "slides" / r.file_name)
        inner = ndimage.binary_erosion(mask == ADIPOSE, iterations=2)
        if inner.sum() < 20:
            continue
        big = np.kron(inner, np.ones((int(ds), int(ds)), bool))[: image.shape[0], : image.shape[1]]
        od = -np.log10(np.maximum(image[big].astype(np.float64), 1) / 245.0).mean(axis=1)
        assert np.median(od) < 0.05  # adipocytes are empty: glass-bright inside
        assert np.percentile(od, 99) > 0.12  # ... outlined by stained membranes


def test_adipose_fraction_is_checked() -> None:
    with pytest.raises(ConfigError, match="adipose_fraction"):
        SynthConfig.tiny(adipose_fraction=(0.5, 0.2))
