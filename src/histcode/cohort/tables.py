"""Read sample sheets and manifests as all-string tables indexed by file line number.

Why line numbers: every error and failure record points the user at ``line N`` of the file they edit.
Empty cells become missing values so "required" checks catch them; surrounding spaces are stripped.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from histcode.errors import HistcodeError


class IngestError(HistcodeError, ValueError):
    """An input table or directory cannot be read at all (missing, unparsable, wrong delimiter)."""


def read_table(path: str | Path, *, sep: str, what: str) -> pd.DataFrame:
    """Read a delimited text table; index = line number in the file (header is line 1)."""
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"{path}: {what} not found; check the cohort's path in params.yaml (base.cohorts)")
    try:
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, comment=None, quoting=csv.QUOTE_MINIMAL)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise IngestError(f"{path}: cannot parse the {what} ({exc}); it must be a "
                          f"{'tab' if sep == chr(9) else 'comma'}-separated text table with one header line") from exc
    except pd.errors.EmptyDataError as exc:
        raise IngestError(f"{path}: the {what} is empty; it needs a header line and one row per file") from exc
    df.columns = [str(c).strip() for c in df.columns]
    df = df.apply(lambda s: s.str.strip()).replace("", pd.NA)
    df.index = pd.RangeIndex(2, len(df) + 2, name="line")
    return df


def table_for_output(df: pd.DataFrame) -> pd.DataFrame:
    """An output table re-indexed by the line each row will occupy in the written CSV."""
    out = df.reset_index(drop=True)
    out.index = pd.RangeIndex(2, len(out) + 2, name="line")
    return out
