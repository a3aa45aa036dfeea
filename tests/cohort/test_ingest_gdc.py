"""Ingest of GDC slide sample sheets: the real LUSC sheet, valid slides, and every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from histcode.cohort.config import IngestConfig
from histcode.cohort.ingest import ingest_cohort
from histcode.cohort.tables import IngestError
from histcode.cohort.validation import ValidationError
from histcode.config import CohortConfig

QUIET = IngestConfig(progress=False)


def gdc(sheet: Path, slide_dir: Path, **kw: object) -> CohortConfig:
    return CohortConfig(kind="gdc", source_dir=slide_dir.parent, slide_dir=slide_dir, slide_sheet=sheet, **kw)


def test_real_lusc_sheet_counts_and_missing_files(tmp_path: Path, lusc_sheet: Path) -> None:
    res = ingest_cohort("lusc", gdc(lusc_sheet, tmp_path / "slides"), QUIET, out_dir=tmp_path / "out")
    assert (res.counts["input_tumour"], res.counts["input_normal"]) == (753, 347)
    assert res.counts["slides"] == 0
    fails = pd.read_csv(tmp_path / "out" / "failures.csv")
    assert len(fails) == 1100 and set(fails["kind"]) == {"missing_file"}
    assert fails["row"].tolist() == list(range(2, 1102))  # sheet line numbers
    assert list(pd.read_csv(tmp_path / "out" / "slides.csv").columns) == [
        "slide_id", "path", "patient_id", "cohort", "sample_type", "label", "mpp"]


def test_real_lusc_sheet_metadata_only(tmp_path: Path, lusc_sheet: Path) -> None:
    cfg = IngestConfig(require_files=False, progress=False)
    res = ingest_cohort("lusc", gdc(lusc_sheet, tmp_path / "slides"), cfg, out_dir=tmp_path / "out")
    slides = pd.read_csv(tmp_path / "out" / "slides.csv")
    assert slides["label"].value_counts().to_dict() == {1: 753, 0: 347}
    assert slides["patient_id"].nunique() == res.counts["patients"]
    first = slides.iloc[0]
    assert first["slide_id"] == "TCGA-51-4079-11A-01-TS1.8a22d88d-afcc-4a61-b267-780d5d738f36"
    assert first["patient_id"] == "TCGA-51-4079" and first["label"] == 0
    assert slides["mpp"].isna().all()


def test_valid_missing_non_slide_and_metastatic(tmp_path: Path, gdc_sheet, sheet_row, link_slide) -> None:
    slide_dir = tmp_path / "slides"
    rows = [sheet_row("AA-0001", "01"), sheet_row("AA-0001", "11"), sheet_row("AA-0002", "01"),
            sheet_row("AA-0003", "01"), sheet_row("AA-0004", "06")]
    link_slide(slide_dir / rows[0][1])
    link_slide(slide_dir / rows[1][0] / rows[1][1])  # gdc-client layout <File ID>/<File Name>
    (slide_dir / rows[3][1]).write_text("this is not a slide\n")  # rows[2] is missing
    link_slide(slide_dir / rows[4][1])
    sheet = gdc_sheet(rows)
    res = ingest_cohort("c", gdc(sheet, slide_dir, default_mpp=0.5), QUIET, out_dir=tmp_path / "out")

    slides = pd.read_csv(tmp_path / "out" / "slides.csv")
    assert slides["slide_id"].tolist() == [Path(rows[0][1]).stem, Path(rows[1][1]).stem]
    assert slides["label"].tolist() == [1, 0]
    assert slides["path"].tolist()[1] == str(slide_dir / rows[1][0] / rows[1][1])
    assert slides["mpp"].tolist() == [0.5, 0.5]
    assert set(slides["cohort"]) == {"c"}
    fails = pd.read_csv(tmp_path / "out" / "failures.csv").set_index("row")
    assert fails.loc[4, "kind"] == "missing_file"
    assert fails.loc[5, "kind"] == "not_a_slide" and "OpenSlide detects no format" in fails.loc[5, "reason"]
    assert fails.loc[6, "kind"] == "excluded_sample_type" and "'Metastatic'" in fails.loc[6, "reason"]
    assert res.counts["failures/slides/missing_file"] == 1
    assert res.counts["input_sample_type/metastatic"] == 1
    assert res.report["success"] is True


def test_missing_column_is_a_readable_error(tmp_path: Path, gdc_sheet, sheet_row) -> None:
    header = [c for c in ["File ID", "File Name", "Data Category", "Data Type", "Project ID", "Case ID",
                          "Sample ID", "Sample Type"] if c != "Sample Type"]
    sheet = gdc_sheet([sheet_row("AA-0001", "01")[:-1]], header=header)
    with pytest.raises(ValidationError) as err:
        ingest_cohort("c", gdc(sheet, tmp_path), QUIET, out_dir=tmp_path / "out")
    msg = str(err.value)
    assert str(sheet) in msg
    assert "expect_column_to_exist(Sample Type): required column 'Sample Type' is missing" in msg
    assert "Traceback" not in msg
    report = pd.read_json(tmp_path / "out" / "validation.json", typ="series")
    assert report["success"] is False


def test_duplicate_slide_rows_are_named(tmp_path: Path, gdc_sheet, sheet_row) -> None:
    rows = [sheet_row("AA-0001", "01"), sheet_row("AA-0002", "01"), sheet_row("AA-0001", "01")]
    rows[2][0] = "another-file-id"
    sheet = gdc_sheet(rows)
    with pytest.raises(ValidationError, match=r"expect_column_values_to_be_unique\(File Name\).*in 2 row\(s\): "
                                              r"line 2: 'TCGA-AA-0001-01A.*line 4: 'TCGA-AA-0001-01A"):
        ingest_cohort("c", gdc(sheet, tmp_path), QUIET, out_dir=tmp_path / "out")


def test_duplicate_slide_id_in_output_is_caught(tmp_path: Path, gdc_sheet, sheet_row) -> None:
    rows = [sheet_row("AA-0001", "01"), sheet_row("AA-0002", "01")]
    rows[1][1] = Path(rows[0][1]).stem + ".tiff"  # same slide id, different file
    sheet = gdc_sheet(rows)
    cfg = IngestConfig(require_files=False, progress=False)
    with pytest.raises(ValidationError) as err:
        ingest_cohort("c", gdc(sheet, tmp_path), cfg, out_dir=tmp_path / "out")
    assert "slides.csv" in str(err.value)
    assert "expect_column_values_to_be_unique(slide_id)" in str(err.value)
    assert "line 2" in str(err.value) and "line 3" in str(err.value)


def test_unknown_sample_type_is_a_readable_error(tmp_path: Path, gdc_sheet, sheet_row) -> None:
    rows = [sheet_row("AA-0001", "01"), sheet_row("AA-0002", "01", sample_type="Primary Tumour")]
    with pytest.raises(ValidationError, match=r"Sample Type.*line 3: 'Primary Tumour'.*Fix: use GDC sample type"):
        ingest_cohort("c", gdc(gdc_sheet(rows), tmp_path), QUIET, out_dir=tmp_path / "out")


def test_bad_case_barcode_is_named(tmp_path: Path, gdc_sheet, sheet_row) -> None:
    rows = [sheet_row("AA-0001", "01")]
    rows[0][5] = "PATIENT-1"
    with pytest.raises(ValidationError, match=r"expect_column_values_to_match_regex\(Case ID\).*line 2: 'PATIENT-1'"):
        ingest_cohort("c", gdc(gdc_sheet(rows), tmp_path), QUIET, out_dir=tmp_path / "out")


def test_unreadable_or_absent_sheet(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="GDC slide sample sheet not found"):
        ingest_cohort("c", gdc(tmp_path / "nope.tsv", tmp_path), QUIET, out_dir=tmp_path / "out")
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    with pytest.raises(IngestError, match="is empty"):
        ingest_cohort("c", gdc(empty, tmp_path), QUIET, out_dir=tmp_path / "out")


def test_comma_separated_sheet_reports_missing_columns(tmp_path: Path) -> None:
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("File ID,File Name,Data Category,Data Type,Project ID,Case ID,Sample ID,Sample Type\n"
                     "f1,TCGA-AA-0001-01A-01-TS1.svs,Biospecimen,Slide Image,P,TCGA-AA-0001,TCGA-AA-0001-01A,"
                     "Primary Tumor\n")
    with pytest.raises(ValidationError, match=r"required column 'File ID' is missing.*tab-separated"):
        ingest_cohort("c", gdc(sheet, tmp_path), QUIET, out_dir=tmp_path / "out")
