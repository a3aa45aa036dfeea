"""Tissue source sites: what the site alone says about tumour vs normal (ingest), and site-preserved CV
(``mil.cv_groups: site``). The reference is the real TCGA-LUSC slide sheet: 1,100 slides, 495 patients, 35 sites,
19 of which sent tumour slides only."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from histcode.cohort.barcodes import site_of
from histcode.cohort.config import IngestConfig
from histcode.cohort.ingest import ingest_cohort
from histcode.cohort.sites import site_only_scores, summarise
from histcode.cohort.splits import (
    check_splits,
    make_patient_splits,
    patient_strata,
    site_groups,
    split_groups_meta,
)
from histcode.config import CohortConfig, ConfigError
from histcode.summary import summary_lines


@pytest.fixture(scope="module")
def lusc(lusc_sheet_path: Path) -> pd.DataFrame:
    """The real sheet as the slides manifest has it (slide_id, patient_id, label)."""
    s = pd.read_csv(lusc_sheet_path, sep="\t")
    return pd.DataFrame({"slide_id": s["File Name"].str.rsplit(".", n=1).str[0], "patient_id": s["Case ID"],
                         "label": (s["Sample Type"] == "Primary Tumor").astype(int)})


@pytest.fixture(scope="module")
def lusc_sheet_path() -> Path:
    return Path(__file__).resolve().parents[1] / "data" / "tcga_lusc_slides_gdc_sample_sheet.2023-08-14.tsv"


@pytest.mark.parametrize(("text", "site"), [("TCGA-85-8276", "85"), ("TCGA-51-4079-11A-01-TS1.8a22.svs", "51"),
                                            ("tcga-gm-1cir", "GM"), ("01BR001", None), ("XTCGA-85-82761", None)])
def test_site_of_patient_barcodes(text: str, site: str | None) -> None:
    assert site_of(text) == site


def test_site_only_score_leaves_the_patient_out() -> None:
    """Site A: patients 1 (T+N) and 2 (T); site B: patient 3 (N) alone, scored by the other patients' slides."""
    slides = pd.DataFrame({"patient_id": ["TCGA-AA-0001", "TCGA-AA-0001", "TCGA-AA-0002", "TCGA-BB-0003"],
                           "label": [1, 0, 1, 0]})
    assert site_only_scores(slides).tolist() == [1.0, 1.0, 0.5, 2 / 3]


def test_the_real_lusc_sheet_site_predicts_the_label(tmp_path: Path, lusc_sheet_path: Path, caplog) -> None:
    cohort = CohortConfig(kind="gdc", source_dir=tmp_path, slide_dir=tmp_path / "slides", slide_sheet=lusc_sheet_path)
    with caplog.at_level("WARNING", logger="histcode.cohort.ingest"):
        res = ingest_cohort("lusc", cohort, IngestConfig(require_files=False, progress=False), out_dir=tmp_path / "o")
    assert (res.confounds["sites"], res.confounds["sites_one_class"]) == (35, 19)
    assert res.confounds["site_only_auc"] == pytest.approx(0.7256, abs=1e-4) and res.confounds["site_confounded"] == 1
    warning = next(w for w in res.confound_warnings if "source site" in w)
    assert "AUC 0.73" in warning and "19 of 35 sites sent one class only" in warning and warning in caplog.text
    assert "mil.cv_groups: site" in warning


def test_a_site_that_says_nothing_is_not_flagged() -> None:
    """Every site sends a tumour and a normal slide of each patient: the site-only AUC is 0.5, no warning; a
    cohort without TCGA barcodes has no sites and no AUC."""
    pts = [f"TCGA-{s}-{i:04d}" for s in ("AA", "BB", "CC") for i in range(3)]
    slides = pd.DataFrame({"patient_id": [p for p in pts for _ in (0, 1)], "label": [1, 0] * len(pts)})
    counts, warning = summarise(slides, cohort="even")
    assert counts == {"sites": 3, "sites_one_class": 0, "site_only_auc": 0.5, "site_confounded": 0} and warning is None
    cptac = pd.DataFrame({"patient_id": ["01BR001", "01BR001"], "label": [1, 0]})
    assert summarise(cptac, cohort="cptac") == ({"sites": 0}, None)
    alone = pd.DataFrame({"patient_id": ["TCGA-AA-0001", "TCGA-AA-0001"], "label": [1, 0]})  # nobody to score by
    assert summarise(alone, cohort="one") == ({"sites": 1, "sites_one_class": 0}, None)


