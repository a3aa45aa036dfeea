"""TCGA slides from IDC as a training cohort: the slide barcode (sm_index's ContainerIdentifier) as the slide id,
the tissue preparation from barcode or description, and GDC RNA-seq paired by sample.

Rows: IDC v25's real tcga_lusc series of five patients (``tests/data/idc_tcga_lusc_v25.csv``); their
ContainerIdentifier is the real GDC slide barcode of the same patient, sample type and section (PROVENANCE.md).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from histcode.cohort.config import IngestConfig
from histcode.cohort.idc import build_manifest, preparation, read_index, slide_barcode
from histcode.cohort.ingest import ingest_cohort
from histcode.cohort.tables import IngestError
from histcode.config import CohortConfig

DATA = Path(__file__).resolve().parents[1] / "data"
TCGA = DATA / "idc_tcga_lusc_v25.csv"
META = IngestConfig(require_files=False, progress=False)
RNA_HEADER = ["File ID", "File Name", "Data Category", "Data Type", "Project ID", "Case ID", "Sample ID",
              "Sample Type"]
STAR = ".rna_seq.augmented_star_gene_counts.tsv"


@pytest.fixture(scope="module")
def index() -> pd.DataFrame:
    return read_index(TCGA)


def _cohort(tmp_path: Path, manifest: pd.DataFrame, **kw) -> CohortConfig:
    manifest.to_csv(tmp_path / "m.csv", index=False)
    return CohortConfig(kind="cptac", source_dir=tmp_path, slide_dir=tmp_path, slide_sheet=tmp_path / "m.csv", **kw)


def test_tcga_series_are_named_by_their_slide_barcode(index: pd.DataFrame) -> None:
    res = build_manifest(index, collections=["tcga_lusc"], slide_dir=None)
    m = res.manifest.set_index("series_description", append=True)
    assert (res.counts["series"], res.counts["tumor"], res.counts["normal"]) == (25, 15, 10)
    assert (res.counts["frozen"], res.counts["ffpe"], res.counts["barcodes"]) == (20, 5, 20)
    frozen = res.manifest[res.manifest["preparation"] == "frozen"]
    assert frozen["slide_id"].tolist() == index.dropna(subset=["ContainerIdentifier"]).sort_values(
        ["PatientID", "SeriesInstanceUID"])["ContainerIdentifier"].tolist()
    assert frozen["label_source"].str.startswith("ContainerIdentifier 'TCGA-").all()
    # the FFPE series have no ContainerIdentifier in this export: their id stays PatientID_UID, the words give the rest
    ffpe = res.manifest[res.manifest["preparation"] == "ffpe"]
    assert ffpe["series_description"].eq("FFPE HE TP DX1").all() and ffpe["label"].eq("tumor").all()
    assert ffpe["slide_id"].str.match(r"^TCGA-18-34\d\d_1\.3\.6\.1\.4\.1\.").all()
    assert m.index.get_level_values(1).str.contains(" NT ").sum() == res.counts["normal"]


def test_barcode_and_description_must_agree(index: pd.DataFrame) -> None:
    """A normal barcode on a series described as tumour is skipped with both, never resolved by guessing."""
    bad = index.copy()
    row = bad.index[bad["ContainerIdentifier"] == "TCGA-18-3406-01A-01-TS1"][0]
    bad.loc[row, "ContainerIdentifier"] = "TCGA-18-3406-11A-01-TS1"
    meta = bad.index[bad["ContainerIdentifier"] == "TCGA-18-3407-01A-01-BS1"][0]
    bad.loc[meta, "ContainerIdentifier"] = "TCGA-18-3407-06A-01-BS1"  # a metastasis: neither class
    res = build_manifest(bad, collections=["tcga_lusc"], slide_dir=None)
    kinds = res.skipped.set_index("series_description")["kind"].to_dict()
    assert res.skipped["kind"].value_counts().to_dict() == {"label_mismatch": 1, "other_tissue_type": 1}
    reasons = " ".join(res.skipped["reason"])
    assert "'TCGA-18-3406-11A-01-TS1' is 'Solid Tissue Normal' but SeriesDescription 'Frozen HE TP TS1' says tumor" \
        in reasons and "sample type 'Metastatic' is neither class" in reasons
    assert set(kinds) == {"Frozen HE TP TS1", "Frozen HE TP BS1"}
    assert len(res.manifest) == 23


@pytest.mark.parametrize(("barcode", "description", "embedding", "expected"), [
    ("TCGA-18-3406-11A-01-BS1", "FFPE HE NT BS1", None, "frozen"),  # the barcode wins
    (None, "Frozen HE TP TS1", None, "frozen"),
    (None, "FFPE HE TP DX1", "Tissue freezing medium", "ffpe"),  # description before embedding medium
    (None, "HE tumor_tissue", "Paraffin wax", "ffpe"),
    (None, "HE tumor_tissue", "Tissue freezing medium", "frozen"),
    (None, "HE tumor_tissue", ["Paraffin wax"], "ffpe"),  # as sm_index's parquet holds it
    (None, "HE tumor_tissue", None, None),
    (None, "Frozen FFPE HE", None, None),  # both named: no preparation
])
def test_preparation(barcode: str | None, description: str, embedding: str | None, expected: str | None) -> None:
    assert preparation(barcode, description, embedding) == expected


def test_slide_barcode() -> None:
    assert slide_barcode(" tcga-18-3406-01a-01-ts1 ") == "TCGA-18-3406-01A-01-TS1"
    assert slide_barcode("TCGA-18-3406-01A") is None  # a sample, not a slide
    assert slide_barcode("C3L-00001-21") is None and slide_barcode(float("nan")) is None


def test_ingest_keeps_frozen_sections_and_pairs_gdc_rnaseq(tmp_path: Path, index: pd.DataFrame, caplog) -> None:
    """The manifest's preparation works as a GDC download's barcodes do: ``frozen`` keeps the 20 frozen sections
    (FFPE recorded), and the RNA-seq of the same samples pairs by the barcode's sample id."""
    res = build_manifest(index, collections=["tcga_lusc"], slide_dir=None)
    frozen = res.manifest[res.manifest["preparation"] == "frozen"]
    rows = []
    for sample in sorted({s[:16] for s in frozen["slide_id"]}):
        fid = f"rna-{sample.lower()}"
        kind = "Primary Tumor" if sample[13:15] == "01" else "Solid Tissue Normal"
        rows.append([fid, f"{fid}{STAR}", "Transcriptome Profiling", "Gene Expression Quantification", "TCGA-LUSC",
                     sample[:12], sample, kind])
    (tmp_path / "rna.tsv").write_text("\n".join("\t".join(r) for r in [RNA_HEADER, *rows]) + "\n")
    cohort = _cohort(tmp_path, res.manifest, preparation="frozen", rna_dir=tmp_path, rna_sheet=tmp_path / "rna.tsv")
    got = ingest_cohort("tcga_lusc_idc", cohort, META, out_dir=tmp_path / "out")
    slides = pd.read_csv(tmp_path / "out" / "slides.csv")
    assert len(slides) == 20 and slides["slide_id"].str.fullmatch(r"TCGA-18-34\d\d-(01|11)A-01-[TB]S1").all()
    assert got.failures["kind"].value_counts().to_dict() == {"excluded_preparation": 5}
    assert got.confounds["preparation_confounded"] == 0 and got.confounds["slides_frozen"] == 20
    rna = pd.read_csv(tmp_path / "out" / "rnaseq.csv")
    assert set(slides["slide_id"].str[:16]) == set(rna["sample_id"])  # each slide's sample has its RNA-seq


