"""Slides from IDC: real index rows (idc-index-data 25.0.5) → manifest → ingest of DICOM series directories."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from histcode.cohort.config import IngestConfig
from histcode.cohort.idc import build_manifest, read_index, series_dirs, tissue_label
from histcode.cohort.ingest import ingest_cohort
from histcode.cohort.tables import IngestError
from histcode.config import CohortConfig

DATA = Path(__file__).resolve().parents[1] / "data"
INDEX = DATA / "idc_sm_series_v25.csv"
DICOM = DATA / "slidetool_test_dicom.dcm"


@pytest.fixture(scope="module")
def index() -> pd.DataFrame:
    return read_index(INDEX)


def test_cptac_brca_in_idc_has_no_normal_slides(index: pd.DataFrame) -> None:
    """IDC v25's real cptac_brca: 653 H&E series, 276 described as tumour, 377 as plain "HE", none as normal."""
    res = build_manifest(index, collections=["cptac_brca"], slide_dir=None)
    assert res.counts == {"series": 653, "tumor": 276, "normal": 0, "no_tissue_type": 377, "other_tissue_type": 0,
                          "label_mismatch": 0, "other_preparation": 0, "not_downloaded": 0, "frozen": 0, "ffpe": 0,
                          "barcodes": 0, "size_mb": -1}
    assert res.manifest["patient_id"].nunique() == 111 and res.manifest["label"].eq("tumor").all()
    assert set(res.skipped["series_description"]) == {"HE"}
    assert res.warning is not None and "all 276 labelled series are tumour" in res.warning
    assert "needs normal slides too" in res.warning
    first = res.manifest.iloc[0]  # plan mode: the default `idc download` layout
    assert first["file_name"] == (f"cptac_brca/01BR001/2.25.48791557373299768401597362411459861639/"
                                  f"SM_{first['slide_id'].split('_', 1)[1]}")


def test_tcga_and_cptac_luad_descriptions(index: pd.DataFrame) -> None:
    """TCGA's TP/NT codes and CPTAC-LUAD's tumor/normal words; TCGA-BRCA's seven metastatic-sample patients carry
    no code in IDC and are skipped, never guessed."""
    luad = build_manifest(index, collections=["cptac_luad"], slide_dir=None)
    assert (luad.counts["tumor"], luad.counts["normal"], luad.warning) == (6, 2, None)
    tcga = build_manifest(index, collections=["tcga_brca"], slide_dir=None)
    labels = dict(zip(tcga.manifest["series_description"], tcga.manifest["label"], strict=False))
    assert labels["Frozen HE TP TS1"] == "tumor" and labels["Frozen HE NT BS2"] == "normal"
    assert labels["FFPE HE TP DX1"] == "tumor"
    assert (tcga.counts["tumor"], tcga.counts["normal"], tcga.counts["no_tissue_type"]) == (18, 8, 8)
    assert set(tcga.skipped["patient_id"]) == {"TCGA-AC-A6IX", "TCGA-BH-A18V", "TCGA-BH-A1ES", "TCGA-BH-A1FE",
                                               "TCGA-E2-A15A", "TCGA-E2-A15E", "TCGA-E2-A15K"}


def test_several_collections_make_one_manifest(index: pd.DataFrame) -> None:
    """E.g. one external lung cohort of CPTAC-LUAD and CPTAC-LSCC: rows of both, each with its collection."""
    res = build_manifest(index, collections=["cptac_luad", "cptac_brca"], slide_dir=None)
    assert (res.counts["series"], res.counts["tumor"], res.counts["normal"]) == (661, 282, 2)
    assert res.manifest.groupby("collection_id").size().to_dict() == {"cptac_brca": 276, "cptac_luad": 8}
    assert set(res.skipped["collection_id"]) == {"cptac_brca"} and res.warning is None


