"""End to end on a hand-made GDC cohort: ingest (slides + RNA sheet) → de_targets, tracked in MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from histcode.cohort.validation import ValidationError

CMU = Path(__file__).resolve().parents[1] / "data" / "CMU-1-Small-Region.svs"
HEADER = "\t".join(["File ID", "File Name", "Data Category", "Data Type", "Project ID", "Case ID", "Sample ID",
                    "Sample Type"])


def _cohort(root: Path, star_writer, genes, copy) -> dict[str, float]:
    """Patients 1-2 paired, patient 3 tumour only; returns the expected TP53 log10(fc+1) per patient."""
    slides, rna = [HEADER], [HEADER]
    values = {"0001": (30.0, 3.0), "0002": (1.0, 8.0), "0003": (5.0, None)}
    for pid, (tum, nor) in values.items():
        for code, v, st in (("01A", tum, "Primary Tumor"), ("11A", nor, "Solid Tissue Normal")):
            if v is None:
                continue
            name = f"TCGA-ZZ-{pid}-{code}-01-TS1.svs"
            (root / "slides").mkdir(exist_ok=True)
            copy(CMU, root / "slides" / name)
            slides.append("\t".join([f"s{pid}{code}", name, "Biospecimen", "Slide Image", "TCGA-X", f"TCGA-ZZ-{pid}",
                                     f"TCGA-ZZ-{pid}-{code}", st]))
            fid = f"r{pid}{code}"
            fname = f"{fid}.rna_seq.augmented_star_gene_counts.tsv"
            star_writer(root / "rna" / fid / fname, [(genes["TP53"], "TP53", v), (genes["CD3D"], "CD3D", 2.0)])
            rna.append("\t".join([fid, fname, "Transcriptome Profiling", "Gene Expression Quantification",
                                  "TCGA-X", f"TCGA-ZZ-{pid}", f"TCGA-ZZ-{pid}-{code}", st]))
    (root / "slides.tsv").write_text("\n".join(slides) + "\n")
    (root / "rna.tsv").write_text("\n".join(rna) + "\n")
    pc = 1.0  # expression.pseudo_count default (FPKM-UQ + 1)
    return {f"TCGA-ZZ-{p}": float(np.log10((t + pc) / (n + pc) + 1)) for p, (t, n) in values.items() if n}


def _params(root: Path) -> dict:
    return {
        "base": {"data_dir": "data", "reports_dir": "reports", "train_cohort": "zz",
                 "cohorts": {"zz": {"kind": "gdc", "source_dir": str(root), "slide_dir": str(root / "slides"),
                                    "slide_sheet": str(root / "slides.tsv"), "rna_dir": str(root / "rna"),
                                    "rna_sheet": str(root / "rna.tsv")}}},
        "ingest": {"progress": False},
        "expression": {"n_driver_genes": 1, "markers": ["CD3D", "CD19"], "progress": False},
    }


def test_ingest_then_de_targets(tmp_path: Path, monkeypatch, star_writer, genes, distinct_copy) -> None:
    import mlflow

    from histcode.cohort.stage import run_ingest
    from histcode.expression.stage import run_de_targets

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)
    expected = _cohort(tmp_path, star_writer, genes, distinct_copy)
    params = _params(tmp_path)
    ing = run_ingest("zz", params)
    assert (ing.counts["slides"], ing.counts["rnaseq"], ing.counts["rnaseq_normal"]) == (5, 5, 2)

    res = run_de_targets(params)
    out = Path("data/expression/zz")
    log10 = pd.read_parquet(out / "log10_fc.parquet")
    assert log10.columns.tolist() == ["TP53", "CD3D"]  # top-1 IntOGen gene + markers found; CD19 reported
    np.testing.assert_allclose(log10["TP53"].to_numpy(), [expected["TCGA-ZZ-0001"], expected["TCGA-ZZ-0002"]])
    np.testing.assert_allclose(log10["CD3D"].to_numpy(), np.log10(2.0))  # fc = 1 → log10(2)
    assert pd.read_parquet(out / "de_labels.parquet")["TP53"].tolist() == [1, 1]  # log2 fc = 3.3, -3.0
    assert pd.read_csv(out / "excluded_patients.csv").values.tolist() == [
        ["TCGA-ZZ-0003", "no Solid Tissue Normal RNA-seq sample"]]
    panel = pd.read_csv(out / "panel.csv").set_index("gene")
    assert panel.loc["CD19", "status"] == "not found in the expression files"
    metrics = json.loads(Path("reports/metrics/de_targets.json").read_text())
    assert metrics["pairs"] == 2 and metrics["panel_genes_missing"] == 1 and metrics == res.metrics
    from histcode import tracking

    tracking.client()  # the run was deferred: replayed first (what every MLflow reader of the project does)
    run = mlflow.search_runs(experiment_names=["histcode/expression"], output_format="list")[0]
    assert run.data.metrics["pairs"] == 2.0 and run.data.params["expression.pseudo_count"] == "1.0"


def test_de_targets_validates_manifest_first(tmp_path: Path, monkeypatch) -> None:
    from histcode.expression.stage import run_de_targets

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)
    m = Path("data/manifests/zz/rnaseq.csv")
    m.parent.mkdir(parents=True)
    m.write_text("sample_id,patient_id,cohort,sample_type,path,format,file_id\n"
                 "TCGA-ZZ-0001-01A,TCGA-ZZ-0001,zz,Primary Tumor,missing.tsv,star,f1\n")
    with pytest.raises(ValidationError, match=r"(?s)rnaseq.csv.*file in 'path' does not exist.*line 2: 'missing.tsv'"):
        run_de_targets(_params(tmp_path))


def test_gene_missing_in_one_file_and_slide_only_patients(tmp_path: Path, monkeypatch, star_writer,
                                                          genes, distinct_copy) -> None:
    from histcode.cohort.stage import run_ingest
    from histcode.expression.stage import run_de_targets

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)
    expected = _cohort(tmp_path, star_writer, genes, distinct_copy)
    gone = next((tmp_path / "rna" / "r000211A").glob("*.tsv"))
    star_writer(gone, [(genes["CD3D"], "CD3D", 2.0)])  # TP53 missing from one normal sample's file
    name = "TCGA-ZZ-0004-01A-01-TS1.svs"  # a patient with a slide but no RNA-seq at all
    distinct_copy(CMU, tmp_path / "slides" / name)
    with open(tmp_path / "slides.tsv", "a") as fh:
        fh.write("\t".join(["s000401A", name, "Biospecimen", "Slide Image", "TCGA-X", "TCGA-ZZ-0004",
                            "TCGA-ZZ-0004-01A", "Primary Tumor"]) + "\n")
    params = _params(tmp_path)
    run_ingest("zz", params)
    run_de_targets(params)
    out = Path("data/expression/zz")
    log10 = pd.read_parquet(out / "log10_fc.parquet")
    assert log10.columns.tolist() == ["TP53", "CD3D"]  # TP53 kept for every other patient
    assert log10.loc["TCGA-ZZ-0001", "TP53"] == expected["TCGA-ZZ-0001"]
    assert np.isnan(log10.loc["TCGA-ZZ-0002", "TP53"])  # only that pair loses TP53
    assert log10.loc["TCGA-ZZ-0002", "CD3D"] == np.log10(2.0)
    labels = pd.read_parquet(out / "de_labels.parquet")
    assert labels["TP53"].isna().tolist() == [False, True]
    panel = pd.read_csv(out / "panel.csv").set_index("gene")
    assert panel.loc["TP53", "status"].startswith("ok, missing in 1 of 4 paired samples")
    assert panel.loc["TP53", "missing_in"] == str(gone)  # the file is named
    excluded = pd.read_csv(out / "excluded_patients.csv").set_index("patient_id")["reason"].to_dict()
    assert excluded == {"TCGA-ZZ-0003": "no Solid Tissue Normal RNA-seq sample",
                        "TCGA-ZZ-0004": "slides but no RNA-seq sample in rnaseq.csv"}
