"""Content fingerprints of a cohort's input files, written beside the manifests.

DVC stages downstream of ingest depend on ``data/manifests/<cohort>``, not on the (terabyte) slide folders,
so the manifests must change whenever a slide or RNA file's content does, even if its path does not
(re-scanned slide, regenerated synthetic cohort). Hashing whole slides would take minutes per slide; the
size plus BLAKE2b of the first and last MiB covers the header/IFDs and the highest- and lowest-resolution
tile data, so any rewrite of a pyramidal slide or a count file changes it. Cost: two 1 MiB reads per file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from histcode.console import tqdm

CHUNK = 1 << 20
FINGERPRINTS_CSV = "fingerprints.csv"
COLUMNS = ("table", "id", "path", "size", "fingerprint")


def fingerprint(path: Path, chunk: int = CHUNK) -> tuple[int, str]:
    """(size in bytes, hex BLAKE2b-128 of size + first ``chunk`` bytes + last ``chunk`` bytes)."""
    path = Path(path)
    size = path.stat().st_size
    h = hashlib.blake2b(digest_size=16)
    h.update(str(size).encode())
    with path.open("rb") as fh:
        h.update(fh.read(chunk))
        if size > chunk:
            fh.seek(max(size - chunk, chunk))
            h.update(fh.read(chunk))
    return size, h.hexdigest()


def fingerprint_table(tables: dict[str, tuple[pd.DataFrame, str]], *, progress: bool = False,
                      known: dict[str, tuple[int, str]] | None = None) -> pd.DataFrame:
    """One row per file of each manifest: ``tables`` maps table name → (manifest, id column); files that
    do not exist are left out (metadata-only manifests). ``known``: fingerprints already read, by path."""
    known = known or {}
    rows = []
    todo = [(name, r[idcol], str(r["path"])) for name, (df, idcol) in tables.items() for _, r in df.iterrows()]
    for name, ident, path in tqdm(todo, desc="fingerprint files", disable=not progress, leave=False):
        if Path(path).is_file():
            size, digest = known[path] if path in known else fingerprint(Path(path))
            rows.append({"table": name, "id": ident, "path": path, "size": size, "fingerprint": digest})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def read_fingerprints(manifest_dir: Path) -> pd.DataFrame | None:
    """``fingerprints.csv`` of an ingested cohort, or None when ingest did not write one (an older run)."""
    path = Path(manifest_dir) / FINGERPRINTS_CSV
    if not path.is_file():
        return None
    df = pd.read_csv(path, dtype={"id": str, "path": str, "fingerprint": str})
    missing = set(COLUMNS) - set(df.columns)
    if missing:
        raise ValueError(f"{path}: column(s) {sorted(missing)} missing; re-run ingest (`dvc repro ingest`)")
    return df
