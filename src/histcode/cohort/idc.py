"""Slides from NCI's Imaging Data Commons (IDC): its series index → a slide manifest in the CPTAC format.

Why: IDC is where CPTAC's H&E slides (and TCGA's, as DICOM) are distributed today. ``idc download`` (the
``idc-index`` package) writes each slide as a DICOM series directory,
``<collection_id>/<PatientID>/<StudyInstanceUID>/SM_<SeriesInstanceUID>/<uuid>.dcm``, whose names say nothing
about the tissue. The tissue type is in IDC's index only: structured in ``sm_index``
(``primaryAnatomicStructureModifier_CodeMeaning``: "Neoplasm, Primary", "Normal", ...) and as words of the
series description in the main index ("HE tumor_tissue", "HE normal", TCGA's "Frozen HE TP TS1" / "Frozen HE NT
TSA"). A series without a tissue type is listed with the reason and never guessed: in IDC v25, 377 of
cptac_brca's 653 H&E series are described as plain "HE", and none is labelled normal.

TCGA slides in IDC keep their GDC slide barcode in ``sm_index``'s ``ContainerIdentifier`` (``TCGA-18-3406-01A-01-TS1``:
IDC's conversion names the slide after the SVS file). When the export has it, the barcode becomes the slide id, so
ingest reads the sample type, the tissue preparation (frozen TS/BS/MS or FFPE DX) and the source site from it as it
does for GDC downloads, and a slide pairs with the GDC RNA-seq of its sample. Without it the preparation is read
from the description's words ("Frozen HE TP TS1", "FFPE HE TP DX1") or ``sm_index``'s embedding medium, and written
to the manifest's ``preparation`` column, which ingest honours.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from histcode.cohort.barcodes import FFPE, FROZEN, LABELS, BarcodeError, parse_barcode
from histcode.cohort.tables import IngestError

REQUIRED = ("collection_id", "PatientID", "SeriesInstanceUID", "SeriesDescription")
STRUCTURED = "primaryAnatomicStructureModifier_CodeMeaning"
CONTAINER = "ContainerIdentifier"  # sm_index: the glass slide's id; for TCGA its GDC slide barcode
EMBEDDING = "embeddingMedium_CodeMeaning"  # sm_index: "Paraffin wax", "Tissue freezing medium", ...
SIZE = "series_size_MB"  # main index: what a series costs to download
OPTIONAL = ("Modality", "StudyInstanceUID", STRUCTURED, CONTAINER, EMBEDDING, SIZE)
#: series description words (lower case) that name the tissue: CPTAC's and TCGA's sample type codes
TUMOUR_WORDS = frozenset({"tumor", "tumour", "tumor_tissue", "tp"})
NORMAL_WORDS = frozenset({"normal", "normal_tissue", "nt"})
#: sm_index's structured tissue type (lower case); "Neoplasm, Metastatic" is neither class
STRUCTURED_TUMOUR = frozenset({"neoplasm, primary", "tumor", "neoplasm"})
STRUCTURED_NORMAL = frozenset({"normal"})
#: description words (lower case) and embedding-medium words that name the tissue preparation
PREPARATION_WORDS = {"frozen": FROZEN, "ffpe": FFPE}
EMBEDDING_WORDS = {"paraffin": FFPE, "freezing": FROZEN, "oct": FROZEN, "cryo": FROZEN}
MANIFEST_COLUMNS = ["slide_id", "file_name", "patient_id", "label", "preparation", "collection_id",
                    "series_instance_uid", "series_description", "label_source"]
SKIPPED_COLUMNS = ["collection_id", "patient_id", "series_instance_uid", "series_description", "file_name", "kind",
                   "reason"]
#: why a series is skipped (``kind`` of the skipped table, and the counts)
SKIP_KINDS = ("no_tissue_type", "other_tissue_type", "label_mismatch", "other_preparation", "not_downloaded")
_UID_DIR = re.compile(r"(?:^|_)(\d+(?:\.\d+){3,})$")


@dataclass(frozen=True)
class IdcManifest:
    """``manifest``: labelled series (MANIFEST_COLUMNS, readable by a ``kind: cptac`` cohort); ``skipped``: the
    other series with the reason (SKIPPED_COLUMNS); ``counts``: series per outcome (and ``size_mb``, their download
    size; -1 when the index has no sizes); ``warning``: set when one
    class is missing, so a tumour-vs-normal AUC cannot be computed on the labelled series."""

    manifest: pd.DataFrame
    skipped: pd.DataFrame
    counts: dict[str, int]
    warning: str | None


def read_index(path: str | Path) -> pd.DataFrame:
    """IDC's series index: the ``idc_index.parquet`` that ``pip install idc-index`` brings, or a CSV export of
    a query (e.g. ``sm_index`` joined to ``index``, which adds the structured tissue type)."""
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"{path}: IDC index not found; pass the idc_index.parquet of the idc-index-data package "
                          "(pip install idc-index) or a CSV export of an IDC query")
    try:
        if path.suffix == ".parquet":  # IDC's whole index (~1M series): read the columns used, SM rows only
            import pyarrow.parquet as pq

            names = pq.read_schema(path).names
            cols = [c for c in (*REQUIRED, *OPTIONAL) if c in names]
            df = pd.read_parquet(path, columns=cols, filters=[("Modality", "==", "SM")] if "Modality" in cols else None)
        else:
            df = pd.read_csv(path, dtype=str, keep_default_na=False).replace("", pd.NA)
    except Exception as exc:  # any reader error is this file's: one line naming it
        raise IngestError(f"{path}: cannot read the IDC index ({type(exc).__name__}: {exc}); it must be a parquet "
                          "file or a comma-separated table with one header line") from exc
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise IngestError(f"{path}: the IDC index lacks column(s) {missing}; export at least {list(REQUIRED)} "
                          f"(and Modality, and {STRUCTURED} from sm_index if you have it)")
    return df


def tissue_label(description: object, structured: object = None) -> tuple[str, str]:
    """``(label, source)`` with label ``tumor``/``normal``, or ``(skip kind, reason)``: the structured tissue type
    first, else the series description's words; both classes or neither named in the description is no label."""
    if isinstance(structured, str) and structured.strip():
        s = structured.strip().lower()
        if s in STRUCTURED_TUMOUR:
            return "tumor", f"{STRUCTURED} {structured!r}"
        if s in STRUCTURED_NORMAL:
            return "normal", f"{STRUCTURED} {structured!r}"
        return "other_tissue_type", f"tissue type {structured!r} ({STRUCTURED}) is neither primary tumour nor normal"
    text = description.strip() if isinstance(description, str) else ""
    words = {w.lower() for w in text.split()}
    tumour, normal = bool(words & TUMOUR_WORDS), bool(words & NORMAL_WORDS)
    if tumour != normal:
        return ("tumor" if tumour else "normal"), f"SeriesDescription {text!r}"
    if tumour:
        return "other_tissue_type", f"SeriesDescription {text!r} names both tumour and normal tissue"
    return "no_tissue_type", f"no tissue type: SeriesDescription {text!r} names neither tumour nor normal tissue"


