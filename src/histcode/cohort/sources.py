"""Turn each cohort input (GDC sheet, barcode file names, CPTAC CSV) into candidate manifest rows.

Each builder returns a DataFrame with the canonical columns plus ``row`` (line in the source table, or
position in the file listing) and ``file`` (the name the user would look for), so later exclusions and
file failures can point at the source. No row is dropped here; exclusion happens in ``histcode.cohort.ingest``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from histcode.cohort.barcodes import LABELS, NORMAL, TUMOUR, BarcodeError, parse_barcode
from histcode.cohort.files import SLIDE_EXTENSIONS, rna_format, slide_file
from histcode.cohort.tables import IngestError

log = logging.getLogger(__name__)


def _gdc_path(root: Path, file_id: str, file_name: str) -> Path:
    """GDC files live either flat under ``root`` or in the gdc-client layout ``root/<File ID>/<File Name>``."""
    flat, nested = root / file_name, root / file_id / file_name
    if flat.exists() or not nested.exists():
        return flat
    return nested


def _label(sample_type: str) -> float:
    return float(LABELS[sample_type]) if sample_type in LABELS else float("nan")


def slides_from_gdc(sheet: pd.DataFrame, *, slide_dir: Path, cohort: str, default_mpp: float | None) -> pd.DataFrame:
    """Rows of a validated GDC slide sample sheet → candidate ``slides.csv`` rows."""
    rows = []
    for line, r in sheet.iterrows():
        name = str(r["File Name"])
        rows.append({
            "slide_id": Path(name).stem,
            "path": str(_gdc_path(slide_dir, str(r["File ID"]), name)),
            "patient_id": r["Case ID"],
            "cohort": cohort,
            "sample_type": r["Sample Type"],
            "label": _label(str(r["Sample Type"])),
            "mpp": default_mpp,
            "row": line,
            "file": name,
        })
    return _frame(rows)


def slides_from_cptac(manifest: pd.DataFrame, *, slide_dir: Path, cohort: str,
                      default_mpp: float | None) -> pd.DataFrame:
    """Rows of a validated CPTAC CSV (label tumor/normal, optional mpp and preparation) → candidate rows; a
    ``file_name`` that is a DICOM series directory (an IDC download) opens through its first ``.dcm`` file."""
    rows = []
    for line, r in manifest.iterrows():
        mpp, prep = r.get("mpp"), r.get("preparation")
        sample_type = TUMOUR if r["label"] == "tumor" else NORMAL
        rows.append({
            "slide_id": r["slide_id"],
            "path": str(slide_file(slide_dir / str(r["file_name"]))),
            "patient_id": r["patient_id"],
            "cohort": cohort,
            "sample_type": sample_type,
            "label": _label(sample_type),
            "mpp": float(mpp) if isinstance(mpp, str) else default_mpp,
            "row": line,
            "file": r["file_name"],
            "preparation": prep if isinstance(prep, str) else None,
        })
    return _frame(rows)


def list_barcode_slides(slide_dir: Path) -> tuple[pd.DataFrame, list[dict[str, object]]]:
    """Slide files under ``slide_dir`` (recursive, sorted) with their parsed barcode.

    Returns the listing (``file, slide_id, patient_id, sample_id, sample_type, path``; index = position
    from 1) and failures for files whose name holds no valid barcode.
    """
    if not slide_dir.is_dir():
        raise IngestError(f"{slide_dir}: slide directory not found; fix base.cohorts.<name>.slide_dir")
    files = sorted(p for p in slide_dir.rglob("*") if p.suffix.lower() in SLIDE_EXTENSIONS and p.is_file())
    rows, failures = [], []
    for i, p in enumerate(files, start=1):
        rel = str(p.relative_to(slide_dir))
        try:
            bc = parse_barcode(p.name)
        except BarcodeError as exc:
            failures.append({"table": "slides", "row": i, "file": rel, "kind": "bad_barcode", "reason": str(exc)})
            continue
        rows.append({"file": rel, "slide_id": p.stem, "patient_id": bc.patient_id, "sample_id": bc.sample_id,
                     "sample_type": bc.sample_type, "path": str(p), "row": i})
    listing = pd.DataFrame(rows, columns=["file", "slide_id", "patient_id", "sample_id", "sample_type", "path",
                                          "row"])
    listing.index = pd.Index(listing["row"].astype(int), name="line")
    return listing, failures


def slides_from_barcodes(listing: pd.DataFrame, *, cohort: str, default_mpp: float | None) -> pd.DataFrame:
    """A validated barcode listing → candidate rows."""
    rows = [{
        "slide_id": r["slide_id"], "path": r["path"], "patient_id": r["patient_id"], "cohort": cohort,
        "sample_type": r["sample_type"], "label": _label(str(r["sample_type"])), "mpp": default_mpp,
        "row": r["row"], "file": r["file"],
    } for _, r in listing.iterrows()]
    return _frame(rows)


def rnaseq_from_gdc(sheet: pd.DataFrame, *, rna_dir: Path, cohort: str) -> pd.DataFrame:
    """Rows of a validated GDC RNA sample sheet → candidate ``rnaseq.csv`` rows (format None = other workflow)."""
    rows = []
    for line, r in sheet.iterrows():
        name = str(r["File Name"])
        rows.append({
            "sample_id": r["Sample ID"],
            "patient_id": r["Case ID"],
            "cohort": cohort,
            "sample_type": r["Sample Type"],
            "path": str(_gdc_path(rna_dir, str(r["File ID"]), name)),
            "format": rna_format(name),
            "file_id": r["File ID"],
            "row": line,
            "file": name,
        })
    return pd.DataFrame(rows, columns=["sample_id", "patient_id", "cohort", "sample_type", "path", "format",
                                       "file_id", "row", "file"])


def _frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    """Candidate slide rows; ``preparation`` is a manifest's own (None: read from the slide barcode)."""
    cols = ["slide_id", "path", "patient_id", "cohort", "sample_type", "label", "mpp", "row", "file", "preparation"]
    df = pd.DataFrame(rows, columns=cols)
    df["mpp"] = pd.to_numeric(df["mpp"], errors="coerce").astype(float)
    df["label"] = df["label"].astype(float)
    return df
