"""TCGA barcodes: parse ``TCGA-XX-XXXX-01A-01-TS1`` into patient, sample type, vial and slide section.

Why: cohorts without a sample sheet (kind ``barcode``) carry their metadata only in the file names, and
the sample sheets themselves are checked against the same patterns. Codes follow the GDC "Sample Type
Codes" table (01 Primary Tumor, 11 Solid Tissue Normal, 06 Metastatic, ...). The slide section says how the
tissue was prepared, which no GDC sample sheet column does: ``TS``/``BS``/``MS`` are the top/bottom/middle
frozen sections of the sample sent for molecular profiling, ``DX`` a formalin-fixed, paraffin-embedded (FFPE)
diagnostic slide, cut for tumour samples only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from histcode.errors import HistcodeError

PATIENT_PATTERN = r"TCGA-[A-Z0-9]{2}-[A-Z0-9]{4}"
SAMPLE_PATTERN = PATIENT_PATTERN + r"-\d{2}[A-Z]"
#: a patient id alone, e.g. ``TCGA-51-4079``
PATIENT_RE = re.compile(rf"^{PATIENT_PATTERN}$")
#: a sample id, e.g. ``TCGA-51-4079-11A``
SAMPLE_RE = re.compile(rf"^{SAMPLE_PATTERN}$")
#: a barcode anywhere in a file name: patient, sample code, vial, then optional portion/analyte and slide
BARCODE_RE = re.compile(
    r"(?<![A-Z0-9])(?P<patient>TCGA-(?P<tss>[A-Z0-9]{2})-(?P<participant>[A-Z0-9]{4}))"
    r"-(?P<code>\d{2})(?P<vial>[A-Z])"
    r"(?:-(?P<portion>\d{2})(?P<analyte>[A-Z])?)?"
    r"(?:-(?P<slide>(?:TS|BS|MS|DX)[A-Z0-9]))?",
    re.IGNORECASE,
)

#: the tissue source site (TSS) of a patient barcode: the institution that sent the tissue
SITE_RE = re.compile(r"(?<![A-Z0-9])TCGA-(?P<site>[A-Z0-9]{2})-[A-Z0-9]{4}(?![A-Z0-9])", re.IGNORECASE)

TUMOUR = "Primary Tumor"
NORMAL = "Solid Tissue Normal"
#: the two sample types the pipeline labels: tumour 1, normal 0 (everything else is excluded with a reason)
LABELS: dict[str, int] = {TUMOUR: 1, NORMAL: 0}

#: GDC sample type codes (https://gdc.cancer.gov/resources-tcga-users/tcga-code-tables/sample-type-codes)
SAMPLE_TYPE_CODES: dict[str, str] = {
    "01": TUMOUR,
    "02": "Recurrent Tumor",
    "03": "Primary Blood Derived Cancer - Peripheral Blood",
    "04": "Recurrent Blood Derived Cancer - Bone Marrow",
    "05": "Additional - New Primary",
    "06": "Metastatic",
    "07": "Additional Metastatic",
    "08": "Human Tumor Original Cells",
    "09": "Primary Blood Derived Cancer - Bone Marrow",
    "10": "Blood Derived Normal",
    "11": NORMAL,
    "12": "Buccal Cell Normal",
    "13": "EBV Immortalized Normal",
    "14": "Bone Marrow Normal",
    "15": "sample type 15",
    "16": "sample type 16",
    "20": "Control Analyte",
    "40": "Recurrent Blood Derived Cancer - Peripheral Blood",
    "50": "Cell Lines",
    "60": "Primary Xenograft Tissue",
    "61": "Cell Line Derived Xenograft Tissue",
    "99": "sample type 99",
}
#: every sample type string a GDC sample sheet may hold (anything else is a malformed sheet)
GDC_SAMPLE_TYPES: frozenset[str] = frozenset(SAMPLE_TYPE_CODES.values())

FROZEN, FFPE = "frozen", "ffpe"
#: slide section code (the letters of ``TS1``, ``DX1``) → tissue preparation
SECTION_PREPARATION: dict[str, str] = {"TS": FROZEN, "BS": FROZEN, "MS": FROZEN, "DX": FFPE}


class BarcodeError(HistcodeError, ValueError):
    """A string holds no TCGA barcode, or one with an unknown sample type code."""


@dataclass(frozen=True)
class TCGABarcode:
    """The parts of a TCGA barcode the pipeline uses."""

    patient_id: str  # TCGA-XX-XXXX
    sample_code: str  # "01", "11", ...
    vial: str  # "A", "B", ...
    portion: str | None = None  # "01"
    slide: str | None = None  # "TS1", "BS1", "DX1"

    @property
    def sample_id(self) -> str:
        """``TCGA-XX-XXXX-01A``: what GDC sample sheets call the Sample ID."""
        return f"{self.patient_id}-{self.sample_code}{self.vial}"

    @property
    def sample_type(self) -> str:
        return SAMPLE_TYPE_CODES[self.sample_code]

    @property
    def label(self) -> int | None:
        """1 tumour, 0 normal, None for any other sample type."""
        return LABELS.get(self.sample_type)

    @property
    def preparation(self) -> str | None:
        """``frozen`` (TS/BS/MS sections), ``ffpe`` (DX diagnostic slides), None when the barcode names no slide."""
        return SECTION_PREPARATION.get(self.slide[:2]) if self.slide else None


def parse_barcode(text: str) -> TCGABarcode:
    """Find and parse the first TCGA barcode in ``text`` (a barcode, file name or path).

    Raises ``BarcodeError`` when none is found or its sample code is not a GDC code.
    """
    m = BARCODE_RE.search(text)
    if m is None:
        raise BarcodeError(
            f"{text!r}: no TCGA barcode (expected e.g. TCGA-XX-XXXX-01A-01-TS1); rename the file or use a "
            "GDC sample sheet (cohort kind 'gdc')"
        )
    code = m.group("code")
    if code not in SAMPLE_TYPE_CODES:
        raise BarcodeError(
            f"{text!r}: sample type code {code!r} is not a GDC sample type code "
            f"(known: {', '.join(sorted(SAMPLE_TYPE_CODES))})"
        )
    slide = m.group("slide")
    return TCGABarcode(
        patient_id=m.group("patient").upper(),
        sample_code=code,
        vial=m.group("vial").upper(),
        portion=m.group("portion"),
        slide=slide.upper() if slide else None,
    )


def preparation_of(text: str) -> str | None:
    """``frozen``/``ffpe`` from the TCGA slide barcode in ``text`` (a slide id or file name); None when there is no
    TCGA barcode or it names no slide section (a CPTAC id, ``TCGA-XX-XXXX-01A.svs``)."""
    try:
        return parse_barcode(text).preparation
    except BarcodeError:
        return None


def site_of(text: str) -> str | None:
    """The tissue source site code of the TCGA patient barcode in ``text`` (``TCGA-<site>-<participant>``: "85" for
    TCGA-85-8276); None when ``text`` holds no TCGA patient barcode."""
    m = SITE_RE.search(text)
    return m.group("site").upper() if m else None


def patient_of(text: str) -> str:
    """The ``TCGA-XX-XXXX`` patient id of a barcode string."""
    return parse_barcode(text).patient_id


def label_of_sample_type(sample_type: str) -> int | None:
    """1 for "Primary Tumor", 0 for "Solid Tissue Normal", None for other sample types."""
    return LABELS.get(sample_type.strip())
