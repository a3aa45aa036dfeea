"""Ingest of barcode-named slide folders, CPTAC manifests, RNA-seq sample sheets, and the tracked stage."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from histcode.cohort.config import IngestConfig
from histcode.cohort.ingest import ingest_cohort
from histcode.cohort.validation import ValidationError
from histcode.config import CohortConfig

QUIET = IngestConfig(progress=False)
STAR_HEADER = ("gene_id\tgene_name\tgene_type\tunstranded\tstranded_first\tstranded_second\ttpm_unstranded\t"
               "fpkm_unstranded\tfpkm_uq_unstranded")


def star_text() -> str:
    return "\n".join(["# gene-model: GENCODE v36", STAR_HEADER, "N_unmapped\t\t\t10\t10\t10\t\t\t",
                      "ENSG00000141510.18\tTP53\tprotein_coding\t5\t2\t3\t1.0\t2.0\t3.0"]) + "\n"


def test_barcode_cohort(tmp_path: Path, link_slide) -> None:
    d = tmp_path / "slides"
    link_slide(d / "TCGA-AB-0001-01A-01-TS1.uuid1.svs")
    link_slide(d / "sub" / "TCGA-AB-0001-11B-01-BS1.uuid2.svs")
    link_slide(d / "TCGA-AB-0002-06A-01-TS1.svs")  # metastatic: excluded with reason
    link_slide(d / "slide_without_barcode.svs")
    (d / "notes.txt").write_text("ignored: not a slide extension")
    cohort = CohortConfig(kind="barcode", source_dir=tmp_path, slide_dir=d)
    res = ingest_cohort("bc", cohort, QUIET, out_dir=tmp_path / "out")
    slides = pd.read_csv(tmp_path / "out" / "slides.csv")
    assert slides[["slide_id", "patient_id", "label"]].values.tolist() == [
        ["TCGA-AB-0001-01A-01-TS1.uuid1", "TCGA-AB-0001", 1],
        ["TCGA-AB-0001-11B-01-BS1.uuid2", "TCGA-AB-0001", 0],
    ]
    kinds = dict(zip(res.failures["file"], res.failures["kind"], strict=True))
    assert kinds == {"slide_without_barcode.svs": "bad_barcode", "TCGA-AB-0002-06A-01-TS1.svs": "excluded_sample_type"}


def test_cptac_manifest_with_mpp(tmp_path: Path, link_slide) -> None:
    d = tmp_path / "slides"
    link_slide(d / "a.svs")
    link_slide(d / "b.svs")
    (tmp_path / "m.csv").write_text("slide_id,file_name,patient_id,label,mpp\n"
                                    "S1,a.svs,C3L-00001,tumor,0.25\nS2,b.svs,C3L-00001,normal,\n")
    cohort = CohortConfig(kind="cptac", source_dir=tmp_path, slide_dir=d, slide_sheet=tmp_path / "m.csv",
                          default_mpp=0.5, role="external")
    ingest_cohort("cp", cohort, QUIET, out_dir=tmp_path / "out")
    slides = pd.read_csv(tmp_path / "out" / "slides.csv")
    assert slides["label"].tolist() == [1, 0]
    assert slides["sample_type"].tolist() == ["Primary Tumor", "Solid Tissue Normal"]
    assert slides["mpp"].tolist() == [0.25, 0.5]  # manifest value wins, default fills the gap


@pytest.mark.parametrize(("row", "pattern"), [
    ("S1,a.svs,C3L-00001,Tumor,0.25", r"expect_column_values_to_be_in_set\(label\).*line 2: 'Tumor'"),
    ("S1,a.svs,C3L-00001,tumor,-0.25", r"expect_column_values_to_match_regex\(mpp\).*line 2: '-0.25'"),
    ("S1,a.svs,,tumor,0.25", r"expect_column_values_to_not_be_null\(patient_id\).*line 2: None"),
])
def test_cptac_manifest_errors(tmp_path: Path, row: str, pattern: str) -> None:
    (tmp_path / "m.csv").write_text(f"slide_id,file_name,patient_id,label,mpp\n{row}\n")
    cohort = CohortConfig(kind="cptac", source_dir=tmp_path, slide_dir=tmp_path, slide_sheet=tmp_path / "m.csv")
    with pytest.raises(ValidationError, match=pattern):
        ingest_cohort("cp", cohort, QUIET, out_dir=tmp_path / "out")


def test_zero_mpp_fails_output_check(tmp_path: Path, link_slide) -> None:
    link_slide(tmp_path / "a.svs")
    (tmp_path / "m.csv").write_text("slide_id,file_name,patient_id,label,mpp\nS1,a.svs,P1,tumor,0\n")
    cohort = CohortConfig(kind="cptac", source_dir=tmp_path, slide_dir=tmp_path, slide_sheet=tmp_path / "m.csv")
    pattern = r"(?s)slides.csv.*expect_column_values_to_be_between\(mpp\).*line 2: 0.0"
    with pytest.raises(ValidationError, match=pattern):
        ingest_cohort("cp", cohort, QUIET, out_dir=tmp_path / "out")


def _rna_row(fid: str, name: str, patient: str, code: str, st: str) -> str:
    return "\t".join([fid, name, "Transcriptome Profiling", "Gene Expression Quantification", "TCGA-BRCA",
                      f"TCGA-{patient}", f"TCGA-{patient}-{code}", st])


def test_rnaseq_sheet(tmp_path: Path, gdc_sheet, sheet_row, link_slide) -> None:
    slides_dir, rna = tmp_path / "slides", tmp_path / "rna"
    srow = sheet_row("AA-0001", "01")
    link_slide(slides_dir / srow[1])
    star = ".rna_seq.augmented_star_gene_counts.tsv"
    files = {  # file id → (name, content or None for missing)
        "f1": ("u1" + star, star_text()),
        "f2": ("u2" + star, star_text().replace("# gene-model: GENCODE v36\n", "")),  # malformed
        "f3": ("u3.FPKM-UQ.txt.gz", b"ENSG00000141510.4\t12.5\n"),
        "f4": ("u4.FPKM-UQ.txt.gz", None),  # missing
        "f5": ("u5.FPKM.txt.gz", b"ENSG00000141510.4\t1.0\n"),  # other workflow
        "f6": ("u6" + star, star_text()),  # metastatic
    }
    for fid, (name, content) in files.items():
        if content is None:
            continue
        p = rna / fid / name
        p.parent.mkdir(parents=True)
        p.write_bytes(gzip.compress(content) if isinstance(content, bytes) else content.encode())
    sheet = tmp_path / "rna.tsv"
    sheet.write_text("\n".join([
        "\t".join(["File ID", "File Name", "Data Category", "Data Type", "Project ID", "Case ID", "Sample ID",
                   "Sample Type"]),
        _rna_row("f1", files["f1"][0], "AA-0001", "01A", "Primary Tumor"),
        _rna_row("f2", files["f2"][0], "AA-0001", "11A", "Solid Tissue Normal"),
        _rna_row("f3", files["f3"][0], "AA-0002", "01A", "Primary Tumor"),
        _rna_row("f4", files["f4"][0], "AA-0002", "11A", "Solid Tissue Normal"),
        _rna_row("f5", files["f5"][0], "AA-0003", "01A", "Primary Tumor"),
        _rna_row("f6", files["f6"][0], "AA-0003", "06A", "Metastatic"),
    ]) + "\n")
    cohort = CohortConfig(kind="gdc", source_dir=tmp_path, slide_dir=slides_dir, slide_sheet=gdc_sheet([srow]),
                          rna_dir=rna, rna_sheet=sheet)
    res = ingest_cohort("c", cohort, QUIET, out_dir=tmp_path / "out")
    manifest = pd.read_csv(tmp_path / "out" / "rnaseq.csv")
    assert manifest[["sample_id", "format", "file_id"]].values.tolist() == [
        ["TCGA-AA-0001-01A", "star", "f1"], ["TCGA-AA-0002-01A", "htseq_fpkm_uq", "f3"]]
    assert manifest["path"].tolist()[0] == str(rna / "f1" / files["f1"][0])
    fails = res.failures[res.failures["table"] == "rnaseq"].set_index("row")
    assert fails["kind"].to_dict() == {3: "malformed", 5: "missing_file", 6: "excluded_workflow",
                                       7: "excluded_sample_type"}
    assert "must start with '# gene-model:'" in fails.loc[3, "reason"]
    assert res.counts["rnaseq_tumour"] == 2 and res.counts["rnaseq_normal"] == 0


def test_stage_logs_mlflow_run_and_metrics(tmp_path: Path, monkeypatch, gdc_sheet, sheet_row, link_slide) -> None:
    import mlflow

    from histcode.cohort.stage import run_ingest

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)
    rows = [sheet_row("AA-0001", "01"), sheet_row("AA-0001", "11"), sheet_row("AA-0002", "01")]
    for r in rows[:2]:
        link_slide(tmp_path / "raw" / "slides" / r[1])
    sheet = gdc_sheet(rows)
    params = {
        "base": {"data_dir": "data", "reports_dir": "reports", "train_cohort": "demo",
                 "cohorts": {"demo": {"kind": "gdc", "source_dir": "raw", "slide_dir": "raw/slides",
                                      "slide_sheet": str(sheet)}}},
        "ingest": {"require_files": True, "progress": False},
    }
    res = run_ingest("demo", params)
    metrics = json.loads(Path("reports/metrics/ingest/demo.json").read_text())
    assert metrics == {**res.counts, **res.confounds}
    assert (metrics["slides_frozen"], metrics["preparation_confounded"]) == (2, 0)  # TS1 tumour and normal
    assert (metrics["slides_tumour"], metrics["slides_normal"], metrics["failures"]) == (1, 1, 1)
    from histcode import tracking

    tracking.client()  # the run was deferred: replayed first (what every MLflow reader of the project does)
    run = mlflow.search_runs(experiment_names=["histcode/ingest"], output_format="list")[0]
    assert run.data.tags["cohort"] == "demo" and run.data.tags["histcode.stage"] == "ingest"
    assert run.data.metrics["slides_tumour"] == 1.0
    assert run.data.params["ingest.require_files"] == "True"
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "validation")}
    assert arts == {"validation/validation.json"}


def test_barcode_cohort_without_folder_is_a_clear_error(tmp_path: Path) -> None:
    from histcode.cohort.tables import IngestError

    cohort = CohortConfig(kind="barcode", source_dir=tmp_path, slide_dir=tmp_path / "nope")
    with pytest.raises(IngestError, match=r"slide directory not found; fix base\.cohorts"):
        ingest_cohort("bc", cohort, QUIET, out_dir=tmp_path / "out")
