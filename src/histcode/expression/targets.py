"""Fold-change targets per (patient, gene) from matched tumour/normal expression.

fc = (tumour + pc) / (normal + pc), with pc = ``expression.pseudo_count`` (in the units of the value
column, FPKM-UQ by default; default 1, i.e. FPKM-UQ + 1) so a gene silent in the normal gives a bounded
fc instead of inf (a tiny pc such as 0.01 turns near-zero normals into huge, noise-driven fold changes),
and one silent in both gives fc = 1. Regression target: log10(fc + 1) (HistCode's transform, always ≥ 0);
binary label: |log2 fc| > ``expression.log2_threshold`` (differentially expressed, either direction).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class Targets:
    """patients × genes tables (index patient_id, columns gene symbols)."""

    log10_fc: pd.DataFrame
    log2_fc: pd.DataFrame
    labels: pd.DataFrame


def fold_change(tumour: np.ndarray, normal: np.ndarray, pseudo_count: float) -> np.ndarray:
    """Elementwise (tumour + pc) / (normal + pc); arrays of equal shape, values ≥ 0."""
    if pseudo_count <= 0:
        raise ValueError(f"expression.pseudo_count must be > 0 (got {pseudo_count}); it keeps fc finite")
    tumour = np.asarray(tumour, dtype=np.float64)
    normal = np.asarray(normal, dtype=np.float64)
    return (tumour + pseudo_count) / (normal + pseudo_count)


def build_targets(values: pd.DataFrame, pairs: pd.DataFrame, gene_ids: Mapping[str, str], *,
                  pseudo_count: float, log2_threshold: float) -> Targets:
    """Targets for every pair (``tumour_sample``/``normal_sample`` columns of ``values``) and gene.

    ``values``: genes × samples (index gene_id); ``gene_ids``: symbol → gene_id (rows of ``values``).
    """
    symbols = list(gene_ids)
    ids = [gene_ids[s] for s in symbols]
    sub = values.loc[ids]
    t = sub[pairs["tumour_sample"].astype(str).tolist()].to_numpy(dtype=np.float64).T  # (patients, genes)
    n = sub[pairs["normal_sample"].astype(str).tolist()].to_numpy(dtype=np.float64).T
    fc = fold_change(t, n, pseudo_count)
    index = pd.Index(pairs["patient_id"].astype(str).tolist(), name="patient_id")
    log2 = pd.DataFrame(np.log2(fc), index=index, columns=symbols)
    log10 = pd.DataFrame(np.log10(fc + 1.0), index=index, columns=symbols)
    l2 = log2.to_numpy()
    # a gene missing from one sample's file: that patient has no target for that gene (NA), the gene stays
    labels = pd.DataFrame(np.where(np.isfinite(l2), np.abs(l2) > log2_threshold, np.nan), index=index,
                          columns=symbols).astype("Int8")
    return Targets(log10, log2, labels)
