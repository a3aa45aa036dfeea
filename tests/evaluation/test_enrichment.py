from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from histcode.evaluation.enrichment import hypergeometric_enrichment, read_gmt, top_predicted


def _gmt(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "sets.gmt"
    p.write_text(text)
    return p


def test_read_gmt_and_its_errors(tmp_path: Path):
    sets = read_gmt(_gmt(tmp_path, "IMMUNE\thttp://x\tCD3D\tCD19\tCD3D\n\n# comment\nCYCLE\tna\tMYC\n"))
    assert sets == {"IMMUNE": ["CD3D", "CD19"], "CYCLE": ["MYC"]}
    with pytest.raises(ValueError, match=r"sets.gmt:2: .*tab-separated"):
        read_gmt(_gmt(tmp_path, "A\td\tG1\nB d G2 G3\n"))
    with pytest.raises(ValueError, match="defined twice"):
        read_gmt(_gmt(tmp_path, "A\td\tG1\nA\td\tG2\n"))
    with pytest.raises(FileNotFoundError, match=r"evaluate_de\.gene_sets"):
        read_gmt(tmp_path / "none.gmt")


def test_hypergeometric_p_equals_scipy_and_bh_equals_statsmodels():
    universe = [f"G{i}" for i in range(50)]
    selected = ["G0", "G1", "G2", "G3", "G10", "G40", "NOT_IN_UNIVERSE"]
    sets = {"S1": ["G0", "G1", "G2", "G3", "G4", "G5", "OTHER"], "S2": [f"G{i}" for i in range(10, 30)],
            "S3": ["G49"], "S4": ["G40", "G41", "G42"]}
    table = hypergeometric_enrichment(selected, universe, sets, fdr=0.05, min_size=2).set_index("gene_set")
    assert "S3" not in table.index  # below min_size
    n_sel = 6
    for name, k, size in (("S1", 4, 6), ("S2", 1, 20), ("S4", 1, 3)):
        assert table.loc[name, "k"] == k and table.loc[name, "set_size"] == size
        assert table.loc[name, "p"] == pytest.approx(stats.hypergeom.sf(k - 1, 50, size, n_sel))
    assert table.loc["S1", "genes"] == "G0;G1;G2;G3"
    _, q, _, _ = multipletests(table["p"].to_numpy(), method="fdr_bh")
    np.testing.assert_allclose(table["q"], q)
    assert table.loc["S1", "significant"] and not table.loc["S2", "significant"]


def test_top_predicted_orders_by_positive_correlation():
    pg = pd.DataFrame({"gene": list("ABCDE"), "pearson_r": [0.2, np.nan, 0.9, -0.5, 0.2]})
    assert top_predicted(pg, 3) == ["C", "A", "E"]
