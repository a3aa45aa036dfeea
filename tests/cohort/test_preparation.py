"""Tissue preparation from TCGA slide barcodes: frozen sections vs FFPE diagnostic slides, the confound check
that flags a tumour-vs-normal cohort whose preparation gives the label away, and the ``preparation`` filter.
The real TCGA-LUSC sample sheet (1,100 frozen TS/BS slides) is the reference; DX rows are added as the GDC
names them (sample vial Z, portion 00)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from histcode.cohort.barcodes import preparation_of
from histcode.cohort.config import IngestConfig
from histcode.cohort.ingest import ingest_cohort
from histcode.cohort.preparation import summarise
from histcode.cohort.tables import IngestError
from histcode.config import CohortConfig
from histcode.summary import summary_lines

META = IngestConfig(require_files=False, progress=False)  # the sheet's files are not on disk
PREP_KEYS = ("slides_frozen", "slides_ffpe", "slides_preparation_unknown", "preparation_confounded")


def prep(res) -> dict[str, float]:
    return {k: res.confounds[k] for k in PREP_KEYS}


def prep_warnings(res) -> list[str]:
    return [w for w in res.confound_warnings if "tissue preparation" in w]


def gdc(sheet: Path, **kw: object) -> CohortConfig:
    return CohortConfig(kind="gdc", source_dir=sheet.parent, slide_dir=sheet.parent / "slides", slide_sheet=sheet, **kw)


@pytest.mark.parametrize(
    ("name", "prep"),
    [
        ("TCGA-51-4079-11A-01-TS1.8a22d88d-afcc-4a61-b267-780d5d738f36.svs", "frozen"),  # real LUSC sheet rows
        ("TCGA-51-4079-11A-01-BS1.d7448610-4a7c-4dc6-8775-f17de852a68c.svs", "frozen"),
        ("TCGA-43-A474-01A-01-TS1.5F9E04AE-51EE-49B5-A3A9-C5DA0391FBC1", "frozen"),  # HistCode's own slide list
        ("TCGA-05-4245-01A-02-MS1.abc.svs", "frozen"),
        ("TCGA-A1-A0SK-01Z-00-DX1.A44D70FA-4D96-43F4-9DD7-A61535786297.svs", "ffpe"),  # a TCGA-BRCA diagnostic slide
        ("TCGA-A1-A0SK-01Z-00-DX2.x.svs", "ffpe"),
        ("TCGA-A1-A0SK-01A.svs", None),  # a barcode without a slide section
        ("01BR001-0b4a2b33-53ca-41b8-8f2b-8b6e1b1a7c1f", None),  # a CPTAC slide id
    ],
)
def test_preparation_of_slide_barcodes(name: str, prep: str | None) -> None:
    assert preparation_of(name) == prep


def _dx_rows(sheet: pd.DataFrame, n: int) -> pd.DataFrame:
    """Diagnostic (FFPE) slides of the first ``n`` tumour patients, named as the GDC names them."""
    tumour = sheet[sheet["Sample Type"] == "Primary Tumor"].drop_duplicates("Case ID").head(n)
    return pd.DataFrame(
        {
            "File ID": [f"dx-{i:04d}" for i in range(len(tumour))],
            "File Name": [
                f"{c}-01Z-00-DX1.{i:08d}-0000-4000-8000-000000000000.svs" for i, c in enumerate(tumour["Case ID"])
            ],
            "Data Category": "Biospecimen",
            "Data Type": "Slide Image",
            "Project ID": "TCGA-LUSC",
            "Case ID": tumour["Case ID"].to_numpy(),
            "Sample ID": [f"{c}-01Z" for c in tumour["Case ID"]],
            "Sample Type": "Primary Tumor",
        }
    )


@pytest.fixture
def mixed_sheet(tmp_path: Path, lusc_sheet: Path) -> Path:
    """The real LUSC sheet plus 40 DX tumour slides: a project's every "Slide Image", as the portal lists them."""
    real = pd.read_csv(lusc_sheet, sep="\t")
    path = tmp_path / "mixed.tsv"
    pd.concat([real, _dx_rows(real, 40)]).to_csv(path, sep="\t", index=False)
    return path


def test_real_lusc_sheet_is_frozen_and_not_confounded(tmp_path: Path, lusc_sheet: Path) -> None:
    res = ingest_cohort("lusc", gdc(lusc_sheet), META, out_dir=tmp_path / "out")
    assert prep(res) == {
        "slides_frozen": 1100,
        "slides_ffpe": 0,
        "slides_preparation_unknown": 0,
        "preparation_confounded": 0,
    }
    assert not prep_warnings(res)


def test_dx_tumour_slides_beside_frozen_normals_are_flagged(tmp_path: Path, mixed_sheet: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="histcode.cohort.ingest"):
        res = ingest_cohort("lusc", gdc(mixed_sheet), META, out_dir=tmp_path / "out")
    assert res.counts["slides"] == 1140
    assert prep(res) == {
        "slides_frozen": 1100,
        "slides_ffpe": 40,
        "slides_preparation_unknown": 0,
        "preparation_confounded": 1,
    }
    msg = prep_warnings(res)[0]
    assert msg in caplog.text
    assert "FFPE (DX): 40 tumour; frozen (TS/BS/MS): 753 tumour, 347 normal" in msg
    assert "set base.cohorts.lusc.preparation: frozen" in msg and "synthetic" not in msg
    # what it checks is the label: the manifests and their validation report stay as they were
    report = json.loads((tmp_path / "out" / "validation.json").read_text())
    assert "preparation_confounded" not in report["counts"]