@pytest.mark.parametrize(("description", "structured", "label"), [
    ("HE", "Neoplasm, Primary", "tumor"),
    ("HE tumor_tissue", "Normal", "normal"),  # the structured type wins
    ("HE tumor", "Neoplasm, Metastatic", "other_tissue_type"),
    ("HE normal_tissue", None, "normal"),
    ("HE tumor normal", None, "other_tissue_type"),
    ("HE  Groin", None, "no_tissue_type"),
])
def test_tissue_label(description: str, structured: str | None, label: str) -> None:
    assert tissue_label(description, structured)[0] == label


def _series(root: Path, collection: str, patient: str, study: str, uid: str, copy) -> Path:
    """A downloaded series directory as `idc download` lays it out, its instance the real DICOM test slide (a copy
    with bytes of its own: two series are two scans)."""
    d = root / collection / patient / study / f"SM_{uid}"
    d.mkdir(parents=True)
    copy(DICOM, d / "0a1b2c3d-instance.dcm")
    return d


def test_downloaded_series_ingest_through_openslide(tmp_path: Path, index: pd.DataFrame, caplog,
                                                    distinct_copy) -> None:
    rows = index[index["collection_id"] == "cptac_luad"]
    tumour = rows[rows["SeriesDescription"] == "HE tumor"].iloc[0]
    normal = rows[rows["SeriesDescription"] == "HE normal"].iloc[0]
    slides = tmp_path / "slides"
    for r in (tumour, normal):
        _series(slides, "cptac_luad", r["PatientID"], r["StudyInstanceUID"], r["SeriesInstanceUID"], distinct_copy)
    (slides / "cptac_luad" / "stray").mkdir()  # no UID in its name: not a series
    assert set(series_dirs(slides)) == {tumour["SeriesInstanceUID"], normal["SeriesInstanceUID"]}

    out = tmp_path / "manifest.csv"
    result = CliRunner().invoke(_app(), ["idc-manifest", "--collection", "cptac_luad", "--index", str(INDEX),
                                         "--slide-dir", str(slides), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "8 series → 1 tumour + 1 normal" in result.output and "6 not downloaded" in result.output
    skipped = pd.read_csv(tmp_path / "manifest.skipped.csv")
    assert skipped["kind"].value_counts().to_dict() == {"not_downloaded": 6}

    cohort = CohortConfig(kind="cptac", source_dir=tmp_path, slide_dir=slides, slide_sheet=out, role="external")
    ingest_cohort("idc", cohort, IngestConfig(progress=False), out_dir=tmp_path / "out")
    assert "all 2 slides are" not in caplog.text
    got = pd.read_csv(tmp_path / "out" / "slides.csv")
    assert sorted(got["label"]) == [0, 1]
    assert got["path"].str.endswith("0a1b2c3d-instance.dcm").all()  # the series directory → its .dcm
    import openslide

    with openslide.OpenSlide(got["path"].iloc[0]) as slide:  # what tiling opens: the series, its µm/px read
        assert slide.properties["openslide.vendor"] == "dicom" and slide.properties["openslide.mpp-x"] == "2.004"


def test_a_one_class_cohort_is_said_at_ingest(tmp_path: Path, index: pd.DataFrame, caplog) -> None:
    res = build_manifest(index, collections=["cptac_brca"], slide_dir=None)
    res.manifest.to_csv(tmp_path / "m.csv", index=False)
    cohort = CohortConfig(kind="cptac", source_dir=tmp_path, slide_dir=tmp_path, slide_sheet=tmp_path / "m.csv")
    ingest_cohort("cptac_brca", cohort, IngestConfig(require_files=False, progress=False), out_dir=tmp_path / "out")
    assert "cohort cptac_brca: all 276 slides are tumour: tumour vs normal cannot be trained" in caplog.text


def test_series_directory_without_dicom_is_a_recorded_failure(tmp_path: Path) -> None:
    slides = tmp_path / "slides"
    (slides / "SM_1.2.3.4").mkdir(parents=True)
    (tmp_path / "m.csv").write_text("slide_id,file_name,patient_id,label\nS1,SM_1.2.3.4,P1,tumor\n"
                                    "S2,SM_1.2.3.5,P1,normal\n")
    os.makedirs(slides / "SM_1.2.3.5")
    os.symlink(DICOM, slides / "SM_1.2.3.5" / "x.dcm")
    cohort = CohortConfig(kind="cptac", source_dir=tmp_path, slide_dir=slides, slide_sheet=tmp_path / "m.csv")
    res = ingest_cohort("idc", cohort, IngestConfig(progress=False), out_dir=tmp_path / "out")
    bad = res.failures[res.failures["kind"] == "not_a_slide"]
    assert len(bad) == 1 and "a directory without DICOM (.dcm) files" in bad["reason"].iloc[0]


def test_errors_name_the_fix(tmp_path: Path, index: pd.DataFrame) -> None:
    with pytest.raises(IngestError, match=r"no slide microscopy series of collection 'cptac_bca'.*cptac_brca"):
        build_manifest(index, collections=["cptac_bca"], slide_dir=None)
    (tmp_path / "i.csv").write_text("collection_id,PatientID\nx,y\n")
    with pytest.raises(IngestError, match=r"lacks column\(s\) \['SeriesInstanceUID', 'SeriesDescription'\]"):
        read_index(tmp_path / "i.csv")
    only = index[(index["collection_id"] == "cptac_brca") & (index["SeriesDescription"] == "HE")]
    with pytest.raises(IngestError, match="none of cptac_brca's 377 series has a tissue type"):
        build_manifest(only, collections=["cptac_brca"], slide_dir=None)


def _app():
    import typer

    from histcode.cohort.commands import register

    app = typer.Typer()
    register(app)
    return app


def test_external_evaluation_of_a_tumour_only_cohort() -> None:
    """What `make eval-cptac` reports on CPTAC-BRCA from IDC (tumour slides only): no AUC, accuracy = recall."""
    from histcode.evaluation.champion_external import external_metrics
    from histcode.evaluation.result_lines import external_line

    preds = pd.DataFrame({"slide_id": list("abcdef"), "patient_id": list("abcdef"), "label": [1] * 6,
                          "prob_tumor": [0.9, 0.8, 0.7, 0.2, 0.95, 0.6]})
    m, _ = external_metrics(preds, 0.5, n_boot=50, seed=0, n_bins=10)
    assert m["accuracy"] == pytest.approx(5 / 6) and pd.isna(m["auc"]) and m["n_boot_auc"] == 0
    assert m["sensitivity"] == pytest.approx(5 / 6) and "specificity" not in m
    line = external_line("cptac_brca", {**m, "threshold_source": "registry", "model": "m"})
    assert "AUC n/a (only tumour slides: accuracy is their recall), accuracy 0.833" in line
    assert "sensitivity 0.833 at threshold 0.5" in line
    seen = external_line("cptac_brca", {**m, "threshold_source": "registry", "model": "m", "n_seen_in_training": 2.0,
                                        "training_cohort": "tcga_brca"})
    assert seen.startswith("cptac_brca: 6 slides (2 more left out: seen in training cohort tcga_brca), AUC n/a")
    both = preds.assign(label=[1, 1, 1, 0, 0, 0])  # P 0.9 0.8 0.7 | 0.2 0.95 0.6 at threshold 0.5
    m2, _ = external_metrics(both, 0.5, n_boot=0, seed=0, n_bins=10)
    assert (m2["sensitivity"], m2["specificity"]) == (1.0, pytest.approx(1 / 3))


def test_parquet_index_reads_the_sm_rows_it_needs(tmp_path: Path, index: pd.DataFrame) -> None:
    """The idc_index.parquet that idc-index installs: only SM rows and the used columns are read."""
    other = index.head(3).assign(Modality="CT", collection_id="cptac_brca", SeriesDescription="HE tumor")
    index.assign(Extra="x").pipe(lambda d: pd.concat([d, other])).to_parquet(tmp_path / "idc_index.parquet")
    got = read_index(tmp_path / "idc_index.parquet")
    assert "Extra" not in got.columns and (got["Modality"] == "SM").all() and len(got) == len(index)
    res = build_manifest(got, collections=["cptac_brca"], slide_dir=None)
    assert (res.counts["tumor"], res.counts["normal"]) == (276, 0)