def slide_barcode(container: object) -> str | None:
    """The TCGA slide barcode a ``ContainerIdentifier`` holds (``TCGA-18-3406-01A-01-TS1``), or None: not TCGA, or
    a barcode that names no slide section."""
    if not isinstance(container, str):
        return None
    try:
        bc = parse_barcode(container.strip())
    except BarcodeError:
        return None
    return container.strip().upper() if bc.slide else None


def barcode_label(barcode: str, described: str, why: str) -> tuple[str, str]:
    """``(label, source)`` from a slide barcode's sample type, or ``(skip kind, reason)``: a sample type that is
    neither primary tumour nor solid tissue normal, or a description/structured type that says the other class."""
    bc = parse_barcode(barcode)
    label = {1: "tumor", 0: "normal"}.get(LABELS.get(bc.sample_type, -1))
    if label is None:
        return "other_tissue_type", f"{CONTAINER} {barcode!r}: sample type {bc.sample_type!r} is neither class"
    if described in ("tumor", "normal") and described != label:
        return "label_mismatch", f"{CONTAINER} {barcode!r} is {bc.sample_type!r} but {why} says {described}"
    return label, f"{CONTAINER} {barcode!r}"


def preparation(barcode: str | None, description: object, embedding: object) -> str | None:
    """``frozen``/``ffpe`` from the slide barcode's section, else the description's words ("Frozen", "FFPE"),
    else sm_index's embedding medium; None when none says."""
    if barcode:
        return parse_barcode(barcode).preparation
    for text, table in ((description, PREPARATION_WORDS), (embedding, EMBEDDING_WORDS)):
        if not isinstance(text, str) and isinstance(text, Iterable):  # sm_index's parquet holds a list of codes
            text = " ".join(map(str, text))
        if isinstance(text, str):
            found = {table[w] for w in re.split(r"[^a-z]+", text.lower()) if w in table}
            if len(found) == 1:
                return found.pop()
    return None


def series_dirs(slide_dir: Path) -> dict[str, Path]:
    """SeriesInstanceUID → its directory under ``slide_dir``, for any ``idc download`` layout whose last
    directory name ends with the UID (the default ``SM_<uid>`` among them)."""
    found: dict[str, Path] = {}
    for root, dirs, _ in os.walk(slide_dir):
        dirs.sort()
        for d in dirs:
            m = _UID_DIR.search(d)
            if m:
                found.setdefault(m.group(1), Path(root, d).relative_to(slide_dir))
    return found


def _default_dir(r: pd.Series) -> Path:
    study = r.get("StudyInstanceUID")
    parts = [str(r["collection_id"]), str(r["PatientID"])] + ([str(study)] if isinstance(study, str) else [])
    return Path(*parts, f"SM_{r['SeriesInstanceUID']}")


