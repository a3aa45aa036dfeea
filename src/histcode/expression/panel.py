"""The gene panel: top-N IntOGen driver genes by summed MUTATIONS, plus marker genes.

Why this rule: HistCode predicts fold change of frequently mutated driver genes; summing the
``MUTATIONS`` column of IntOGen's Compendium over all cohorts ranks genes by how often they are hit.
Ties break alphabetically so the panel is deterministic. The overlap with HistCode's own 200-gene list
(the header of its ``sample_gene_dataset.csv``) is reported, since its exact ranking source is unstated.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from histcode import resources
from histcode.errors import HistcodeError

PANEL_COLUMNS = ["gene", "source", "rank", "mutations", "in_histcode"]


class PanelError(HistcodeError, ValueError):
    """The IntOGen compendium or HistCode gene list cannot be used."""


def intogen_ranking(path: str | Path | None = None) -> pd.DataFrame:
    """All IntOGen genes ranked by summed MUTATIONS: columns gene, mutations, rank (1 = most mutated)."""
    path = Path(path) if path is not None else resources.path(resources.INTOGEN_COMPENDIUM)
    if not path.is_file():
        raise PanelError(f"{path}: IntOGen Compendium_Cancer_Genes.tsv not found; fix expression.intogen "
                         "(null uses the packaged 2020-02-02 release)")
    try:
        df = pd.read_csv(path, sep="\t", usecols=["SYMBOL", "MUTATIONS"])
    except ValueError as exc:
        raise PanelError(f"{path}: not an IntOGen compendium ({exc}); it needs SYMBOL and MUTATIONS columns") from exc
    muts = pd.to_numeric(df["MUTATIONS"], errors="coerce")
    if muts.isna().any() or (muts < 0).any():
        bad = df.index[muts.isna() | (muts < 0)][0] + 2
        raise PanelError(f"{path}: line {bad}: MUTATIONS must be a non-negative number")
    summed = muts.groupby(df["SYMBOL"].astype(str)).sum()
    ranked = pd.DataFrame({"gene": summed.index, "mutations": summed.to_numpy()})
    ranked = ranked.sort_values(["mutations", "gene"], ascending=[False, True], kind="mergesort")
    ranked["rank"] = range(1, len(ranked) + 1)
    return ranked.reset_index(drop=True)


def histcode_genes() -> list[str]:
    """HistCode's 200 genes, in its order (the CSV header after ``slide_id``)."""
    header = pd.read_csv(resources.path(resources.HISTCODE_GENE_LIST), nrows=0).columns
    return [str(c) for c in header if c != "slide_id"]


def driver_panel(n_driver_genes: int, markers: Sequence[str] = (), *,
                 intogen: str | Path | None = None) -> pd.DataFrame:
    """Top ``n_driver_genes`` IntOGen genes, then markers not already in; columns PANEL_COLUMNS."""
    if n_driver_genes < 0:
        raise PanelError(f"expression.n_driver_genes must be >= 0 (got {n_driver_genes})")
    ranked = intogen_ranking(intogen)
    top = ranked.head(n_driver_genes)
    panel = pd.DataFrame({"gene": top["gene"], "source": "intogen", "rank": top["rank"],
                          "mutations": top["mutations"]})
    extra = []
    for m in markers:
        if m in set(panel["gene"]):
            panel.loc[panel["gene"] == m, "source"] = "intogen+marker"
        elif m not in {e["gene"] for e in extra}:
            hit = ranked[ranked["gene"] == m]
            extra.append({"gene": m, "source": "marker", "rank": int(hit["rank"].iloc[0]) if len(hit) else None,
                          "mutations": float(hit["mutations"].iloc[0]) if len(hit) else None})
    panel = pd.concat([panel, pd.DataFrame(extra, columns=panel.columns)], ignore_index=True) if extra else panel
    panel["rank"] = panel["rank"].astype("Int64")
    panel["in_histcode"] = panel["gene"].isin(histcode_genes())
    return panel[PANEL_COLUMNS].reset_index(drop=True)


def histcode_overlap(panel: pd.DataFrame) -> dict[str, object]:
    """How the IntOGen part of the panel compares with HistCode's list."""
    hc = histcode_genes()
    drivers = set(panel.loc[panel["source"].str.startswith("intogen"), "gene"])
    shared = sorted(drivers & set(hc))
    return {"n_histcode": len(hc), "n_drivers": len(drivers), "n_shared": len(shared),
            "only_panel": sorted(drivers - set(hc)), "only_histcode": sorted(set(hc) - drivers)}
