"""Ingest one cohort: inputs → validated ``slides.csv`` / ``rnaseq.csv`` + ``failures.csv`` + report
(+ ``fingerprints.csv``: content fingerprints, so DVC reruns downstream stages when a file's content changes).

Flow: read the input table → validate it (GE) → candidate rows → exclude sample types other than
tumour/normal and files that are missing or not slides (each recorded with its reason in failures.csv)
→ keep the configured tissue preparation (TCGA slide barcodes; ``preparation``) → leave out copies of one file
under two rows (``histcode.cohort.duplicates``) → validate the canonical
manifests (GE) → write everything atomically; warn when tumour vs normal is confounded with preparation or
site. A failed validation writes the report and raises ``ValidationError``; one bad file never stops the cohort.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from histcode.atomic import write_csv, write_json
from histcode.cohort import gdc_sheets, preparation, sites, sources, suites
from histcode.cohort.barcodes import LABELS, BarcodeError, parse_barcode
from histcode.cohort.config import IngestConfig
from histcode.cohort.duplicates import exclude_copies, one_file_per_name
from histcode.cohort.files import rna_problem, slide_problem
from histcode.cohort.fingerprint import FINGERPRINTS_CSV, fingerprint_table
from histcode.cohort.tables import IngestError, read_table, table_for_output
from histcode.cohort.validation import ValidationError, check_table
from histcode.config import CohortConfig
from histcode.console import tqdm

log = logging.getLogger(__name__)

SLIDES_CSV, RNASEQ_CSV, FAILURES_CSV, REPORT_JSON = "slides.csv", "rnaseq.csv", "failures.csv", "validation.json"


@dataclass
class IngestResult:
    """What ingest wrote (also returned for tests and the MLflow run)."""

    cohort: str
    out_dir: Path
    slides: pd.DataFrame
    rnaseq: pd.DataFrame | None
    failures: pd.DataFrame
    report: dict[str, Any]
    counts: dict[str, float]
    confounds: dict[str, float]  # what preparation and site say about the label (metrics, not the report)
    confound_warnings: list[str]


def _exclude_sample_types(df: pd.DataFrame, table: str, failures: list[dict[str, Any]]) -> pd.DataFrame:
    keep = df["sample_type"].isin(list(LABELS))
    for _, r in df[~keep].iterrows():
        failures.append({"table": table, "row": r["row"], "file": r["file"], "kind": "excluded_sample_type",
                         "reason": f"sample type {r['sample_type']!r} is neither 'Primary Tumor' (tumour) nor "
                                   "'Solid Tissue Normal' (normal); not used for tumour/normal labels"})
    return df[keep]


def _check_barcode_sample_type(df: pd.DataFrame, table: str, column: str, failures: list[dict[str, Any]],
                               said: str = "the sheet's Sample Type",
                               fix: str = "the sheet row (or the file name)") -> pd.DataFrame:
    """Rows whose TCGA barcode code (``-01`` tumour, ``-11`` normal, ...) contradicts the sheet's ``Sample
    Type`` (or a manifest's label) are recorded and dropped: a mislabelled normal would otherwise train as tumour."""
    keep = []
    for _, r in df.iterrows():
        try:
            bc = parse_barcode(str(r[column]))
        except BarcodeError:  # not a TCGA id: nothing to cross-check
            keep.append(True)
            continue
        if bc.sample_type != str(r["sample_type"]):
            failures.append({"table": table, "row": r["row"], "file": r["file"], "kind": "sample_type_mismatch",
                             "reason": f"barcode {bc.sample_id} (code {bc.sample_code}) is {bc.sample_type!r} "
                                       f"but {said} says {r['sample_type']!r}; correct {fix}"})
            keep.append(False)
        else:
            keep.append(True)
    return df[pd.Series(keep, index=df.index, dtype=bool)] if len(df) else df


def _check_files(df: pd.DataFrame, table: str, failures: list[dict[str, Any]], problem: Any,
                 progress: bool) -> pd.DataFrame:
    ok = []
    for _, r in tqdm(df.iterrows(), total=len(df), desc=f"check {table} files", disable=not progress,
                     leave=False):
        found = problem(r)
        if found is None:
            ok.append(True)
            continue
        kind, reason = found
        failures.append({"table": table, "row": r["row"], "file": r["file"], "kind": kind, "reason": reason})
        ok.append(False)
    return df[pd.Series(ok, index=df.index, dtype=bool)] if len(df) else df


def _gdc_layout(sheet: pd.DataFrame, table: str, path: str | Path, failures: list[dict[str, Any]]) -> pd.DataFrame:
    """Either GDC portal's sample sheet in the layout the suites check (``histcode.cohort.gdc_sheets``)."""
    if not gdc_sheets.is_portal2(sheet):
        return sheet
    out, bad = gdc_sheets.with_sample_type(sheet, table=table)
    left = f"; {len(bad)} row(s) whose Tissue Type contradicts it left out" if bad else ""
    log.info("%s: GDC Data Portal 2 sample sheet (Tissue Type, Tumor Descriptor): sample types read from the "
             "Sample ID codes%s", path, left)
    failures.extend(bad)
    return out


def _slide_candidates(name: str, cohort: CohortConfig, report: list[dict[str, Any]],
                      failures: list[dict[str, Any]]) -> pd.DataFrame:
    if cohort.kind == "barcode":
        listing, bad = sources.list_barcode_slides(Path(cohort.slide_dir))
        failures.extend(bad)
        listing = one_file_per_name(listing, failures)
        check_table(listing, suites.BARCODE_LISTING, source=cohort.slide_dir, report=report)
        return sources.slides_from_barcodes(listing, cohort=name, default_mpp=cohort.default_mpp)
    if cohort.slide_sheet is None:
        raise IngestError(f"base.cohorts.{name}: kind {cohort.kind!r} needs slide_sheet (the "
                          f"{'GDC sample sheet' if cohort.kind == 'gdc' else 'CPTAC CSV manifest'})")
    if cohort.kind == "gdc":
        sheet = _gdc_layout(read_table(cohort.slide_sheet, sep="\t", what="GDC slide sample sheet"), "slides",
                            cohort.slide_sheet, failures)
        check_table(sheet, suites.gdc_sheet("Slide Image"), source=cohort.slide_sheet, report=report)
        return sources.slides_from_gdc(sheet, slide_dir=Path(cohort.slide_dir), cohort=name,
                                       default_mpp=cohort.default_mpp)
    manifest = read_table(cohort.slide_sheet, sep=",", what="CPTAC manifest")
    check_table(manifest, suites.CPTAC_MANIFEST, source=cohort.slide_sheet, report=report)
    return sources.slides_from_cptac(manifest, slide_dir=Path(cohort.slide_dir), cohort=name,
                                     default_mpp=cohort.default_mpp)


def _rna_candidates(name: str, cohort: CohortConfig, report: list[dict[str, Any]],
                    failures: list[dict[str, Any]]) -> pd.DataFrame:
    assert cohort.rna_sheet is not None
    if cohort.rna_dir is None:
        raise IngestError(f"base.cohorts.{name}: rna_sheet is set but rna_dir is not; set rna_dir to the "
                          "folder the GDC client downloaded the expression files into")
    sheet = _gdc_layout(read_table(cohort.rna_sheet, sep="\t", what="GDC RNA-seq sample sheet"), "rnaseq",
                        cohort.rna_sheet, failures)
    check_table(sheet, suites.gdc_sheet("Gene Expression Quantification"), source=cohort.rna_sheet, report=report)
    rna = sources.rnaseq_from_gdc(sheet, rna_dir=Path(cohort.rna_dir), cohort=name)
    other = rna["format"].isna()
    for _, r in rna[other].iterrows():
        failures.append({"table": "rnaseq", "row": r["row"], "file": r["file"], "kind": "excluded_workflow",
                         "reason": "not a STAR '*.rna_seq.augmented_star_gene_counts.tsv' or HTSeq "
                                   "'*.FPKM-UQ.txt.gz' file; other GDC workflows are not used"})
    return rna[~other]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _counts(cands: pd.DataFrame, slides: pd.DataFrame, rna: pd.DataFrame | None,
            failures: pd.DataFrame) -> dict[str, float]:
    counts: dict[str, float] = {
        "input_slides": len(cands),
        "input_tumour": int((cands["label"] == 1).sum()),
        "input_normal": int((cands["label"] == 0).sum()),
        "slides": len(slides),
        "slides_tumour": int((slides["label"] == 1).sum()),
        "slides_normal": int((slides["label"] == 0).sum()),
        "patients": int(slides["patient_id"].nunique()),
        "failures": len(failures),
    }
    for st, n in sorted(Counter(cands["sample_type"]).items()):
        counts[f"input_sample_type/{_slug(str(st))}"] = n
    for (table, kind), n in sorted(Counter(zip(failures["table"], failures["kind"], strict=True)).items()):
        counts[f"failures/{table}/{kind}"] = n
    if rna is not None:
        counts["rnaseq"] = len(rna)
        counts["rnaseq_tumour"] = int((rna["sample_type"] == "Primary Tumor").sum())
        counts["rnaseq_normal"] = int((rna["sample_type"] == "Solid Tissue Normal").sum())
        counts["rnaseq_patients"] = int(rna["patient_id"].nunique())
    return counts


def ingest_cohort(name: str, cohort: CohortConfig, cfg: IngestConfig, *, out_dir: str | Path) -> IngestResult:
    """Build and validate the manifests of cohort ``name`` into ``out_dir`` (DESIGN §3)."""
    out_dir = Path(out_dir)
    report: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    known: dict[str, tuple[int, str]] = {}  # fingerprints read for the copy check, reused for fingerprints.csv
    try:
        cands = _slide_candidates(name, cohort, report, failures)
        slides = cands
        if cohort.kind == "gdc":
            slides = _check_barcode_sample_type(slides, "slides", "file", failures)
        elif cohort.kind == "cptac":  # a manifest of TCGA slides (e.g. from IDC) names them by barcode
            slides = _check_barcode_sample_type(slides, "slides", "slide_id", failures, "the manifest's label",
                                                "the manifest row")
        slides = _exclude_sample_types(slides, "slides", failures)
        if cohort.preparation != "all" and len(slides) and (preparation.preparations(slides) == "unknown").all():
            raise IngestError(f"base.cohorts.{name}.preparation: {cohort.preparation!r} needs TCGA slide barcodes or a "
                              f"manifest 'preparation' column (frozen/ffpe, as `histcode idc-manifest` writes); "
                              f"{cohort.slide_sheet or cohort.slide_dir} has neither, so set it to 'all'")
        slides = preparation.select(slides, cohort=name, keep=cohort.preparation, failures=failures)
        if cfg.require_files:
            check = (lambda r: slide_problem(Path(r["path"]))) if cfg.check_format else (
                lambda r: None if Path(r["path"]).exists() else ("missing_file", f"{r['path']}: file not found"))
            slides = _check_files(slides, "slides", failures, check, cfg.progress)
        slides = exclude_copies(slides, "slides", ("patient_id", "sample_type"), failures, known)
        prep_counts, prep_warning = preparation.summarise(slides, cohort=name, synthetic=cohort.synthetic)
        slides = table_for_output(slides[list(suites.SLIDES_COLUMNS)].astype({"label": int}))
        tcga = cohort.kind in ("gdc", "barcode")
        check_table(slides, suites.slides_manifest(check_files=cfg.require_files, tcga=tcga),
                    source=out_dir / SLIDES_CSV, report=report)
        rna = None
        if cohort.rna_sheet is not None:
            rna = _check_barcode_sample_type(_rna_candidates(name, cohort, report, failures), "rnaseq",
                                             "sample_id", failures)
            rna = _exclude_sample_types(rna, "rnaseq", failures)
            if cfg.require_files:
                rcheck = (lambda r: rna_problem(Path(r["path"]), r["format"])) if cfg.check_format else (
                    lambda r: None if Path(r["path"]).is_file() else ("missing_file", f"{r['path']}: file not found"))
                rna = _check_files(rna, "rnaseq", failures, rcheck, cfg.progress)
            rna = exclude_copies(rna, "rnaseq", ("patient_id", "sample_type"), failures, known)
            rna = table_for_output(rna[list(suites.RNASEQ_COLUMNS)])
            check_table(rna, suites.rnaseq_manifest(check_files=cfg.require_files, tcga=tcga),
                        source=out_dir / RNASEQ_CSV, report=report)
    except ValidationError as exc:
        write_json(out_dir / REPORT_JSON, {"cohort": name, "success": False, "tables": report})
        raise ValidationError(f"ingest of cohort {name!r} stopped (report: {out_dir / REPORT_JSON}):\n{exc}",
                              exc.report) from None

    fail_df = pd.DataFrame(failures, columns=list(suites.FAILURE_COLUMNS))
    counts = _counts(cands, slides, rna, fail_df)
    site_counts, site_warning = sites.summarise(slides, cohort=name)
    warnings = [w for w in (prep_warning, site_warning) if w]
    full_report = {"cohort": name, "success": True, "counts": counts, "tables": report}
    write_csv(out_dir / SLIDES_CSV, slides)
    if rna is not None:
        write_csv(out_dir / RNASEQ_CSV, rna)
    elif (out_dir / RNASEQ_CSV).exists():
        (out_dir / RNASEQ_CSV).unlink()  # a stale manifest from an earlier config must not be picked up
    write_csv(out_dir / FAILURES_CSV, fail_df)
    tables = {"slides": (slides, "slide_id"), **({"rnaseq": (rna, "file_id")} if rna is not None else {})}
    write_csv(out_dir / FINGERPRINTS_CSV, fingerprint_table(tables, progress=cfg.progress, known=known))
    write_json(out_dir / REPORT_JSON, full_report)
    if failures:
        summary = ", ".join(f"{n} {k}" for k, n in sorted(Counter(fail_df["kind"]).items()))
        log.warning("cohort %s: %d input row(s) excluded (%s); reasons per row in %s", name, len(fail_df), summary,
                    out_dir / FAILURES_CSV)
    for warning in warnings:
        log.warning(warning)
    if counts["slides"] and min(counts["slides_tumour"], counts["slides_normal"]) == 0:
        only = "tumour" if counts["slides_tumour"] else "normal"
        log.warning("cohort %s: all %d slides are %s: tumour vs normal cannot be trained or given an AUC on it; an "
                    "external evaluation reports %s recall only (e.g. CPTAC-BRCA as IDC labels it)", name,
                    counts["slides"], only, only)
    log.info("cohort %s: %d slides (%d tumour, %d normal) from %d patients", name, counts["slides"],
             counts["slides_tumour"], counts["slides_normal"], counts["patients"])
    return IngestResult(name, out_dir, slides, rna, fail_df, full_report, counts,
                        {**prep_counts, **site_counts}, warnings)
