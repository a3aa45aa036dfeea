"""The ``expression`` section of params.yaml (stage ``de_targets``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from histcode.config import DEFAULT_LOG2_THRESHOLD


@dataclass(frozen=True)
class ExpressionConfig:
    """value_column: STAR column used (FPKM-UQ, like HistCode's legacy HTSeq FPKM-UQ files).
    pseudo_count: added to tumour and normal before the ratio (value units). Default 1, i.e.
    fc = (FPKM-UQ_t + 1) / (FPKM-UQ_n + 1), the usual log-transform offset: the paper's target log10(fc + 1)
    stays bounded for genes near zero in the normal (real TCGA-BRCA CDH10: log10(fc+1) 4.67 with 0.01, 2.68
    with 1). log2_threshold: |log2 fc| above it is label 1. intogen: compendium TSV (null = packaged
    release). markers: genes added to the panel. gene_annotation: optional gene_id/gene_name table naming
    the ids of HTSeq-only cohorts.
    """

    value_column: str = "fpkm_uq_unstranded"
    pseudo_count: float = 1.0
    log2_threshold: float = DEFAULT_LOG2_THRESHOLD
    n_driver_genes: int = 200
    intogen: Path | None = None
    markers: list[str] = field(default_factory=lambda: ["CD3D", "CD3E", "CD3G", "CD247", "CD19", "PTEN"])
    gene_annotation: Path | None = None
    progress: bool = True
