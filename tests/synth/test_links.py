"""Every planted morphology → expression link is recoverable from the truth maps of a small randomised cohort.

The per-patient morphology variable each planted gene is driven by is measured from the written ground truth
only (region masks, lymphocyte and tumour-nuclei count maps, overlay maps), as evaluation would, and must
correlate with the planted log2 fold change in the planted direction; null genes must not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from histcode.io import truth
from histcode.synth import SynthConfig, generate

RC = truth.region_codes()


@pytest.fixture(scope="module")
def link_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth_links")
    generate(
        SynthConfig.tiny(
            seed=4242,
            n_patients=20,
            n_patients_external=1,
            n_without_normal=0,
            n_40x=0,
            n_svs=0,
            slide_width=1024,
            slide_height=1024,
            workers=2,
            n_genes_background=20,
        ),
        out,
    )
    return out


def _measured(gt: Path) -> pd.DataFrame:
    """Per patient, from the truth maps of the tumour slide: the four planted morphology variables."""
    rows = []
    for r in truth.read_slide_truth(gt).itertuples():
        if r.cohort != "tcga_synth" or r.label != 1:
            continue
        mask, ds = truth.read_region_mask(gt, r.cohort, r.slide_id)
        lymph, _ = truth.read_lymphocyte_map(gt, r.cohort, r.slide_id)
        nuclei, _ = truth.read_tumour_nuclei_map(gt, r.cohort, r.slide_id)
        lumen = (truth.read_overlay_map(gt, r.cohort, r.slide_id) & truth.overlay_bits()["lumen"]) > 0
        cell_mm2 = (ds * r.mpp / 1000.0) ** 2
        tissue = np.isin(mask, [1, 2, 3, 4, 5, 8])
        tum = mask == RC["tumour"]
        tum_zone = tum | (mask == RC["lymphocyte_dense"])
        epi = tum & ~lumen
        rows.append(
            {
                "patient_id": r.patient_id,
                "tumour": tum.sum() / tissue.sum(),
                "lymphocyte": np.log(lymph[tum_zone].sum() / (tum_zone.sum() * cell_mm2)),
                "nuclear_density": nuclei[epi].sum() / (epi.sum() * cell_mm2),
                "necrosis": np.log((mask == RC["necrosis"]).sum() / tissue.sum() + 1e-3),
            }
        )
    return pd.DataFrame(rows).set_index("patient_id")


def test_every_planted_link_is_recoverable_from_the_truth_maps(link_cohort: Path) -> None:
    gt = link_cohort / "ground_truth"
    eff = truth.read_gene_effects(gt).set_index("gene")
    fc = truth.read_planted_log2fc(gt)
    m = _measured(gt).loc[fc.index]
    assert len(m) == 20
    planted = eff[eff["effect"] != "null"]
    r = pd.Series({g: np.corrcoef(fc[g], m[k])[0, 1] * np.sign(planted.loc[g, "coefficient"])
                   for g, k in planted["effect"].items()})
    by_kind = r.groupby(planted["effect"]).mean()
    # every gene goes the planted way; each morphology variable carries its genes clearly
    assert (r > 0.3).all(), r[r <= 0.3]
    assert (by_kind > 0.6).all(), by_kind
    # stronger planted slopes are better recovered (the paper's fold change vs accuracy trend)
    panel = planted[planted["in_panel"] & ~planted["is_marker"]]
    assert np.corrcoef(panel["coefficient"].abs(), r[panel.index])[0, 1] > 0.3
    # null genes carry none of it
    null = eff.index[eff["effect"] == "null"]
    r_null = np.array([[abs(np.corrcoef(fc[g], m[k])[0, 1]) for k in m.columns] for g in null])
    assert r_null.mean() < 0.25


def test_randomised_nuisance_varies_and_sites_differ(link_cohort: Path) -> None:
    """Domain randomisation: architectures, nuclear size, stain and scanner vary within the training site;
    the external site draws from its own (shifted) stain and scanner."""
    gt = link_cohort / "ground_truth"
    st = truth.read_slide_truth(gt)
    tr = st[st["cohort"] == "tcga_synth"]
    assert tr.loc[tr.label == 1, "architecture"].nunique() >= 3
    assert tr["nuclear_scale"].max() - tr["nuclear_scale"].min() > 0.15
    assert tr["jpeg_quality"].nunique() >= 4 and tr["blur_um"].std() > 0.03
    assert tr[["has_fold", "has_bubble", "has_out_of_focus"]].any().all()
    ext = st[st["cohort"] == "cptac_synth"]
    assert set(ext["site"]) == {"cptac"} and set(tr["site"]) == {"tcga"}
    assert (ext["tile_px"] == 512).all() and (tr["tile_px"] == 256).all()
    patients = truth.read_patient_truth(gt)
    assert {"z_necrosis", "architecture", "nuclear_scale", "pleomorphism"} <= set(patients.columns)


def test_overlays_mark_the_tumour_bed_and_lumens(link_cohort: Path) -> None:
    """The tumour bed holds every tumour cell and the stroma between them; lumens lie in tumour; normals
    have neither."""
    gt = link_cohort / "ground_truth"
    bits = truth.overlay_bits()
    shares = []
    for r in truth.read_slide_truth(gt).itertuples():
        mask, _ = truth.read_region_mask(gt, r.cohort, r.slide_id)
        ov = truth.read_overlay_map(gt, r.cohort, r.slide_id)
        bed, lumen = (ov & bits["tumour_bed"]) > 0, (ov & bits["lumen"]) > 0
        assert (mask[lumen] == RC["tumour"]).all()
        if r.label == 0:
            assert not bed.any() and not lumen.any()
            continue
        assert bed[mask == RC["tumour"]].all() and not bed[mask == RC["background"]].any()
        shares.append((mask[bed] == RC["tumour"]).mean())
        assert shares[-1] == pytest.approx(r.tumour_share_of_bed)
    assert min(shares) < 0.65 < max(shares)  # architectures with stroma in the bed, and solid sheets
