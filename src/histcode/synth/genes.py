"""Genes written to the synthetic STAR files: the driver panel, the marker genes and background genes.

The panel rule is the paper's (top-N IntOGen genes by summed ``MUTATIONS``, ties broken by symbol) so
the synthetic cohort covers exactly the genes the pipeline models. Gene ids are synthetic but in the
real versioned ``ENSG00000000000.N`` format, unique and stable across runs (derived from the symbol).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from histcode import resources

MARKERS: tuple[str, ...] = ("CD3D", "CD3E", "CD3G", "CD247", "CD19", "PTEN")
LYMPHOCYTE_GENES: tuple[str, ...] = ("CD3D", "CD3E", "CD3G", "CD247", "CD19")
# Planted driver-panel genes per morphology variable: (gene, direction of its tumour/normal change), weakest
# first (effect strength grows along each list; histcode.synth.expression). All are in the top-200 panel;
# directions alternate so the planted genes do not shift every other gene through library composition.
PLANTED_PANEL: dict[str, tuple[tuple[str, int], ...]] = {
    # down with lymphocytes: tumour-cell genes diluted by the infiltrate; up: immune genes
    "lymphocyte": (("HLA-B", 1), ("B2M", -1), ("PRKCB", -1), ("IRF4", 1), ("CARD11", -1), ("CD79B", -1)),
    "tumour": (
        ("TBX3", 1), ("MYH11", -1), ("KLF5", 1), ("CDH11", -1), ("ELF3", 1),
        ("FN1", -1), ("GATA3", 1), ("ERBB2", -1), ("FOXA1", 1), ("ESR1", -1),
    ),
    "nuclear_density": (
        ("XPO1", 1), ("FANCD2", -1), ("POLQ", 1), ("BRCA1", -1), ("CDK12", 1), ("MYCN", -1), ("EZH2", 1),
        ("CCND1", -1), ("MYC", 1),
    ),
    "necrosis": (("RHOA", 1), ("VHL", -1), ("NFKB2", 1), ("CASP8", -1), ("STAT3", 1), ("FLT4", -1), ("KDR", 1)),
}


def driver_panel(n: int = 200) -> list[str]:
    """Top-``n`` IntOGen compendium genes by summed MUTATIONS (ties: alphabetical)."""
    df = pd.read_csv(resources.path(resources.INTOGEN_COMPENDIUM), sep="\t", usecols=["SYMBOL", "MUTATIONS"])
    totals = df.groupby("SYMBOL")["MUTATIONS"].sum().reset_index()
    totals = totals.sort_values(["MUTATIONS", "SYMBOL"], ascending=[False, True], kind="stable")
    return totals["SYMBOL"].head(n).tolist()


def _compendium_rest(exclude: set[str]) -> list[str]:
    df = pd.read_csv(resources.path(resources.INTOGEN_COMPENDIUM), sep="\t", usecols=["SYMBOL"])
    return sorted(set(df["SYMBOL"]) - exclude)


def synthetic_ensg(symbols: list[str]) -> list[str]:
    """Stable, realistic-looking versioned Ensembl gene ids (``ENSG00000100000.N`` … ``ENSG00000299999.N``).

    Derived from each symbol's hash; collisions move to the next free number in list order.
    """
    taken: set[int] = set()
    ids = []
    for symbol in symbols:
        digest = int(hashlib.sha256(symbol.encode()).hexdigest(), 16)
        num = 100_000 + digest % 200_000
        while num in taken:
            num = 100_000 + (num - 99_999) % 200_000
        taken.add(num)
        ids.append(f"ENSG00000{num:06d}.{1 + (digest >> 64) % 19}")
    return ids


def gene_table(n_background: int, rng: np.random.Generator) -> pd.DataFrame:
    """All genes of a STAR file.

    Columns: ``gene_id, gene_name, gene_type, length_bp, in_panel, is_marker, base_log2_tpm``.

    Background genes are further compendium genes (protein coding), then lncRNA-style clone names
    (``AC012345.1``) as in real GENCODE files. ``base_log2_tpm`` is the normal-tissue mean expression.
    """
    panel = driver_panel(200)
    names = list(dict.fromkeys(panel + list(MARKERS)))
    rest = _compendium_rest(set(names))
    n_pc = min(len(rest), (n_background * 3) // 4)
    background = list(rng.choice(rest, size=n_pc, replace=False)) if n_pc else []
    lnc_ids = rng.choice(np.arange(10_000, 999_999), size=n_background - n_pc, replace=False)
    background += [f"{rng.choice(['AC', 'AL', 'AP'])}{i:06d}.{1 + i % 3}" for i in lnc_ids]
    all_names = names + [str(g) for g in background]
    types = ["protein_coding"] * (len(names) + n_pc) + ["lncRNA"] * (n_background - n_pc)
    n = len(all_names)
    length = np.round(np.exp(rng.normal(np.log(2600), 0.6, size=n))).clip(300, 30_000).astype(int)
    base = rng.normal(3.5, 2.0, size=n)  # log2 TPM-like scale in normal tissue
    base[np.asarray(types) == "lncRNA"] -= 2.0
    table = pd.DataFrame(
        {
            "gene_id": synthetic_ensg(all_names),
            "gene_name": all_names,
            "gene_type": types,
            "length_bp": length,
            "in_panel": [g in set(panel) for g in all_names],
            "is_marker": [g in MARKERS for g in all_names],
            "base_log2_tpm": base,
        }
    )
    # Markers are well expressed in real breast tissue; keep them out of the low-count regime and above the
    # upper quartile (so their planted changes do not move the FPKM-UQ normaliser of every other gene).
    table.loc[table["is_marker"], "base_log2_tpm"] = rng.uniform(6.5, 8.0, size=int(table["is_marker"].sum()))
    return table
