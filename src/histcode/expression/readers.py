"""Readers for GDC RNA-seq quantifications: STAR augmented gene counts and legacy HTSeq FPKM-UQ.

Both give one value per Ensembl gene. Ids lose their version (``ENSG00000141510.18`` →
``ENSG00000141510``) so releases compare; pseudo-autosomal Y copies keep a ``_PAR_Y`` suffix so they stay
distinct rows (their names duplicate the X copy; ``histcode.expression.genes`` resolves names). Every
problem raises ``ExpressionFileError`` naming the file, the line and the fix.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd

from histcode.cohort.files import STAR_COLUMNS
from histcode.errors import HistcodeError

ENSG_RE = re.compile(r"^(?P<id>ENSG\d{11})(?:\.\d+)?(?P<par>_PAR_Y)?$")
PAR_SUFFIX = "_PAR_Y"
STAR_SUMMARY_PREFIX = "N_"
HTSEQ_SPECIAL_PREFIX = "__"
VALUE_COLUMNS = STAR_COLUMNS[3:]


class ExpressionFileError(HistcodeError, ValueError):
    """An RNA-seq file is malformed or holds values that cannot be used (NaN, negative, unknown ids)."""


def strip_version(gene_id: str) -> str:
    """``ENSG00000141510.18`` → ``ENSG00000141510``; ``ENSG00000002586.20_PAR_Y`` → ``ENSG00000002586_PAR_Y``."""
    m = ENSG_RE.match(gene_id)
    if m is None:
        raise ValueError(f"{gene_id!r} is not an Ensembl gene id (ENSG + 11 digits [+ .version] [+ _PAR_Y])")
    return m.group("id") + (m.group("par") or "")


def _lines(rows: pd.Index, offset: int, limit: int = 5) -> str:
    shown = ", ".join(str(int(r) + offset) for r in list(rows)[:limit])
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def _finish(path: Path, ids: pd.Series, names: pd.Series, values: pd.Series, offset: int) -> pd.DataFrame:
    """Check ids and values, strip versions; ``offset`` turns row positions into file line numbers."""
    ids = ids.astype("string[pyarrow]")  # vectorised (Arrow) string kernels: ~60k ids per file
    bad_id = ~ids.str.fullmatch(ENSG_RE.pattern).fillna(False).astype(bool)
    if bad_id.any():
        first = ids[bad_id].iloc[0]
        raise ExpressionFileError(
            f"{path}: unknown gene id(s) {first!r} at line(s) {_lines(ids.index[bad_id], offset)}; expected "
            "Ensembl ids like ENSG00000141510.18 (is this a GDC gene-level quantification file?)")
    nums = values if pd.api.types.is_float_dtype(values) else pd.to_numeric(values, errors="coerce")
    nan = nums.isna()
    if nan.any():
        raise ExpressionFileError(
            f"{path}: missing or non-numeric value(s) {values[nan].iloc[0]!r} at line(s) "
            f"{_lines(values.index[nan], offset)}; re-download the file (it may be truncated)")
    neg = nums < 0
    if neg.any():
        raise ExpressionFileError(
            f"{path}: negative expression value(s) {float(nums[neg].iloc[0])} at line(s) "
            f"{_lines(nums.index[neg], offset)}; FPKM-UQ/TPM/counts are never negative: the file is corrupt")
    par = ids.str.endswith(PAR_SUFFIX)
    stripped = ids.str.slice(0, 15).where(~par, ids.str.slice(0, 15) + PAR_SUFFIX).astype(object)
    dup = stripped.duplicated(keep=False)
    if dup.any():
        raise ExpressionFileError(
            f"{path}: gene id {stripped[dup].iloc[0]!r} appears more than once (line(s) "
            f"{_lines(stripped.index[dup], offset)}) after removing versions; the file mixes annotations")
    out = pd.DataFrame({"gene_name": names.to_numpy(), "value": nums.to_numpy(dtype=np.float64)},
                       index=pd.Index(stripped.to_numpy(), name="gene_id"))
    return out


def read_star(path: str | Path, *, value_column: str = "fpkm_uq_unstranded") -> pd.DataFrame:
    """A GDC ``*.rna_seq.augmented_star_gene_counts.tsv`` → DataFrame(index gene_id; gene_name, value).

    Skips the ``# gene-model:`` line and the four ``N_*`` summary rows.
    """
    path = Path(path)
    if value_column not in VALUE_COLUMNS:
        raise ExpressionFileError(f"expression.value_column {value_column!r} is not a STAR value column; "
                                  f"choose one of {list(VALUE_COLUMNS)}")
    try:
        with path.open() as fh:
            first = fh.readline()
        if not first.startswith("# gene-model:"):
            raise ExpressionFileError(f"{path}: line 1 must be the '# gene-model: ...' comment of a GDC STAR "
                                      f"counts file (got {first[:50]!r}); is this the right file?")
        header = pd.read_csv(path, sep="\t", skiprows=1, nrows=0).columns
        missing = [c for c in ("gene_id", "gene_name", value_column) if c not in header]
        if missing:
            raise ExpressionFileError(f"{path}: line 2 (header) lacks column(s) {missing}; expected the GDC STAR "
                                      f"header {' '.join(STAR_COLUMNS)}")
        # value columns parse as float in C (a bad cell becomes NaN or leaves the column as strings; both
        # are reported with their line below); all columns are read so a row with extra fields is an error
        text_cols = {"gene_id": "string[pyarrow]", "gene_name": str, "gene_type": str}
        df = pd.read_csv(path, sep="\t", skiprows=1, dtype=text_cols, na_values=[""], keep_default_na=False)
    except (OSError, UnicodeDecodeError) as exc:
        raise ExpressionFileError(f"{path}: cannot read STAR counts file ({exc})") from exc
    except pd.errors.ParserError as exc:
        raise ExpressionFileError(f"{path}: malformed STAR counts table ({exc}); every line needs "
                                  f"{len(STAR_COLUMNS)} tab-separated fields") from exc
    df = df[~df["gene_id"].str.startswith(STAR_SUMMARY_PREFIX)]
    if df.empty:
        raise ExpressionFileError(f"{path}: no gene rows after the N_* summary rows; the file is truncated")
    # row i of the frame is line i + 3 (comment line, header line, 0-based index)
    return _finish(path, df["gene_id"], df["gene_name"], df[value_column], 3)


def read_htseq_fpkm_uq(path: str | Path) -> pd.DataFrame:
    """A legacy GDC ``*.FPKM-UQ.txt.gz`` (two columns, no header) → DataFrame(index gene_id; gene_name, value).

    ``gene_name`` is missing (these files carry ids only); HTSeq ``__*`` special counters are skipped.
    """
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as fh:
            df = pd.read_csv(fh, sep="\t", header=None, dtype={0: str}, na_values=[""], keep_default_na=False)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise ExpressionFileError(f"{path}: cannot read HTSeq FPKM-UQ file ({exc}); it must be gzip text") from exc
    except pd.errors.ParserError as exc:
        raise ExpressionFileError(f"{path}: malformed HTSeq FPKM-UQ file ({exc}); expected two tab-separated "
                                  "columns: Ensembl id, value") from exc
    except pd.errors.EmptyDataError as exc:
        raise ExpressionFileError(f"{path}: the HTSeq FPKM-UQ file is empty") from exc
    if df.shape[1] != 2:
        raise ExpressionFileError(f"{path}: expected 2 tab-separated columns (Ensembl id, value), found "
                                  f"{df.shape[1]}; is this an FPKM-UQ file?")
    df = df[~df[0].str.startswith(HTSEQ_SPECIAL_PREFIX)]
    return _finish(path, df[0], pd.Series(pd.NA, index=df.index, dtype=object), df[1], 1)


def read_quantification(path: str | Path, fmt: str, *, value_column: str = "fpkm_uq_unstranded") -> pd.DataFrame:
    """Dispatch on the ``format`` column of ``rnaseq.csv`` (``star`` | ``htseq_fpkm_uq``)."""
    if fmt == "star":
        return read_star(path, value_column=value_column)
    if fmt == "htseq_fpkm_uq":
        return read_htseq_fpkm_uq(path)
    raise ExpressionFileError(f"{path}: unknown format {fmt!r}; rnaseq.csv 'format' must be star or htseq_fpkm_uq")
