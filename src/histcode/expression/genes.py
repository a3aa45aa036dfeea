"""Gene symbols (the panel) → Ensembl ids (the matrix rows), deterministically.

Why: GENCODE names are not unique: PAR_Y copies share the X gene's name and a few symbols map to several
ids. The rule, recorded per gene in ``gene_map.csv``: prefer ids without ``_PAR_Y``, then the id with the
highest mean expression across samples (the one that carries signal), then the smallest id.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from histcode.expression.readers import ENSG_RE, ExpressionFileError, strip_version

PAR_Y = "_PAR_Y"


def read_gene_annotation(path: str | Path) -> pd.Series:
    """A TSV/CSV with ``gene_id`` and ``gene_name`` columns → Series gene_id (unversioned) → name."""
    path = Path(path)
    if not path.is_file():
        raise ExpressionFileError(f"{path}: gene annotation not found; fix expression.gene_annotation")
    df = pd.read_csv(path, sep=None, engine="python", dtype=str)
    missing = [c for c in ("gene_id", "gene_name") if c not in df.columns]
    if missing:
        raise ExpressionFileError(f"{path}: gene annotation lacks column(s) {missing}; it needs gene_id, gene_name")
    df = df.dropna(subset=["gene_id", "gene_name"])
    df = df[df["gene_id"].str.match(ENSG_RE.pattern)]
    ids = df["gene_id"].map(strip_version)
    out = pd.Series(df["gene_name"].to_numpy(), index=pd.Index(ids.to_numpy(), name="gene_id"), name="gene_name")
    return out[~out.index.duplicated(keep="first")].sort_index()


def map_symbols(symbols: Sequence[str], gene_names: pd.Series, values: pd.DataFrame) -> pd.DataFrame:
    """One row per symbol: ``gene, gene_id`` (missing when absent), ``n_ids`` and the ``rule`` applied.

    ``gene_names``: gene_id → symbol; ``values``: genes × samples (for the expression tie-break). A
    symbol that is itself an Ensembl id present in ``values`` maps to itself.
    """
    present = gene_names[gene_names.index.isin(values.index)]
    by_name: dict[str, list[str]] = {}
    for gid, name in present.items():
        by_name.setdefault(str(name), []).append(str(gid))
    mean = values.mean(axis=1, skipna=True)
    rows = []
    for sym in symbols:
        ids = sorted(by_name.get(sym, []))
        if not ids and ENSG_RE.match(sym) and strip_version(sym) in values.index:
            ids = [strip_version(sym)]
        if not ids:
            rows.append({"gene": sym, "gene_id": None, "n_ids": 0, "rule": "not found in the expression files"})
            continue
        if len(ids) == 1:
            rows.append({"gene": sym, "gene_id": ids[0], "n_ids": 1, "rule": "unique"})
            continue
        core = [g for g in ids if not g.endswith(PAR_Y)] or ids
        best = min(core, key=lambda g: (-np.nan_to_num(float(mean.get(g, np.nan)), nan=-np.inf), g))
        rows.append({"gene": sym, "gene_id": best, "n_ids": len(ids),
                     "rule": f"{len(ids)} ids share this name ({', '.join(ids)}); chose non-PAR_Y, highest mean "
                             "expression, then smallest id"})
    return pd.DataFrame(rows, columns=["gene", "gene_id", "n_ids", "rule"])