def test_all_preparations_are_flagged_as_confounded(tmp_path: Path, index: pd.DataFrame, caplog) -> None:
    """IDC's TCGA-LUSC holds FFPE slides of tumours only (512 in v25; every normal is frozen): kept together, the
    preparation gives the label away, and ingest says so, from the barcodes and the manifest's column alike."""
    res = build_manifest(index, collections=["tcga_lusc"], slide_dir=None)
    with caplog.at_level(logging.WARNING):
        got = ingest_cohort("tcga_lusc_idc", _cohort(tmp_path, res.manifest), META, out_dir=tmp_path / "out")
    assert got.confounds["preparation_confounded"] == 1
    assert (got.confounds["slides_frozen"], got.confounds["slides_ffpe"]) == (20, 5)
    assert "FFPE (DX): 5 tumour; frozen (TS/BS/MS): 10 tumour, 10 normal" in caplog.text
    assert "set base.cohorts.tcga_lusc_idc.preparation: frozen" in caplog.text


def test_preparation_without_any_source_is_refused(tmp_path: Path) -> None:
    manifest = pd.DataFrame({"slide_id": ["a", "b"], "file_name": ["a.svs", "b.svs"], "patient_id": ["p", "q"],
                             "label": ["tumor", "normal"]})
    with pytest.raises(IngestError, match="needs TCGA slide barcodes or a manifest 'preparation' column"):
        ingest_cohort("c", _cohort(tmp_path, manifest, preparation="frozen"), META, out_dir=tmp_path / "out")