def test_site_preserved_folds_on_the_real_sheet(lusc: pd.DataFrame) -> None:
    groups = site_groups(lusc, "lusc")
    splits = make_patient_splits(lusc, 5, 0.1, None, 1337, groups=groups)
    check_splits(splits)  # every patient tested exactly once, never in two splits of a fold
    test = splits[splits["split"] == "test"].set_index("patient_id")["fold"]
    # whole sites: no site is tested in two folds
    assert test.groupby(test.index.map(groups.__getitem__)).nunique().max() == 1
    # balanced: 495 patients → 99 per fold; Howard et al.'s objective Σ (5·n_fold,stratum − n_stratum)² within 25 %
    # of what their PreservedSiteCV reached with CPLEX in 100 s on these patients (330; bench_site_folds.py)
    sizes = test.value_counts().sort_index().tolist()
    assert max(sizes) - min(sizes) <= 6 and sum(sizes) == 495
    counts = pd.crosstab(test, patient_strata(lusc).reindex(test.index))
    assert ((5 * counts - counts.sum()) ** 2).to_numpy().sum() <= 1.25 * 330
    strata = patient_strata(lusc).reindex(test.index)
    share = pd.crosstab(test, strata, normalize="index")["0+1"]  # patients with tumour and normal, ~46 %
    assert share.between(0.40, 0.52).all()
    meta = split_groups_meta(splits, groups)
    assert meta["n_sites"] == 35 and sum(len(s) for s in meta["fold_sites"]) == 35 and meta["fold_patients"] == sizes
    # seeded: the same seed gives the same folds; validation patients are still drawn from the training side
    again = make_patient_splits(lusc, 5, 0.1, None, 1337, groups=groups)
    pd.testing.assert_frame_equal(splits, again)


def test_site_grouping_errors_are_one_line(lusc: pd.DataFrame) -> None:
    few = lusc[lusc["patient_id"].str[5:7].isin(["66", "60", "22"])]
    with pytest.raises(ValueError, match=r"^3 sites cannot fill 5 test folds with whole sites; lower mil.n_folds"):
        make_patient_splits(few, 5, 0.1, None, 0, groups=site_groups(few, "lusc"))
    cptac = pd.DataFrame({"slide_id": ["a", "b"], "patient_id": ["01BR001", "01BR002"], "label": [1, 0]})
    with pytest.raises(ConfigError, match=r"^mil.cv_groups: site needs TCGA patient barcodes .* \(e.g. '01BR001'\)"):
        site_groups(cptac, "cptac_brca")


def test_summary_names_a_cohort_whose_site_predicts_the_label(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    (reports / "metrics" / "ingest").mkdir(parents=True)
    base = {"slides": 10, "slides_tumour": 5, "slides_normal": 5, "patients": 5, "failures": 0}
    (reports / "metrics" / "ingest" / "lusc.json").write_text(json.dumps({**base, "site_only_auc": 0.7256,
                                                                          "site_confounded": 1}))
    (reports / "metrics" / "ingest" / "demo.json").write_text(json.dumps({**base, "site_only_auc": 0.5,
                                                                          "site_confounded": 0}))
    flagged = [line for line in summary_lines(reports, tmp_path / "f") if line.startswith("slides ")]
    assert flagged == ["slides lusc: the tissue source site alone predicts tumour vs normal with AUC 0.73: "
                       "patient-level CV flatters; see mil.cv_groups: site in the README"]
