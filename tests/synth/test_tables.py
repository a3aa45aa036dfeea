"""Sample sheets, the CPTAC manifest and STAR files parse back to exactly what was generated."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from histcode.io import truth
from histcode.synth.genes import MARKERS, driver_panel
from histcode.synth.star import GENE_MODEL_LINE, SHEET_COLUMNS, STAR_COLUMNS, SUMMARY_ROWS, read_star

TCGA_FILE = re.compile(r"^(TCGA-[A-Z0-9]{2}-[A-Z0-9]{4})-(01Z-00-DX1|11A-01-TS1)\.[0-9a-f-]{36}\.(svs|tiff)$")


def test_slide_sample_sheet_matches_files_and_truth(tiny_cohort: Path) -> None:
    sheet = pd.read_csv(tiny_cohort / "tcga_synth" / "gdc_sample_sheet.slides.tsv", sep="\t")
    assert tuple(sheet.columns) == SHEET_COLUMNS
    assert sheet["File ID"].is_unique and sheet["File Name"].is_unique
    assert set(sheet["Data Type"]) == {"Slide Image"} and set(sheet["Data Category"]) == {"Biospecimen"}
    files = {p.name for p in (tiny_cohort / "tcga_synth" / "slides").iterdir()}
    assert set(sheet["File Name"]) == files
    for row in sheet.itertuples():
        m = TCGA_FILE.match(row[2])
        assert m, row[2]
        assert m.group(1) == row[6] and row[7].startswith(row[6])
        assert row[8] == ("Primary Tumor" if m.group(2).startswith("01") else "Solid Tissue Normal")
    per_case = sheet.groupby("Case ID")["Sample Type"].apply(sorted)
    assert len(per_case) == 4 and all(v == ["Primary Tumor", "Solid Tissue Normal"] for v in per_case)
    st = truth.read_slide_truth(tiny_cohort / "ground_truth").set_index("file_name")
    assert (st.loc[sheet["File Name"], "label"].to_numpy() == (sheet["Sample Type"] == "Primary Tumor")).all()
    expected_ids = sheet["File Name"].str.rsplit(".", n=1).str[0].to_numpy()
    assert (st.loc[sheet["File Name"], "slide_id"].to_numpy() == expected_ids).all()


def test_cptac_manifest(tiny_cohort: Path) -> None:
    man = pd.read_csv(tiny_cohort / "cptac_synth" / "cptac_brca_manifest.csv")
    assert list(man.columns) == ["slide_id", "file_name", "patient_id", "label"]
    assert set(man["label"]) == {"tumor", "normal"} and man["patient_id"].nunique() == 2
    assert all((tiny_cohort / "cptac_synth" / "slides" / f).exists() for f in man["file_name"])
    assert (man["file_name"].str.rsplit(".", n=1).str[0] == man["slide_id"]).all()
    tcga = pd.read_csv(tiny_cohort / "tcga_synth" / "gdc_sample_sheet.slides.tsv", sep="\t")
    assert not set(man["patient_id"]) & set(tcga["Case ID"])


def test_rna_sheet_layout_and_missing_normals(tiny_cohort: Path, tiny_cfg) -> None:
    sheet = pd.read_csv(tiny_cohort / "tcga_synth" / "gdc_sample_sheet.rnaseq.tsv", sep="\t")
    assert tuple(sheet.columns) == SHEET_COLUMNS
    assert set(sheet["Data Type"]) == {"Gene Expression Quantification"}
    for row in sheet.itertuples():
        assert (tiny_cohort / "tcga_synth" / "rnaseq" / row[1] / row[2]).is_file()
        assert row[2].endswith(".rna_seq.augmented_star_gene_counts.tsv")
    types = sheet.groupby("Case ID")["Sample Type"].apply(set)
    assert all("Primary Tumor" in t for t in types)
    assert sum("Solid Tissue Normal" not in t for t in types) == tiny_cfg.n_without_normal == 1
    patients = truth.read_patient_truth(tiny_cohort / "ground_truth")
    no_normal = set(
        patients.loc[~patients["has_normal_rna"] & (patients["cohort"] == "tcga_synth"), "patient_id"]
    )
    assert no_normal == {c for c, t in types.items() if "Solid Tissue Normal" not in t}


def test_star_files_are_gdc_format_and_self_consistent(tiny_cohort: Path) -> None:
    sheet = pd.read_csv(tiny_cohort / "tcga_synth" / "gdc_sample_sheet.rnaseq.tsv", sep="\t")
    genes = pd.read_csv(tiny_cohort / "ground_truth" / "genes.csv")
    for row in sheet.itertuples():
        path = tiny_cohort / "tcga_synth" / "rnaseq" / row[1] / row[2]
        lines = path.read_text().splitlines()
        assert lines[0] == GENE_MODEL_LINE
        assert tuple(lines[1].split("\t")) == STAR_COLUMNS
        assert tuple(line.split("\t")[0] for line in lines[2:6]) == SUMMARY_ROWS
        assert lines[2].split("\t")[1:3] == ["", ""] and lines[2].split("\t")[6:] == ["", "", ""]
        df = read_star(path)
        assert df["gene_id"].str.fullmatch(r"ENSG\d{11}\.\d+").all() and df["gene_id"].is_unique
        assert list(df["gene_name"]) == list(genes["gene_name"])
        assert set(MARKERS) | set(driver_panel(200)) <= set(df["gene_name"])
        c = df["unstranded"].to_numpy(float)
        length = genes["length_bp"].to_numpy(float)
        pc = (df["gene_type"] == "protein_coding").to_numpy()
        assert (df["stranded_first"] + df["stranded_second"] == df["unstranded"]).all()
        assert df["tpm_unstranded"].sum() == pytest.approx(1e6, rel=1e-4)
        np.testing.assert_allclose(df["tpm_unstranded"], c / length / (c / length).sum() * 1e6, atol=1e-4)
        np.testing.assert_allclose(df["fpkm_unstranded"], c * 1e9 / (length * c[pc].sum()), atol=1e-4)
        np.testing.assert_allclose(
            df["fpkm_uq_unstranded"], c * 1e9 / (length * np.percentile(c[pc], 75)), atol=1e-4
        )
