"""The cohort's slide manifest ``data/manifests/<cohort>/slides.csv`` (DESIGN §3), and the one parser of its
``mpp`` cells: every stage reads slides.csv here, so tiling, SSL, extraction and MIL see the same rows.

Rows keep the file's order (``sort=True`` sorts by slide_id); ids and paths are str and empty cells stay
``""``; relative paths are taken from the working directory (the project root, where DVC runs), failing that
from the manifest's folder.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

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
    required = tuple(dict.fromkeys((*columns, *(LABELLED_COLUMNS if labelled else ()))))
    if isinstance(manifest, pd.DataFrame):
        df, where, csv = manifest.copy(), "manifest", None
    else:
        csv = Path(manifest)
        where = str(csv)
        if not csv.exists():
            raise FileNotFoundError(f"{csv}: slide manifest not found; run the ingest stage first.")
        df = pd.read_csv(csv, dtype={"slide_id": str, "path": str, "patient_id": str}, keep_default_na=False)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{where}: manifest lacks column(s) {missing}; columns: {list(df.columns)}; expected the "
                         "slides.csv of ingest")
    df = df.astype({"slide_id": str})
    dup = df["slide_id"][df["slide_id"].duplicated()].tolist()
    if dup:
        raise ValueError(f"{where}: duplicate slide_id(s) {dup[:5]}; slide ids must be unique.")
    bad = [s for s in df["slide_id"] if not s or "/" in s or s.startswith(".")]
    if bad:
        raise ValueError(f"{where}: slide_id(s) {bad[:5]} cannot be file names (empty, '/' or leading '.').")
    if labelled:
        empty = df["label"].isna() | (df["label"].astype(str).str.strip() == "")
        if empty.any():
            raise ValueError(f"{where}: empty label for slide(s) {list(df.loc[empty, 'slide_id'][:5])}")
        df = df.astype({"patient_id": str, "label": int})
    if csv is not None and "path" in df.columns:
        df = df.assign(path=df["path"].map(lambda p: _resolve(csv, p)))
    if "mpp" not in df.columns:
        df = df.assign(mpp="")
    return df.sort_values("slide_id", kind="stable").reset_index(drop=True) if sort else df
