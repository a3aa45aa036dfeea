"""Ground-truth readers return masks, tables and effects consistent with the generated slides."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from histcode.io import truth
from histcode.synth.genes import LYMPHOCYTE_GENES
from histcode.synth.layout import TISSUE_CODES

REQUIRED = {
    "background",
    "normal_epithelium",
    "stroma",
    "tumour",
    "lymphocyte_dense",
    "necrosis",
    "pen_mark",
    "blank",
    "adipose",
}


def test_region_codes_documented_and_distinct(tiny_cohort: Path) -> None:
    codes = truth.region_codes()
    assert set(codes) >= REQUIRED and len(set(codes.values())) == len(codes)
    table = pd.read_csv(tiny_cohort / "ground_truth" / "region_codes.csv")
    assert dict(zip(table["name"], table["code"], strict=True)) == codes
    assert table["description"].str.len().min() > 10


def test_masks_match_slides_and_labels(tiny_cohort: Path) -> None:
    gt = tiny_cohort / "ground_truth"
    st = truth.read_slide_truth(gt)
    codes = truth.region_codes()
    seen: set[int] = set()
    for r in st.itertuples():
        mask, ds = truth.read_region_mask(gt, r.cohort, r.slide_id)
        assert ds == 8.0 / r.mpp  # 8 µm cells at both 20x and 40x
        assert mask.shape == (int(np.ceil(r.height / ds)), int(np.ceil(r.width / ds)))
        present = set(np.unique(mask).tolist())
        seen |= present
        assert present <= set(codes.values())
        tissue = np.isin(mask, TISSUE_CODES).sum()
        assert r.tumour_fraction == pytest.approx((mask == codes["tumour"]).sum() / tissue)
        if r.label == 0:
            assert codes["tumour"] not in present and codes["necrosis"] not in present
        else:
            assert 0.1 < r.tumour_fraction < 0.9 and r.lymphocyte_density > 0
    assert {
        codes[k] for k in ("background", "stroma", "tumour", "normal_epithelium", "pen_mark", "blank")
    } <= seen


def test_lymphocyte_maps_count_the_rendered_lymphocytes(tiny_cohort: Path) -> None:
    """The count maps hold every lymphocyte the renderer placed, on the mask grid; infiltrates are dense."""
    gt = tiny_cohort / "ground_truth"
    codes = truth.region_codes()
    dense, rest = [], []
    for r in truth.read_slide_truth(gt).itertuples():
        counts, ds = truth.read_lymphocyte_map(gt, r.cohort, r.slide_id)
        mask, mds = truth.read_region_mask(gt, r.cohort, r.slide_id)
        assert counts.shape == mask.shape and ds == mds and counts.min() >= 0
        assert counts.sum() == r.n_lymphocytes
        cell_mm2 = (ds * r.mpp / 1000.0) ** 2
        dense.append(counts[mask == codes["lymphocyte_dense"]].ravel() / cell_mm2)
        rest.append(counts[np.isin(mask, [codes["tumour"], codes["stroma"]])].ravel() / cell_mm2)
    dense_mean, rest_mean = np.concatenate(dense).mean(), np.concatenate(rest).mean()
    assert dense_mean > 10_000 and rest_mean < 400, (dense_mean, rest_mean)  # packed lattice vs scattered TILs
    with pytest.raises(FileNotFoundError, match="histcode synth"):
        truth.read_lymphocyte_map(gt, "tcga_synth", "no-such-slide")


def test_tumour_bed_reader(tiny_cohort: Path) -> None:
    """The bed is overlay bit 16 on the mask grid: it holds every tumour cell, its tumour share is the
    slides.csv column, normals have none; a cohort without the bed column is refused with the fix."""
    gt = tiny_cohort / "ground_truth"
    codes = truth.region_codes()
    st = truth.read_slide_truth(gt)
    for r in st.itertuples():
        bed, ds = truth.read_tumour_bed(gt, r.cohort, r.slide_id)
        mask, mds = truth.read_region_mask(gt, r.cohort, r.slide_id)
        assert bed.dtype == bool and bed.shape == mask.shape and ds == mds
        assert np.array_equal(bed, (truth.read_overlay_map(gt, r.cohort, r.slide_id) & 16) > 0)
        if r.label == 0:
            assert not bed.any()
            continue
        assert bed[mask == codes["tumour"]].all() and (mask[bed] == codes["tumour"]).mean() == pytest.approx(
            r.tumour_share_of_bed
        )
    old = tiny_cohort.parent / "old_truth"
    shutil.copytree(gt, old)
    st.drop(columns="tumour_share_of_bed").to_csv(old / "slides.csv", index=False)
    with pytest.raises(ValueError, match="regenerate it with `histcode synth`"):
        truth.read_tumour_bed(old, st["cohort"][0], st["slide_id"][0])


def test_tile_region_fractions_exact_on_aligned_tiles() -> None:
    mask = np.zeros((4, 6), np.int64)
    mask[:2, :3] = 3
    mask[2:, 3:] = 1
    frac = truth.tile_region_fractions(mask, 16.0, np.array([[0, 0], [48, 32], [32, 0]]), 32)
    assert frac[0, 3] == 1.0 and frac[1, 1] == 1.0
    assert frac[2, 3] == pytest.approx(0.5) and frac[2, 0] == pytest.approx(0.5)
    np.testing.assert_allclose(frac.sum(axis=1), 1.0)


def test_gene_effects_and_planted_fold_changes(tiny_cohort: Path) -> None:
    gt = tiny_cohort / "ground_truth"
    eff = truth.read_gene_effects(gt).set_index("gene")
    assert set(eff["effect"]) == {"lymphocyte", "nuclear_density", "tumour", "necrosis", "null"}
    assert set(LYMPHOCYTE_GENES) <= set(eff.index[eff["effect"] == "lymphocyte"])
    assert (eff.loc[list(LYMPHOCYTE_GENES), "coefficient"] > 0).all()
    assert eff.loc["PTEN", "effect"] == "tumour" and eff.loc["PTEN", "intercept"] < -1.5
    planted = eff[eff["effect"] != "null"]
    assert len(planted) >= 30 and planted.groupby("effect").size().min() >= 6
    panel = planted[planted["in_panel"] & ~planted["is_marker"]]
    # effect sizes spread, and a larger mean fold change comes with a larger slope (better predicted)
    assert panel["coefficient"].abs().max() > 3 * panel["coefficient"].abs().min()
    assert np.corrcoef(panel["intercept"].abs(), panel["coefficient"].abs())[0, 1] > 0.99
    assert (eff.loc[eff["effect"] == "null", "coefficient"] == 0).all()
    assert (eff["noise_sd"] > 0).all()  # no gene is a deterministic function of the latent factors
    planted_fc = truth.read_planted_log2fc(gt)
    patients = truth.read_patient_truth(gt).set_index("patient_id")
    assert list(planted_fc.columns) == list(eff.index) and set(planted_fc.index) <= set(patients.index)
    assert (planted_fc["PTEN"] < 0).all()


def test_missing_ground_truth_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="histcode synth"):
        truth.read_slide_truth(tmp_path)
