"""Cheap per-file checks at ingest: does the file exist, is it a slide, does an RNA file look right.

Why cheap: ingest must scale to thousands of slides; ``OpenSlide.detect_format`` reads only the header,
and the RNA checks read the first lines. The full parse happens in the stage that uses the file.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

#: file extensions OpenSlide 4 reads (used to list slides in a directory for barcode cohorts)
SLIDE_EXTENSIONS = frozenset({".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".svslide",
                              ".bif", ".dcm", ".czi"})
STAR_SUFFIX = ".rna_seq.augmented_star_gene_counts.tsv"
HTSEQ_SUFFIX = ".FPKM-UQ.txt.gz"
STAR_COLUMNS = ("gene_id", "gene_name", "gene_type", "unstranded", "stranded_first", "stranded_second",
                "tpm_unstranded", "fpkm_unstranded", "fpkm_uq_unstranded")
ENSG_RE = re.compile(r"^ENSG\d{11}(\.\d+)?(_PAR_Y)?$")


def slide_file(path: Path) -> Path:
    """A DICOM series directory (as ``idc download`` writes one) → its first ``.dcm`` file, which OpenSlide
    opens with the rest of the series; any other path as it is."""
    if path.is_dir():
        dcm = sorted(p for p in path.glob("*.dcm") if p.is_file())
        return dcm[0] if dcm else path
    return path


def slide_problem(path: Path) -> tuple[str, str] | None:
    """``(kind, reason)`` when ``path`` is missing or not a slide OpenSlide can open, else None."""
    if not path.exists():
        return "missing_file", f"{path}: file not found"
    if path.is_dir():
        return "not_a_slide", (f"{path}: a directory without DICOM (.dcm) files; file_name must name a slide file "
                               "or a DICOM series directory")
    import openslide

    try:
        vendor = openslide.OpenSlide.detect_format(str(path))
    except Exception as exc:  # any OpenSlide/OS error on one file is that file's failure, not the cohort's
        return "unreadable", f"{path}: OpenSlide could not read the header ({type(exc).__name__}: {exc})"
    if vendor is None:
        return "not_a_slide", f"{path}: not a whole-slide image (OpenSlide detects no format)"
    return None


def rna_format(file_name: str) -> str | None:
    """``star`` / ``htseq_fpkm_uq`` from a GDC file name, None for other workflows (counts, FPKM, ...)."""
    if file_name.endswith(STAR_SUFFIX):
        return "star"
    if file_name.endswith(HTSEQ_SUFFIX):
        return "htseq_fpkm_uq"
    return None


def rna_problem(path: Path, fmt: str) -> tuple[str, str] | None:
    """``(kind, reason)`` when an RNA file is missing or its first lines do not match its format."""
    if not path.is_file():
        return "missing_file", f"{path}: file not found"
    try:
        if fmt == "star":
            with path.open() as fh:
                first, second = fh.readline(), fh.readline()
            if not first.startswith("# gene-model:"):
                return "malformed", f"{path}: STAR counts file must start with '# gene-model:' (got {first[:40]!r})"
            header = tuple(second.rstrip("\n").split("\t"))
            missing = [c for c in STAR_COLUMNS if c not in header]
            if missing:
                return "malformed", f"{path}: STAR header lacks column(s) {missing} (line 2: {second[:80]!r})"
        else:
            with gzip.open(path, "rt") as fh:
                first = fh.readline().rstrip("\n").split("\t")
            if len(first) != 2 or not ENSG_RE.match(first[0]):
                return "malformed", f"{path}: HTSeq FPKM-UQ line 1 must be '<ENSG id>\\t<value>' (got {first!r})"
            float(first[1])
    except (OSError, UnicodeDecodeError, EOFError, ValueError) as exc:
        return "malformed", f"{path}: cannot read as {fmt} ({type(exc).__name__}: {exc})"
    return None
