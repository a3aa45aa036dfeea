"""Fixtures for cohort tests: tiny GDC sheets written in the test, the real CMU slide as a valid file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
CMU = DATA / "CMU-1-Small-Region.svs"
LUSC_SHEET = DATA / "tcga_lusc_slides_gdc_sample_sheet.2023-08-14.tsv"
GDC_HEADER = ["File ID", "File Name", "Data Category", "Data Type", "Project ID", "Case ID", "Sample ID",
              "Sample Type"]
TYPES = {"01": "Primary Tumor", "11": "Solid Tissue Normal", "06": "Metastatic", "02": "Recurrent Tumor"}


def slide_row(patient: str, code: str, vial: str = "A", slide: str = "TS1", *, file_id: str | None = None,
              sample_type: str | None = None, ext: str = ".svs") -> list[str]:
    """One GDC slide-sheet row for ``TCGA-<patient>``; sample type from the code unless given."""
    name = f"TCGA-{patient}-{code}{vial}-01-{slide}.{patient.lower()}{code}{vial}{slide}{ext}"
    return [file_id or f"fid-{patient}-{code}{vial}-{slide}", name, "Biospecimen", "Slide Image", "TCGA-LUSC",
            f"TCGA-{patient}", f"TCGA-{patient}-{code}{vial}", sample_type or TYPES[code]]


def write_tsv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n")
    return path


@pytest.fixture
def gdc_sheet(tmp_path: Path) -> Callable[..., Path]:
    """Write a GDC slide sample sheet from rows (see ``slide_row``)."""

    def make(rows: list[list[str]], header: list[str] | None = None, name: str = "sheet.tsv") -> Path:
        return write_tsv(tmp_path / name, header or GDC_HEADER, rows)

    return make


@pytest.fixture
def link_slide(distinct_copy: Callable[[Path, Path], Path]) -> Callable[[Path], Path]:
    """Make ``path`` a real slide: the OpenSlide CMU-1 test slide, a copy with bytes of its own, since ingest leaves
    out one file listed twice (``same_slide``: a link to the one file, for those tests)."""

    def make(path: Path) -> Path:
        return distinct_copy(CMU, path)

    return make


@pytest.fixture
def same_slide() -> Callable[[Path], Path]:
    """Make ``path`` a link to the CMU-1 test slide: every such path is the same file."""

    def make(path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(CMU, path)
        return path

    return make


@pytest.fixture
def sheet_row() -> Callable[..., list[str]]:
    return slide_row


@pytest.fixture
def lusc_sheet() -> Path:
    return LUSC_SHEET


@pytest.fixture
def cmu_slide() -> Path:
    return CMU
