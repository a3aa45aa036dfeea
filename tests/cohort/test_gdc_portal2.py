"""Sample sheets of the GDC Data Portal 2 (2024 on): Tissue Type / Tumor Descriptor instead of Sample Type.

The layout is the one of a real TCGA-LUAD sheet downloaded on 2025-05-22 (11 columns: File ID, File Name, Data
Category, Data Type, Project ID, Case ID, Sample ID, Tissue Type, Tumor Descriptor, Specimen Type, Preservation
Method; values Tumor/Normal, Primary/Recurrence, Solid Tissue/Unknown, FFPE/OCT/Unknown). The rows are the real
2023 TCGA-LUSC slide sheet's, rewritten in that layout, so the two must ingest alike.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from histcode.cohort.config import IngestConfig
from histcode.cohort.gdc_sheets import with_sample_type
from histcode.cohort.ingest import ingest_cohort
from histcode.cohort.validation import ValidationError
from histcode.config import CohortConfig

META = IngestConfig(require_files=False, progress=False)
PORTAL2 = ["File ID", "File Name", "Data Category", "Data Type", "Project ID", "Case ID", "Sample ID", "Tissue Type",
           "Tumor Descriptor", "Specimen Type", "Preservation Method"]
_DESCRIPTOR = {"Primary Tumor": ("Tumor", "Primary"), "Solid Tissue Normal": ("Normal", "Not Applicable"),
               "Metastatic": ("Tumor", "Metastatic"), "Recurrent Tumor": ("Tumor", "Recurrence")}


def as_portal2(legacy: pd.DataFrame) -> pd.DataFrame:
    out = legacy.drop(columns=["Sample Type"])
    tissue = legacy["Sample Type"].map(lambda t: _DESCRIPTOR[t])
    out["Tissue Type"], out["Tumor Descriptor"] = tissue.str[0], tissue.str[1]
    out["Specimen Type"], out["Preservation Method"] = "Solid Tissue", "OCT"
    return out[PORTAL2]


def gdc(sheet: Path, tmp: Path) -> CohortConfig:
    return CohortConfig(kind="gdc", source_dir=tmp, slide_dir=tmp / "slides", slide_sheet=sheet)


def test_real_lusc_sheet_in_portal2_layout_ingests_as_the_legacy_one(tmp_path: Path, lusc_sheet: Path) -> None:
    legacy = pd.read_csv(lusc_sheet, sep="\t", dtype=str)
    new = tmp_path / "gdc_sample_sheet.2025.tsv"
    as_portal2(legacy).to_csv(new, sep="\t", index=False)
    ingest_cohort("old", gdc(lusc_sheet, tmp_path), META, out_dir=tmp_path / "old")
    res = ingest_cohort("lusc", gdc(new, tmp_path), META, out_dir=tmp_path / "new")
    old_slides = pd.read_csv(tmp_path / "old" / "slides.csv").drop(columns="cohort")
    new_slides = pd.read_csv(tmp_path / "new" / "slides.csv").drop(columns="cohort")
    pd.testing.assert_frame_equal(old_slides, new_slides)
    assert new_slides["label"].value_counts().to_dict() == {1: 753, 0: 347}
    assert res.failures.empty


def test_tissue_type_contradicting_the_sample_code_is_recorded(tmp_path: Path, lusc_sheet: Path) -> None:
    sheet = as_portal2(pd.read_csv(lusc_sheet, sep="\t", dtype=str).head(6))
    sheet.loc[0, "Tissue Type"] = "Tumor"  # TCGA-51-4079-11A: a normal sample called tumour
    path = tmp_path / "s.tsv"
    sheet.to_csv(path, sep="\t", index=False)
    res = ingest_cohort("c", gdc(path, tmp_path), META, out_dir=tmp_path / "out")
    bad = res.failures[res.failures["kind"] == "sample_type_mismatch"]
    assert bad["row"].tolist() == [2]
    assert "TCGA-51-4079-11A (code 11: 'Solid Tissue Normal') but the sheet's Tissue Type says 'Tumor'" in \
        bad["reason"].iloc[0]
    assert len(pd.read_csv(tmp_path / "out" / "slides.csv")) == 5


def test_legacy_sheets_pass_unchanged(lusc_sheet: Path) -> None:
    legacy = pd.read_csv(lusc_sheet, sep="\t", dtype=str)
    out, failures = with_sample_type(legacy, table="slides")
    assert out is legacy and failures == []


def test_portal2_rnaseq_sheet(tmp_path: Path, gdc_sheet, sheet_row, link_slide) -> None:
    star = ".rna_seq.augmented_star_gene_counts.tsv"
    text = "\n".join(["# gene-model: GENCODE v36", "gene_id\tgene_name\tgene_type\tunstranded\tstranded_first\t"
                      "stranded_second\ttpm_unstranded\tfpkm_unstranded\tfpkm_uq_unstranded",
                      "ENSG00000141510.18\tTP53\tprotein_coding\t5\t2\t3\t1.0\t2.0\t3.0"]) + "\n"
    rows = [("f1", "01A", "Tumor", "Primary"), ("f2", "11A", "Normal", "Not Applicable"),
            ("f3", "06A", "Tumor", "Metastatic")]
    lines = ["\t".join(PORTAL2)]
    for fid, code, tissue, desc in rows:
        (tmp_path / "rna" / fid).mkdir(parents=True)
        (tmp_path / "rna" / fid / f"{fid}{star}").write_text(text.replace("\t5\t", f"\t{5 + len(lines)}\t"))
        lines.append("\t".join([fid, f"{fid}{star}", "Transcriptome Profiling", "Gene Expression Quantification",
                                "TCGA-LUAD", "TCGA-AA-0001", f"TCGA-AA-0001-{code}", tissue, desc, "Solid Tissue",
                                "Unknown"]))
    (tmp_path / "rna.tsv").write_text("\n".join(lines) + "\n")
    srow = sheet_row("AA-0001", "01")
    link_slide(tmp_path / "slides" / srow[1])
    cohort = CohortConfig(kind="gdc", source_dir=tmp_path, slide_dir=tmp_path / "slides",
                          slide_sheet=gdc_sheet([srow]), rna_dir=tmp_path / "rna", rna_sheet=tmp_path / "rna.tsv")
    res = ingest_cohort("c", cohort, IngestConfig(progress=False), out_dir=tmp_path / "out")
    rna = pd.read_csv(tmp_path / "out" / "rnaseq.csv")
    assert rna[["sample_id", "sample_type"]].values.tolist() == [
        ["TCGA-AA-0001-01A", "Primary Tumor"], ["TCGA-AA-0001-11A", "Solid Tissue Normal"]]
    assert res.failures.set_index("row")["kind"].to_dict() == {4: "excluded_sample_type"}  # the metastatic file


def test_sheet_with_neither_layout_names_both(tmp_path: Path, lusc_sheet: Path) -> None:
    sheet = pd.read_csv(lusc_sheet, sep="\t", dtype=str).head(3).drop(columns="Sample Type")
    path = tmp_path / "s.tsv"
    sheet.to_csv(path, sep="\t", index=False)
    with pytest.raises(ValidationError, match="Tissue Type and Tumor Descriptor instead of Sample Type"):
        ingest_cohort("c", gdc(path, tmp_path), META, out_dir=tmp_path / "out")
