"""The expectation suites of every cohort table (inputs of DESIGN §3 and the canonical manifests)."""

from __future__ import annotations

from histcode.cohort.barcodes import GDC_SAMPLE_TYPES, LABELS, PATIENT_PATTERN, SAMPLE_PATTERN
from histcode.cohort.validation import TableSpec

GDC_COLUMNS = ("File ID", "File Name", "Data Category", "Data Type", "Project ID", "Case ID", "Sample ID",
               "Sample Type")
SLIDES_COLUMNS = ("slide_id", "path", "patient_id", "cohort", "sample_type", "label", "mpp")
RNASEQ_COLUMNS = ("sample_id", "patient_id", "cohort", "sample_type", "path", "format", "file_id")
RNA_FORMATS = ("star", "htseq_fpkm_uq")
FAILURE_COLUMNS = ("table", "row", "file", "kind", "reason")

TCGA_PATIENT_RE = rf"^{PATIENT_PATTERN}$"
TCGA_SAMPLE_RE = rf"^{SAMPLE_PATTERN}$"
_GDC_HINTS = {
    "required": "use the sample sheet the GDC portal writes (Cart → Sample Sheet), tab-separated, with columns "
    + ", ".join(GDC_COLUMNS) + " (GDC Data Portal 2 sheets: Tissue Type and Tumor Descriptor instead of Sample Type)",
    "set:Sample Type": "use GDC sample type names (e.g. 'Primary Tumor', 'Solid Tissue Normal', 'Metastatic')",
    "regex:Case ID": "Case ID must be a TCGA patient barcode TCGA-XX-XXXX",
    "regex:Sample ID": "Sample ID must be a TCGA sample barcode TCGA-XX-XXXX-01A",
    "unique:File Name": "each file must be listed once; remove the duplicate rows",
    "unique:File ID": "each GDC File ID must be listed once; remove the duplicate rows",
}


def gdc_sheet(data_type: str) -> TableSpec:
    """A GDC sample sheet (slides: ``Slide Image``; RNA-seq: ``Gene Expression Quantification``)."""
    return TableSpec(
        name=f"gdc_sample_sheet[{data_type}]",
        required=GDC_COLUMNS,
        not_null=("File ID", "File Name", "Case ID", "Sample ID", "Sample Type"),
        unique=("File ID", "File Name"),
        in_set={"Sample Type": tuple(sorted(GDC_SAMPLE_TYPES)), "Data Type": (data_type,)},
        regex={"Case ID": TCGA_PATIENT_RE, "Sample ID": TCGA_SAMPLE_RE},
        hints={**_GDC_HINTS, "set:Data Type": f"this sheet must list only '{data_type}' files; download the "
               "matching sample sheet from the GDC portal"},
    )


CPTAC_MANIFEST = TableSpec(
    name="cptac_manifest",
    required=("slide_id", "file_name", "patient_id", "label"),
    not_null=("slide_id", "file_name", "patient_id", "label"),
    unique=("slide_id", "file_name"),
    in_set={"label": ("tumor", "normal"), "preparation": ("frozen", "ffpe")},
    regex={"mpp": r"^(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$"},
    hints={"set:label": "label must be 'tumor' or 'normal' (lower case)",
           "set:preparation": "preparation must be 'frozen' or 'ffpe' (lower case) or left empty",
           "regex:mpp": "mpp must be a positive number in µm/px (e.g. 0.25) or left empty",
           "required": "the CPTAC manifest is a CSV with columns slide_id,file_name,patient_id,label [,mpp]"},
)

BARCODE_LISTING = TableSpec(
    name="barcode_file_listing",
    required=("file", "slide_id", "patient_id", "sample_id"),
    unique=("slide_id",),
    regex={"patient_id": TCGA_PATIENT_RE, "sample_id": TCGA_SAMPLE_RE},
    hints={"unique:slide_id": "two slide files share a name (without extension); keep one"},
)


def slides_manifest(*, check_files: bool, tcga: bool) -> TableSpec:
    """The canonical ``slides.csv``."""
    return TableSpec(
        name="slides.csv",
        required=SLIDES_COLUMNS,
        not_null=("slide_id", "path", "patient_id", "cohort", "sample_type", "label"),
        unique=("slide_id", "path"),
        in_set={"label": (0, 1), "sample_type": tuple(LABELS)},
        regex={"patient_id": TCGA_PATIENT_RE} if tcga else {},
        positive=("mpp",),
        files_exist=("path",) if check_files else (),
    )


def rnaseq_manifest(*, check_files: bool, tcga: bool) -> TableSpec:
    """The canonical ``rnaseq.csv`` (``file_id`` keeps one column per file when a sample has several)."""
    return TableSpec(
        name="rnaseq.csv",
        required=RNASEQ_COLUMNS[:-1],
        not_null=("sample_id", "patient_id", "sample_type", "path", "format"),
        unique=("path", "file_id"),
        in_set={"format": RNA_FORMATS, "sample_type": tuple(LABELS)},
        regex={"patient_id": TCGA_PATIENT_RE, "sample_id": TCGA_SAMPLE_RE} if tcga else {},
        files_exist=("path",) if check_files else (),
    )
