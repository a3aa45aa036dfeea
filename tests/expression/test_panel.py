"""Driver-gene panel: top-N IntOGen genes by summed MUTATIONS, markers, overlap with HistCode's list."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from histcode import resources
from histcode.expression.panel import PanelError, driver_panel, histcode_genes, histcode_overlap, intogen_ranking


def test_packaged_ranking_equals_direct_groupby() -> None:
    raw = pd.read_csv(resources.path(resources.INTOGEN_COMPENDIUM), sep="\t")
    direct = raw.groupby("SYMBOL")["MUTATIONS"].sum().reset_index()
    direct = direct.sort_values(["MUTATIONS", "SYMBOL"], ascending=[False, True])
    ranked = intogen_ranking()
    assert ranked["gene"].tolist() == direct["SYMBOL"].tolist()
    assert ranked["mutations"].tolist() == direct["MUTATIONS"].tolist()
    assert ranked["gene"].iloc[0] == "TP53" and len(ranked) == 568


def test_panel_of_200_plus_markers_and_histcode_overlap() -> None:
    markers = ["CD3D", "CD3E", "CD3G", "CD247", "CD19", "PTEN"]
    panel = driver_panel(200, markers)
    assert panel["gene"].is_unique
    assert (panel["source"].str.startswith("intogen")).sum() == 200
    assert panel.loc[panel["gene"] == "PTEN", "source"].item() == "intogen+marker"  # PTEN is a driver too
    assert panel["gene"].tolist()[200:] == ["CD3D", "CD3E", "CD3G", "CD247", "CD19"]
    hc = histcode_genes()
    assert len(hc) == 200 and hc[:3] == ["TP53", "KRAS", "PIK3CA"]
    overlap = histcode_overlap(panel)
    top200 = set(intogen_ranking().head(200)["gene"])
    assert overlap["n_shared"] == len(top200 & set(hc))
    assert overlap["n_shared"] + len(overlap["only_histcode"]) == 200
    assert panel["in_histcode"].sum() == len(set(panel["gene"]) & set(hc))


def test_hand_made_compendium_and_ties(tmp_path: Path) -> None:
    p = tmp_path / "c.tsv"
    pd.DataFrame({"SYMBOL": ["B", "A", "C", "A", "D"], "MUTATIONS": [5.0, 2.0, 5.0, 3.0, 1.0],
                  "COHORT": ["x"] * 5}).to_csv(p, sep="\t", index=False)
    panel = driver_panel(3, ["D", "Z"], intogen=p)
    # A=5, B=5, C=5 tie → alphabetical; D (rank 4) and Z (not in IntOGen) added as markers
    assert panel[["gene", "source"]].values.tolist() == [
        ["A", "intogen"], ["B", "intogen"], ["C", "intogen"], ["D", "marker"], ["Z", "marker"]]
    assert panel["rank"].tolist()[:4] == [1, 2, 3, 4] and pd.isna(panel["rank"].iloc[4])


def test_compendium_errors(tmp_path: Path) -> None:
    with pytest.raises(PanelError, match=r"not found; fix expression\.intogen"):
        intogen_ranking(tmp_path / "missing.tsv")
    bad = tmp_path / "bad.tsv"
    bad.write_text("GENE\tCOUNT\nTP53\t3\n")
    with pytest.raises(PanelError, match="needs SYMBOL and MUTATIONS"):
        intogen_ranking(bad)
    neg = tmp_path / "neg.tsv"
    neg.write_text("SYMBOL\tMUTATIONS\nTP53\t3\nKRAS\t-1\n")
    with pytest.raises(PanelError, match="line 3: MUTATIONS must be a non-negative number"):
        intogen_ranking(neg)
