"""Hand-made GDC RNA-seq files (STAR augmented counts, HTSeq FPKM-UQ) for expression tests."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import pytest

STAR_HEADER = ["gene_id", "gene_name", "gene_type", "unstranded", "stranded_first", "stranded_second",
               "tpm_unstranded", "fpkm_unstranded", "fpkm_uq_unstranded"]
SUMMARY = ["N_unmapped", "N_multimapping", "N_noFeature", "N_ambiguous"]
#: real GENCODE ids (versions as in v36) for the genes used in tests
GENES = {"TP53": "ENSG00000141510.18", "PIK3CA": "ENSG00000121879.6", "KRAS": "ENSG00000133703.13",
         "CD3D": "ENSG00000167286.10", "PTEN": "ENSG00000171862.11", "CD99": "ENSG00000002586.20"}


def write_star(path: Path, rows: list[tuple[str, str, float]]) -> Path:
    """STAR file with (gene_id, gene_name, fpkm_uq) rows; other value columns derived from it."""
    lines = ["# gene-model: GENCODE v36", "\t".join(STAR_HEADER)]
    lines += [f"{n}\t\t\t{100 + i}\t{50 + i}\t{50 + i}\t\t\t" for i, n in enumerate(SUMMARY)]
    for gid, name, v in rows:
        lines.append("\t".join([gid, name, "protein_coding", str(int(v * 10)), "0", str(int(v * 10)),
                                f"{v / 2:.4f}", f"{v / 3:.4f}", repr(float(v))]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_htseq(path: Path, rows: list[tuple[str, float]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(("".join(f"{g}\t{v!r}\n" for g, v in rows)).encode()))
    return path


@pytest.fixture
def star_writer() -> Callable[[Path, list[tuple[str, str, float]]], Path]:
    return write_star


@pytest.fixture
def htseq_writer() -> Callable[[Path, list[tuple[str, float]]], Path]:
    return write_htseq


@pytest.fixture
def genes() -> dict[str, str]:
    return dict(GENES)
