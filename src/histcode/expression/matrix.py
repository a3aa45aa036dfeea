"""Many RNA-seq files (rows of ``rnaseq.csv``) → one genes × samples matrix.

Columns are keyed by ``file_id`` when the manifest has it (a sample may have several aliquot files),
else by ``sample_id``. Genes absent from some files are kept as NaN there (different GENCODE releases);
callers decide what to do with them and must report it.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from histcode.console import tqdm
from histcode.expression.readers import ExpressionFileError, read_quantification

log = logging.getLogger(__name__)


@dataclass
class ExpressionData:
    """``values``: genes × samples (float32, index gene_id); ``gene_names``: gene_id → name from the
    STAR files (most frequent name per id); ``failures``: samples that could not be read, with reason."""

    values: pd.DataFrame
    gene_names: pd.Series
    failures: pd.DataFrame


def sample_key(manifest: pd.DataFrame) -> str:
    """The manifest column that names matrix columns: ``file_id`` if present and filled, else ``sample_id``."""
    if "file_id" in manifest.columns and manifest["file_id"].notna().all():
        return "file_id"
    return "sample_id"


def _check_manifest(manifest: pd.DataFrame, source: str) -> str:
    missing = [c for c in ("sample_id", "path", "format") if c not in manifest.columns]
    if missing:
        raise ExpressionFileError(f"{source}: rnaseq manifest lacks column(s) {missing}; run `histcode ingest` "
                                  "to build it (columns sample_id, patient_id, cohort, sample_type, path, format)")
    key = sample_key(manifest)
    dup = manifest[key][manifest[key].duplicated()]
    if len(dup):
        raise ExpressionFileError(f"{source}: {key} {dup.iloc[0]!r} appears more than once; each file must be "
                                  "listed once")
    return key


def load_expression(manifest: pd.DataFrame, *, value_column: str = "fpkm_uq_unstranded", on_error: str = "raise",
                    progress: bool = False, source: str = "rnaseq.csv") -> ExpressionData:
    """Read every file of ``manifest``; ``on_error="record"`` records bad files and goes on."""
    if on_error not in ("raise", "record"):
        raise ValueError(f"on_error must be 'raise' or 'record', not {on_error!r}")
    key = _check_manifest(manifest, source)
    columns: dict[str, pd.Series] = {}
    annotations: dict[bytes, tuple[pd.Series, int]] = {}  # distinct id→name tables, with how many files had each
    failures = []
    for _, row in tqdm(manifest.iterrows(), total=len(manifest), desc="read RNA-seq", disable=not progress):
        try:
            table = read_quantification(Path(row["path"]), str(row["format"]), value_column=value_column)
        except ExpressionFileError as exc:
            if on_error == "raise":
                raise
            failures.append({"sample": row[key], "sample_id": row["sample_id"], "path": row["path"],
                             "reason": str(exc)})
            log.warning("skipping %s: %s", row[key], exc)
            continue
        columns[str(row[key])] = table["value"].astype(np.float32)
        named = table["gene_name"].dropna().astype(str)
        if len(named):
            sig = hashlib.sha1(pd.util.hash_pandas_object(named, index=True).to_numpy().tobytes()).digest()
            prev = annotations.get(sig)
            annotations[sig] = (named, prev[1] + 1 if prev else 1)
    values = pd.DataFrame(columns) if columns else pd.DataFrame(dtype=np.float32)
    values.index.name = "gene_id"
    values = values.sort_index()
    gene_names = _resolve_names(list(annotations.values()))
    fail_df = pd.DataFrame(failures, columns=["sample", "sample_id", "path", "reason"])
    return ExpressionData(values, gene_names.sort_index(), fail_df)


def _resolve_names(tables: list[tuple[pd.Series, int]]) -> pd.Series:
    """gene_id → name; where files disagree, the name most files give (ties: alphabetical). Deterministic."""
    if not tables:
        return pd.Series(dtype=object, name="gene_name", index=pd.Index([], name="gene_id"))
    if len(tables) == 1:
        out = tables[0][0].copy()
    else:
        votes: dict[str, Counter[str]] = {}
        for names, n in tables:
            for gid, name in names.items():
                votes.setdefault(str(gid), Counter())[name] += n
        out = pd.Series({g: min(c, key=lambda x: (-c[x], x)) for g, c in votes.items()}, dtype=object)
    out.name, out.index.name = "gene_name", "gene_id"
    return out


def read_expression_matrix(rnaseq_manifest: pd.DataFrame | str | Path, *,
                           value_column: str = "fpkm_uq_unstranded") -> pd.DataFrame:
    """genes × samples matrix (index gene_id without version) from ``rnaseq.csv`` or its DataFrame.

    Raises ``ExpressionFileError`` on the first unusable file (use ``load_expression`` with
    ``on_error="record"`` to skip bad files instead).
    """
    source = "rnaseq manifest"
    if not isinstance(rnaseq_manifest, pd.DataFrame):
        source = str(rnaseq_manifest)
        if not Path(rnaseq_manifest).is_file():
            raise ExpressionFileError(f"{source}: rnaseq manifest not found; run `histcode ingest --cohort ...`")
        rnaseq_manifest = pd.read_csv(rnaseq_manifest, dtype=str)
    return load_expression(rnaseq_manifest, value_column=value_column, source=source).values
