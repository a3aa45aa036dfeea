"""Gene-set enrichment of the best-predicted genes: one-sided hypergeometric test per set, BH across sets.

For universe size N (the evaluated genes), K genes of a set in the universe, n selected genes and k of them
in the set, p = P(X >= k) with X ~ Hypergeom(N, K, n) = ``scipy.stats.hypergeom.sf(k - 1, N, K, n)``.
Gene sets come from a GMT file (name, description, genes... tab-separated; MSigDB's format).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from histcode.metrics.de_stats import bh


def read_gmt(path: str | Path) -> dict[str, list[str]]:
    """{set name: genes} from a GMT file; clear errors for missing files, short lines and duplicate names."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: gene-set file not found; set evaluate_de.gene_sets to a GMT file or null")
    sets: dict[str, list[str]] = {}
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.rstrip("\n\r").split("\t")
        if len(fields) < 3:
            raise ValueError(f"{path}:{i}: a GMT line needs name<TAB>description<TAB>gene..., got {len(fields)} "
                             "field(s); is the file tab-separated?")
        name = fields[0].strip()
        if name in sets:
            raise ValueError(f"{path}:{i}: gene set {name!r} defined twice")
        sets[name] = list(dict.fromkeys(g.strip() for g in fields[2:] if g.strip()))
    if not sets:
        raise ValueError(f"{path}: no gene sets found")
    return sets


def hypergeometric_enrichment(selected: Iterable[str], universe: Iterable[str], gene_sets: Mapping[str, list[str]],
                              *, fdr: float = 0.05, min_size: int = 2) -> pd.DataFrame:
    """One row per gene set with >= ``min_size`` universe genes: overlap k, set size K, n, N, p, BH q."""
    uni = set(universe)
    sel = set(selected) & uni
    n_uni, n_sel = len(uni), len(sel)
    rows = []
    for name, genes in gene_sets.items():
        members = set(genes) & uni
        if len(members) < min_size:
            continue
        hits = sorted(members & sel)
        k = len(hits)
        p = float(stats.hypergeom.sf(k - 1, n_uni, len(members), n_sel)) if n_sel else 1.0
        expected = n_sel * len(members) / n_uni if n_uni else np.nan
        rows.append({"gene_set": name, "k": k, "set_size": len(members), "n_selected": n_sel, "n_universe": n_uni,
                     "expected": expected, "fold_enrichment": k / expected if expected else np.nan,
                     "p": p, "genes": ";".join(hits)})
    cols = ["gene_set", "k", "set_size", "n_selected", "n_universe", "expected", "fold_enrichment", "p", "genes"]
    table = pd.DataFrame.from_records(rows, columns=cols)
    q, rej = bh(table["p"].to_numpy(dtype=np.float64), fdr)
    table["q"], table["significant"] = q, rej
    return table.sort_values(["p", "gene_set"], kind="stable").reset_index(drop=True)


def top_predicted(per_gene: pd.DataFrame, n: int, column: str = "pearson_r") -> list[str]:
    """The ``n`` genes with the highest positive held-out correlation (ties: gene name)."""
    df = per_gene[np.isfinite(per_gene[column].to_numpy(dtype=np.float64)) & (per_gene[column] > 0)]
    df = df.sort_values([column, "gene"], ascending=[False, True], kind="stable")
    return df["gene"].head(n).tolist()
