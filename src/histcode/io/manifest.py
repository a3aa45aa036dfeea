"""The cohort's slide manifest ``data/manifests/<cohort>/slides.csv`` (DESIGN §3), and the one parser of its
``mpp`` cells: every stage reads slides.csv here, so tiling, SSL, extraction and MIL see the same rows.

Rows keep the file's order (``sort=True`` sorts by slide_id); ids and paths are str and empty cells stay
``""``; relative paths are taken from the working directory (the project root, where DVC runs), failing that
from the manifest's folder. :func:`read_manifest` gives a DataFrame; :func:`read_manifest_rows` gives the
same rows as plain tuples without importing pandas (tiling's start-up, issue 18); both check the same way.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import pandas as pd

MANIFEST_COLUMNS = ("slide_id", "path")
LABELLED_COLUMNS = ("slide_id", "patient_id", "label")


def valid_mpp(value: Any) -> float | None:
    """A manifest ``mpp`` cell (or any resolution value) → positive finite float, or None when empty/invalid."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def _resolve(slides_csv: Path, p: str) -> str:
    path = Path(p)
    if path.is_absolute() or path.exists() or not (slides_csv.parent / path).exists():
        return str(path)
    return str(slides_csv.parent / path)


class ManifestRow(NamedTuple):
    """One slide of the manifest as tiling needs it (cells as written; ``mpp`` goes through valid_mpp)."""

    slide_id: str
    path: str
    mpp: str


def _check(columns: list[str], ids: list[str], required: tuple[str, ...], where: str) -> None:
    """Required columns, unique and file-name-safe slide ids: one rule for both readers."""
    missing = [c for c in required if c not in columns]
    if missing:
        raise ValueError(f"{where}: manifest lacks column(s) {missing}; columns: {columns}; expected the "
                         "slides.csv of ingest")
    seen: set[str] = set()
    dup = []
    for s in ids:
        if s in seen:
            dup.append(s)
        seen.add(s)
    if dup:
        raise ValueError(f"{where}: duplicate slide_id(s) {dup[:5]}; slide ids must be unique.")
    bad = [s for s in ids if not s or "/" in s or s.startswith(".")]
    if bad:
        raise ValueError(f"{where}: slide_id(s) {bad[:5]} cannot be file names (empty, '/' or leading '.').")


def _existing(manifest: str | Path) -> Path:
    csv_path = Path(manifest)
    if not csv_path.exists():
        raise FileNotFoundError(f"{csv_path}: slide manifest not found; run the ingest stage first.")
    return csv_path


def read_manifest_rows(manifest: str | Path, *, sort: bool = False) -> list[ManifestRow]:
    """``slide_id``, resolved ``path`` and ``mpp`` cell of every row, checked as :func:`read_manifest` checks
    them, read with the csv module (no pandas import)."""
    csv_path = _existing(manifest)
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        records = list(reader)
        columns = list(reader.fieldnames or [])
    _check(columns, [r["slide_id"] for r in records] if "slide_id" in columns else [], MANIFEST_COLUMNS,
           str(csv_path))
    rows = [ManifestRow(r["slide_id"], _resolve(csv_path, r["path"] or ""), r.get("mpp") or "") for r in records]
    return sorted(rows, key=lambda r: r.slide_id) if sort else rows


def read_manifest(
    manifest: str | Path | pd.DataFrame,
    *,
    columns: tuple[str, ...] = MANIFEST_COLUMNS,
    labelled: bool = False,
    sort: bool = False,
) -> pd.DataFrame:
    """The manifest with ``columns`` required, unique file-name-safe slide ids, paths resolved and an ``mpp``
    column (``""`` when the file has none). ``labelled``: also require ``patient_id``/``label``, refuse empty
    labels and return ``label`` as int. A DataFrame is checked the same way (its paths are kept as they are).
    """
    import pandas as pd

    required = tuple(dict.fromkeys((*columns, *(LABELLED_COLUMNS if labelled else ()))))
    if isinstance(manifest, pd.DataFrame):
        df, where, csv_path = manifest.copy(), "manifest", None
    else:
        csv_path = _existing(manifest)
        where = str(csv_path)
        df = pd.read_csv(csv_path, dtype={"slide_id": str, "path": str, "patient_id": str}, keep_default_na=False)
    if "slide_id" in df.columns:
        df = df.astype({"slide_id": str})
    _check(list(df.columns), df["slide_id"].tolist() if "slide_id" in df.columns else [], required, where)
    if labelled:
        empty = df["label"].isna() | (df["label"].astype(str).str.strip() == "")
        if empty.any():
            raise ValueError(f"{where}: empty label for slide(s) {list(df.loc[empty, 'slide_id'][:5])}")
        df = df.astype({"patient_id": str, "label": int})
    if csv_path is not None and "path" in df.columns:
        df = df.assign(path=df["path"].map(lambda p: _resolve(csv_path, p)))
    if "mpp" not in df.columns:
        df = df.assign(mpp="")
    return df.sort_values("slide_id", kind="stable").reset_index(drop=True) if sort else df
