"""Issue 16 items 7 and 11 for ingest: barcode vs Sample Type, and an empty cohort fails loudly."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from histcode.cohort.config import IngestConfig
from histcode.cohort.ingest import ingest_cohort
from histcode.config import CohortConfig
from histcode.preflight import EmptyCohortError


def test_normal_barcode_labelled_tumour_is_refused_and_recorded(tmp_path: Path, gdc_sheet, sheet_row,
                                                                 link_slide) -> None:
    rows = [sheet_row("AA-0001", "01"), sheet_row("AA-0001", "11", sample_type="Primary Tumor")]
    for r in rows:
        link_slide(tmp_path / "slides" / r[1])
    cohort = CohortConfig(kind="gdc", source_dir=tmp_path, slide_dir=tmp_path / "slides", slide_sheet=gdc_sheet(rows))
    res = ingest_cohort("c", cohort, IngestConfig(progress=False), out_dir=tmp_path / "out")
    assert res.slides["slide_id"].tolist() == [Path(rows[0][1]).stem]  # the -11A row never trains as tumour
    fails = pd.read_csv(tmp_path / "out" / "failures.csv")
    (row,) = fails[fails["kind"] == "sample_type_mismatch"].itertuples()
    assert row.row == 3 and row.file == rows[1][1]
    assert "barcode TCGA-AA-0001-11A (code 11) is 'Solid Tissue Normal'" in row.reason
    assert "Sample Type says 'Primary Tumor'" in row.reason


def test_empty_cohort_stops_at_ingest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gdc_sheet,
                                      sheet_row) -> None:
    from histcode.cohort.stage import run_ingest

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)
    sheet = gdc_sheet([sheet_row("AA-0001", "01")])  # its slide file was never downloaded
    params = {"base": {"cohorts": {"e": {"kind": "gdc", "source_dir": ".", "slide_dir": "slides",
                                         "slide_sheet": str(sheet)}}},
              "ingest": {"progress": False}}
    with pytest.raises(EmptyCohortError, match=r"no usable slide in cohort 'e' \(1 input row\(s\), 1 excluded"):
        run_ingest("e", params)
    assert Path("data/manifests/e/failures.csv").is_file()  # the reasons are still written
