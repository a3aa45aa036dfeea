"""Read the de_targets outputs (DESIGN §4 ``expression/<cohort>/``) as aligned patients × genes tables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Targets:
    """log10(fc+1) and binary DE labels, both (patients × genes) with the same index and columns."""

    log10_fc: pd.DataFrame
    labels: pd.DataFrame
    genes: list[str]


def _read_matrix(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; run `dvc repro de_targets` first")
    df = pd.read_parquet(path)
    if "patient_id" in df.columns:
        df = df.set_index("patient_id")
    df.index = df.index.astype(str)
    df.index.name = "patient_id"
    df.columns = [str(c) for c in df.columns]
    if df.index.duplicated().any():
        raise ValueError(f"{path}: duplicated patient_id(s) {list(df.index[df.index.duplicated()][:5])}")
    return df


def read_targets(expression_dir: Path, genes: list[str] | None = None) -> Targets:
    """Targets for the panel genes (``panel.csv`` order; all columns when there is no panel), checked."""
    reg = _read_matrix(expression_dir / "log10_fc.parquet")
    lab = _read_matrix(expression_dir / "de_labels.parquet")
    if not reg.index.equals(lab.index) or list(reg.columns) != list(lab.columns):
        common_p = reg.index.intersection(lab.index)
        common_g = [g for g in reg.columns if g in set(lab.columns)]
        if len(common_p) == 0 or not common_g:
            raise ValueError(f"{expression_dir}: log10_fc.parquet and de_labels.parquet share no patients/genes")
        reg, lab = reg.loc[common_p, common_g], lab.loc[common_p, common_g]
    if genes is None:
        panel = expression_dir / "panel.csv"
        if panel.exists():
            listed = pd.read_csv(panel)["gene"].astype(str).tolist()
            genes = [g for g in dict.fromkeys(listed) if g in set(reg.columns)]
        else:
            genes = list(reg.columns)
    missing = [g for g in genes if g not in set(reg.columns)]
    if missing:
        raise ValueError(f"{expression_dir}/log10_fc.parquet: gene(s) {missing[:5]} not in the targets")
    if not genes:
        raise ValueError(f"{expression_dir}: no panel gene has targets; check panel.csv against log10_fc.parquet")
    reg = reg[genes].astype(np.float64)
    lab = lab[genes].astype("Float64")
    bad = reg.to_numpy()[np.isinf(reg.to_numpy())]
    if bad.size:
        raise ValueError(f"{expression_dir}/log10_fc.parquet: {bad.size} infinite value(s); fix the pseudo-count")
    return Targets(log10_fc=reg, labels=lab, genes=list(genes))