def test_frozen_keeps_the_sections_and_records_each_dx_slide(tmp_path: Path, mixed_sheet: Path) -> None:
    res = ingest_cohort("lusc", gdc(mixed_sheet, preparation="frozen"), META, out_dir=tmp_path / "out")
    slides = pd.read_csv(tmp_path / "out" / "slides.csv")
    assert len(slides) == 1100 and not slides["slide_id"].str.contains("-DX1.").any()
    fails = pd.read_csv(tmp_path / "out" / "failures.csv")
    assert len(fails) == 40 and set(fails["kind"]) == {"excluded_preparation"}
    assert fails["row"].tolist() == list(range(1102, 1142))  # sheet line numbers of the DX rows
    assert fails["reason"].iloc[0] == (
        "base.cohorts.lusc.preparation is 'frozen' and it is a FFPE (DX) slide; set it to 'all' to keep every slide"
    )
    assert res.confounds["preparation_confounded"] == 0 and not prep_warnings(res)
    assert res.counts["failures/slides/excluded_preparation"] == 40


def test_ffpe_keeps_diagnostic_slides_and_names_slides_without_a_section(tmp_path: Path, mixed_sheet: Path) -> None:
    sheet = pd.read_csv(mixed_sheet, sep="\t")
    bare = sheet.iloc[[0]].assign(**{"File ID": "bare-1", "File Name": "TCGA-51-4079-11A.svs"})
    path = tmp_path / "with_bare.tsv"
    pd.concat([sheet, bare]).to_csv(path, sep="\t", index=False)
    res = ingest_cohort("lusc", gdc(path, preparation="ffpe"), META, out_dir=tmp_path / "out")
    assert res.counts["slides"] == 40 and res.counts["slides_tumour"] == 40
    fails = pd.read_csv(tmp_path / "out" / "failures.csv").set_index("file")
    assert "holds no TCGA slide barcode section" in fails.loc["TCGA-51-4079-11A.svs", "reason"]
    assert fails["kind"].value_counts().to_dict() == {"excluded_preparation": 1101}


def test_cptac_cohort_cannot_filter_by_preparation(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("slide_id,file_name,patient_id,label\ns1,s1.svs,p1,tumor\n")
    cohort = CohortConfig(
        kind="cptac", source_dir=tmp_path, slide_dir=tmp_path, slide_sheet=manifest, preparation="frozen"
    )
    with pytest.raises(IngestError, match=r"^base.cohorts.cptac.preparation: 'frozen' needs TCGA slide barcodes"):
        ingest_cohort("cptac", cohort, META, out_dir=tmp_path / "out")


def test_the_generators_naming_is_confounded_with_no_class_in_both() -> None:
    """The synthetic cohort names tumour slides DX1 and normals TS1 (as a DX + TS download would be): flagged,
    with the fix that applies when no preparation holds both classes, and said to be names only."""
    slides = pd.DataFrame(
        {"slide_id": ["TCGA-GM-1CIR-01Z-00-DX1.c9ef", "TCGA-GM-1CIR-11A-01-TS1.b5e5"], "label": [1, 0]}
    )
    counts, msg = summarise(slides, cohort="tcga_synth", synthetic=True)
    assert counts["preparation_confounded"] == 1 and msg is not None
    assert "no preparation holds both classes here" in msg and "only the names differ" in msg
    _, none = summarise(slides.iloc[[0]], cohort="tcga_synth", synthetic=True)  # one class: nothing to confound
    assert none is None


def test_summary_names_a_confounded_cohort(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    (reports / "metrics" / "ingest").mkdir(parents=True)
    base = {"slides": 48, "slides_tumour": 24, "slides_normal": 24, "patients": 24, "failures": 0}
    (reports / "metrics" / "ingest" / "a.json").write_text(
        json.dumps({**base, "slides_ffpe": 24, "slides_frozen": 24, "preparation_confounded": 1})
    )
    (reports / "metrics" / "ingest" / "b.json").write_text(
        json.dumps({**base, "slides_ffpe": 0, "slides_frozen": 48, "preparation_confounded": 0})
    )
    (reports / "metrics" / "ingest" / "old.json").write_text(json.dumps(base))  # before round 21: no keys
    lines = summary_lines(reports, tmp_path / "figures")
    flagged = [line for line in lines if line.startswith("slides ")]
    assert flagged == [
        "slides a: tumour vs normal confounded with tissue preparation (24 FFPE (DX), 24 frozen "
        "(TS/BS/MS) slides): see base.cohorts.a.preparation in the README"
    ]


def test_barcode_cohort_keeps_frozen_sections_from_file_names(tmp_path: Path, link_slide) -> None:
    """A cohort of slide files without a sheet (kind ``barcode``): the same filter, the real slide files checked."""
    d = tmp_path / "slides"
    for name in ("TCGA-AB-0001-01A-01-TS1.u1.svs", "TCGA-AB-0001-01Z-00-DX1.u2.svs", "TCGA-AB-0001-11A-01-BS1.u3.svs"):
        link_slide(d / name)
    cohort = CohortConfig(kind="barcode", source_dir=tmp_path, slide_dir=d, preparation="frozen")
    res = ingest_cohort("bc", cohort, IngestConfig(progress=False), out_dir=tmp_path / "out")
    assert sorted(res.slides["slide_id"]) == ["TCGA-AB-0001-01A-01-TS1.u1", "TCGA-AB-0001-11A-01-BS1.u3"]
    dx = [["TCGA-AB-0001-01Z-00-DX1.u2.svs", "excluded_preparation"]]
    assert res.failures[["file", "kind"]].values.tolist() == dx
    assert prep(res) == {"slides_frozen": 2, "slides_ffpe": 0, "slides_preparation_unknown": 0,
                         "preparation_confounded": 0}
