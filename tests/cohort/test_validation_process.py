"""Tables validated in the separate process that ``histcode ingest`` / ``de_targets`` open (so great-expectations
loads on another core) give the entries and errors they give in-process."""

from __future__ import annotations

import pandas as pd
import pytest

from histcode.cohort import validation
from histcode.cohort.suites import RNASEQ_COLUMNS, rnaseq_manifest
from histcode.cohort.validation import ValidationError, check_table, validation_process


def _table() -> pd.DataFrame:
    rows = [["TCGA-ZZ-0001-01A", "TCGA-ZZ-0001", "zz", "Primary Tumor", "a.tsv", "star", "f1"],
            ["TCGA-ZZ-0001-11A", "TCGA-ZZ-0001", "zz", "Solid Tissue Normal", "b.tsv", "star", "f1"]]
    df = pd.DataFrame(rows, columns=list(RNASEQ_COLUMNS))
    df.index = df.index + 2  # file line numbers
    return df


def _check(df: pd.DataFrame) -> tuple[str, list]:
    report: list = []
    with pytest.raises(ValidationError) as err:
        check_table(df, rnaseq_manifest(check_files=False, tcga=True), source="rnaseq.csv", report=report)
    return str(err.value), report


def test_the_validation_process_gives_the_in_process_entries_and_errors() -> None:
    here = _check(_table())
    with validation_process():
        assert validation._PROCESS is not None
        there = _check(_table())
        ok: list = []
        check_table(_table().drop_duplicates("file_id").head(1), rnaseq_manifest(check_files=False, tcga=True),
                    source="rnaseq.csv", report=ok)
    assert validation._PROCESS is None  # closed with the block
    assert there == here and "file_id" in here[0] and "line 3" in here[0]  # the duplicate File ID, named
    assert ok[0]["success"] and ok[0]["n_rows"] == 1


def test_a_dead_validation_process_falls_back_to_this_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The second process only saves time: if it dies, the table is validated here, with the same result."""
    here = _check(_table())
    with validation_process():
        assert validation._PROCESS is not None
        validation._PROCESS.submit(__import__("os")._exit, 1)  # kill it
        assert _check(_table()) == here