def test_manifest_preparation_values_are_checked(tmp_path: Path) -> None:
    from histcode.cohort.validation import ValidationError

    manifest = pd.DataFrame({"slide_id": ["a"], "file_name": ["a.svs"], "patient_id": ["p"], "label": ["tumor"],
                             "preparation": ["paraffin"]})
    with pytest.raises(ValidationError, match="preparation"):
        ingest_cohort("c", _cohort(tmp_path, manifest), META, out_dir=tmp_path / "out")


def test_command_counts_barcodes_and_preparations(tmp_path: Path) -> None:
    import typer

    from histcode.cohort.commands import register

    app = typer.Typer()
    register(app)
    out = tmp_path / "m.csv"
    result = CliRunner().invoke(app, ["idc-manifest", "--collection", "tcga_lusc", "--index", str(TCGA),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "25 series → 15 tumour + 10 normal" in result.output
    assert "(20 frozen, 5 FFPE; 20 named by their TCGA slide barcode)" in result.output
    assert pd.read_csv(out).columns.tolist()[:5] == ["slide_id", "file_name", "patient_id", "label", "preparation"]


def test_a_plan_of_frozen_sections_lists_the_series_to_download(tmp_path: Path, index: pd.DataFrame) -> None:
    """``--preparation frozen`` without ``--slide-dir``: the manifest and the series to fetch hold the 20 frozen
    sections only (IDC's FFPE DX slides are large and tumour-only); the FFPE series are skipped with the reason."""
    import typer

    from histcode.cohort.commands import register

    app = typer.Typer()
    register(app)
    out = tmp_path / "m.csv"
    result = CliRunner().invoke(app, ["idc-manifest", "--collection", "tcga_lusc", "--index", str(TCGA),
                                      "--preparation", "frozen", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "5 of another preparation" in result.output and "idc download-from-selection" in result.output
    frozen = index[index["SeriesDescription"].str.startswith("Frozen")]
    assert sorted((tmp_path / "m.series.txt").read_text().split()) == sorted(frozen["SeriesInstanceUID"])
    assert pd.read_csv(out)["preparation"].eq("frozen").all()
    skipped = pd.read_csv(tmp_path / "m.skipped.csv")
    assert skipped["kind"].tolist() == ["other_preparation"] * 5
    assert skipped["reason"].str.contains("the series is ffpe").all()
    bad = CliRunner().invoke(app, ["idc-manifest", "--collection", "tcga_lusc", "--index", str(TCGA),
                                   "--preparation", "paraffin", "--out", str(out)])
    assert bad.exit_code != 0 and "not one of all, frozen, ffpe" in str(bad.exception)


def test_the_plan_says_what_it_will_download(index: pd.DataFrame) -> None:
    """With the main index's series_size_MB, the plan sums the kept series (the frozen ones here)."""
    sized = index.assign(series_size_MB=[100.0 if d.startswith("Frozen") else 900.0
                                         for d in index["SeriesDescription"]])
    assert build_manifest(sized, collections=["tcga_lusc"], slide_dir=None, keep="frozen").counts["size_mb"] == 2000
    assert build_manifest(sized, collections=["tcga_lusc"], slide_dir=None).counts["size_mb"] == 6500


def test_a_manifest_label_that_contradicts_its_barcode_is_recorded(tmp_path: Path, index: pd.DataFrame) -> None:
    """A hand-edited manifest of TCGA slides: the barcode's sample type is checked against the label, as for GDC
    sheets; CPTAC ids are not barcodes and pass."""
    res = build_manifest(index, collections=["tcga_lusc"], slide_dir=None)
    m = res.manifest.copy()
    m.loc[m["slide_id"] == "TCGA-18-3406-11A-01-BS1", "label"] = "tumor"
    got = ingest_cohort("c", _cohort(tmp_path, m), META, out_dir=tmp_path / "out")
    (row,) = got.failures[got.failures["kind"] == "sample_type_mismatch"].itertuples()
    assert "TCGA-18-3406-11A (code 11) is 'Solid Tissue Normal' but the manifest's label says 'Primary Tumor'" \
        in row.reason and "correct the manifest row" in row.reason
    assert len(pd.read_csv(tmp_path / "out" / "slides.csv")) == 24