def build_manifest(index: pd.DataFrame, *, collections: Sequence[str], slide_dir: Path | None,
                   keep: str = "all") -> IdcManifest:
    """The labelled H&E series of ``collections`` (e.g. cptac_luad + cptac_lscc for lung) as manifest rows
    (``file_name``: the series directory, which ingest opens through its first ``.dcm`` file); ``slide_dir`` None
    plans before the download (default layout, files not checked); ``keep`` ``frozen``/``ffpe`` leaves out series
    of another or unknown preparation, so a plan downloads only what the cohort will use."""
    if "Modality" in index.columns:
        index = index[index["Modality"].astype(str) == "SM"]
    known = sorted(index["collection_id"].dropna().astype(str).unique())
    for collection in collections:
        if collection not in known:
            near = [c for c in known if c.split("_")[0] == collection.split("_")[0]][:12] or known[:12]
            raise IngestError(f"IDC index: no slide microscopy series of collection {collection!r}; "
                              f"collections include {near}")
    name = " + ".join(collections)
    rows = index[index["collection_id"].astype(str).isin(collections)]
    on_disk = series_dirs(slide_dir) if slide_dir is not None else {}
    kept, skipped = [], []
    order = ["collection_id", "PatientID", "SeriesInstanceUID"]
    for _, r in rows.sort_values(order, kind="mergesort").iterrows():
        uid, patient = str(r["SeriesInstanceUID"]), str(r["PatientID"])
        label, why = tissue_label(r["SeriesDescription"], r.get(STRUCTURED))
        barcode = slide_barcode(r.get(CONTAINER))
        if barcode:
            label, why = barcode_label(barcode, label, why)
        prep = preparation(barcode, r["SeriesDescription"], r.get(EMBEDDING))
        folder = on_disk.get(uid)
        file_name = (folder or _default_dir(r)).as_posix()
        base = {"collection_id": r["collection_id"], "patient_id": patient, "series_instance_uid": uid,
                "series_description": r["SeriesDescription"], "file_name": file_name}
        if label in SKIP_KINDS:
            skipped.append({**base, "kind": label, "reason": why})
        elif keep != "all" and prep != keep:
            skipped.append({**base, "kind": "other_preparation",
                            "reason": f"--preparation {keep}: the series is {prep or 'of unknown preparation'}"})
        elif slide_dir is not None and folder is None:
            skipped.append({**base, "kind": "not_downloaded",
                            "reason": f"not downloaded: no directory named after the series under {slide_dir}"})
        else:
            kept.append({"slide_id": barcode or f"{patient}_{uid}", "file_name": file_name, "patient_id": patient,
                         "label": label, "preparation": prep,
                         "collection_id": r["collection_id"], "series_instance_uid": uid,
                         "series_description": r["SeriesDescription"], "label_source": why, "barcode": barcode,
                         "size_mb": pd.to_numeric(r.get(SIZE), errors="coerce")})
    manifest = pd.DataFrame(kept, columns=[*MANIFEST_COLUMNS, "barcode", "size_mb"])
    named, size_mb = int(manifest["barcode"].notna().sum()), manifest["size_mb"].astype(float).sum(min_count=1)
    twice = manifest["slide_id"].duplicated(keep=False)  # one barcode scanned twice: keep both, told apart
    manifest.loc[twice, "slide_id"] = manifest.loc[twice, "slide_id"] + "_" + manifest.loc[twice, "series_instance_uid"]
    manifest = manifest[MANIFEST_COLUMNS]
    skip = pd.DataFrame(skipped, columns=SKIPPED_COLUMNS)
    counts = {"series": len(rows), **{k: int((manifest["label"] == k).sum()) for k in ("tumor", "normal")},
              **{k: int((skip["kind"] == k).sum()) for k in SKIP_KINDS},
              **{k: int((manifest["preparation"] == k).sum()) for k in (FROZEN, FFPE)},
              "barcodes": named, "size_mb": -1 if pd.isna(size_mb) else round(float(size_mb))}
    if manifest.empty:
        raise IngestError(f"IDC index: none of {name}'s {len(rows)} series has a tissue type that is tumour or "
                          f"normal ({counts['no_tissue_type']} name none) or is downloaded; label them by hand in a "
                          "manifest (README: Real data, IDC)")
    warning = None
    if counts["tumor"] == 0 or counts["normal"] == 0:
        have, lack = ("tumour", "normal") if counts["normal"] == 0 else ("normal", "tumour")
        warning = (f"{name}: all {len(manifest)} labelled series are {have} ({counts['no_tissue_type']} more "
                   f"have no tissue type in IDC): a tumour-vs-normal AUC needs {lack} slides too; label series from "
                   "the collection's clinical data and add them to the manifest, or read the evaluation as "
                   f"{have} recall only")
    return IdcManifest(manifest, skip, counts, warning)
