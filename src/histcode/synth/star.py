"""GDC STAR ``augmented_star_gene_counts.tsv`` files and the RNA GDC sample sheet.

Normalisations follow the GDC mRNA pipeline: TPM from length-normalised counts over the file's genes;
FPKM = count·1e9 / (length · reads on protein-coding genes); FPKM-UQ = count·1e9 / (length · 75th
percentile of protein-coding gene counts). The counts are unstranded; stranded columns split them
(TCGA libraries are unstranded, so each strand gets about half).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from histcode.atomic import write_text

GENE_MODEL_LINE = "# gene-model: GENCODE v36"
STAR_COLUMNS = (
    "gene_id",
    "gene_name",
    "gene_type",
    "unstranded",
    "stranded_first",
    "stranded_second",
    "tpm_unstranded",
    "fpkm_unstranded",
    "fpkm_uq_unstranded",
)
SUMMARY_ROWS = ("N_unmapped", "N_multimapping", "N_noFeature", "N_ambiguous")
SHEET_COLUMNS = (
    "File ID",
    "File Name",
    "Data Category",
    "Data Type",
    "Project ID",
    "Case ID",
    "Sample ID",
    "Sample Type",
)
STAR_SUFFIX = ".rna_seq.augmented_star_gene_counts.tsv"


def normalise(counts: np.ndarray, length_bp: np.ndarray, protein_coding: np.ndarray) -> dict[str, np.ndarray]:
    """TPM, FPKM and FPKM-UQ of unstranded ``counts`` (GDC definitions)."""
    rate = counts / length_bp
    tpm = rate / rate.sum() * 1e6
    pc_total = counts[protein_coding].sum()
    uq = np.percentile(counts[protein_coding], 75)
    return {
        "tpm_unstranded": tpm,
        "fpkm_unstranded": counts * 1e9 / (length_bp * pc_total),
        "fpkm_uq_unstranded": counts * 1e9 / (length_bp * uq),
    }


def star_table(genes: pd.DataFrame, counts: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """The STAR file's table (4 ``N_*`` rows, then one row per gene) for unstranded ``counts``."""
    first = rng.binomial(counts, 0.5)
    second = counts - first
    total = float(counts.sum())
    unmapped, multi = int(total * rng.uniform(0.03, 0.08)), int(total * rng.uniform(0.06, 0.12))
    nofeat, ambig = int(total * rng.uniform(0.05, 0.10)), int(total * rng.uniform(0.02, 0.04))
    summary = pd.DataFrame(
        {
            "gene_id": SUMMARY_ROWS,
            "gene_name": [""] * 4,
            "gene_type": [""] * 4,
            "unstranded": [unmapped, multi, nofeat, ambig],
            "stranded_first": [unmapped, multi, nofeat + int(second.sum()), ambig // 3],
            "stranded_second": [unmapped, multi, nofeat + int(first.sum()), ambig // 3],
        }
    )
    norm = normalise(
        counts.astype(float),
        genes["length_bp"].to_numpy(float),
        (genes["gene_type"] == "protein_coding").to_numpy(),
    )
    body = pd.DataFrame(
        {
            "gene_id": genes["gene_id"].to_numpy(),
            "gene_name": genes["gene_name"].to_numpy(),
            "gene_type": genes["gene_type"].to_numpy(),
            "unstranded": counts,
            "stranded_first": first,
            "stranded_second": second,
            **norm,
        }
    )
    return pd.concat([summary, body], ignore_index=True)[list(STAR_COLUMNS)]


def write_star(path: Path, table: pd.DataFrame) -> None:
    """Write a STAR table with its ``# gene-model`` line (empty cells for the ``N_*`` rows' annotations)."""
    text = table.to_csv(sep="\t", index=False, float_format="%.4f", na_rep="", lineterminator="\n")
    write_text(path, GENE_MODEL_LINE + "\n" + text)


def read_star(path: Path) -> pd.DataFrame:
    """Parse a STAR file back (gene rows only; ``N_*`` rows dropped) — for tests and evaluation."""
    df = pd.read_csv(path, sep="\t", comment="#", dtype={"gene_name": str, "gene_type": str})
    return df[~df["gene_id"].str.startswith("N_")].reset_index(drop=True)


def sample_sheet(rows: list[dict[str, str]]) -> pd.DataFrame:
    """A GDC sample sheet with the DESIGN §3 columns, in the given row order."""
    return pd.DataFrame(rows, columns=list(SHEET_COLUMNS))
