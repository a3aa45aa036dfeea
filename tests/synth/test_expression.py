"""Planted expression effects: recoverable from ~20 patients, modest, and most genes null."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from histcode.synth import SynthConfig
from histcode.synth.genes import LYMPHOCYTE_GENES, MARKERS, driver_panel, gene_table, synthetic_ensg
from histcode.synth.plan import plan_cohorts
from histcode.synth.rnaseq import simulate_rnaseq
from histcode.synth.star import normalise


def test_driver_panel_is_top200_intogen_by_mutations() -> None:
    panel = driver_panel(200)
    assert len(panel) == len(set(panel)) == 200
    assert panel[:5] == ["TP53", "PIK3CA", "KRAS", "LRP1B", "APC"]
    assert "PTEN" in panel and not set(LYMPHOCYTE_GENES) & set(panel)


def test_gene_table_ids_unique_and_realistic() -> None:
    genes = gene_table(400, np.random.default_rng(0))
    assert len(genes) == 200 + 5 + 400  # PTEN is both panel gene and marker
    assert genes["gene_id"].is_unique and genes["gene_name"].is_unique
    assert genes["gene_id"].str.fullmatch(r"ENSG00000[12]\d{5}\.\d{1,2}").all()
    assert set(MARKERS) <= set(genes["gene_name"])
    assert synthetic_ensg(["TP53", "KRAS"]) == synthetic_ensg(["TP53", "KRAS"])


def test_normalise_matches_gdc_definitions() -> None:
    counts = np.array([100.0, 0.0, 300.0, 50.0])
    length = np.array([1000.0, 2000.0, 3000.0, 500.0])
    pc = np.array([True, True, True, False])
    out = normalise(counts, length, pc)
    np.testing.assert_allclose(out["tpm_unstranded"], [1e6 / 3, 0, 1e6 / 3, 1e6 / 3])
    np.testing.assert_allclose(out["fpkm_unstranded"], counts * 1e9 / (length * 400.0))
    np.testing.assert_allclose(out["fpkm_uq_unstranded"], counts * 1e9 / (length * 200.0))


@pytest.fixture(scope="module")
def demo_rna() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Observed FPKM-UQ log2 fold changes of the demo-sized cohort (24 patients), no slides needed."""
    cfg = SynthConfig.tiny(n_patients=24, n_without_normal=3, n_genes_background=100)
    patients, _ = plan_cohorts(cfg)
    rna = simulate_rnaseq(cfg.seed, cfg.n_genes_background, patients)
    values: dict[tuple[str, str], np.ndarray] = {}
    for meta, table in rna.samples:
        values[(str(meta["Case ID"]), str(meta["Sample Type"]))] = table["fpkm_uq_unstranded"].to_numpy()[4:]
    cases = sorted({c for c, t in values if t == "Solid Tissue Normal"})
    fc = pd.DataFrame(
        [
            np.log2((values[(c, "Primary Tumor")] + 1) / (values[(c, "Solid Tissue Normal")] + 1))
            for c in cases
        ],
        index=cases,
        columns=rna.genes["gene_name"],
    )
    z = pd.DataFrame([p.__dict__ for p in patients if p.cohort == "tcga_synth"]).set_index("patient_id")
    return fc, z.loc[cases], rna.effects.set_index("gene")


def test_lymphocyte_link_recoverable_but_not_deterministic(demo_rna) -> None:
    fc, z, _ = demo_rna
    assert len(fc) == 21
    for gene in ("CD3D", "CD3E", "CD3G", "CD247"):
        r = np.corrcoef(fc[gene], np.log(z["inflamed_fraction"]))[0, 1]
        assert 0.6 < r < 0.98, (gene, r)
    # held out: fit on half the patients, predict the other half
    x, y = np.log(z["inflamed_fraction"].to_numpy()), fc["CD3D"].to_numpy()
    slope, icpt = np.polyfit(x[::2], y[::2], 1)
    assert np.corrcoef(slope * x[1::2] + icpt, y[1::2])[0, 1] > 0.5


def test_pten_down_and_null_genes_unlinked(demo_rna) -> None:
    fc, z, eff = demo_rna
    assert fc["PTEN"].median() < -1.0
    null = [g for g in eff.index[eff["effect"] == "null"] if g in fc.columns]
    assert len(null) > 0.85 * len(eff)
    r = np.array([np.corrcoef(fc[g], z["z_lymph"])[0, 1] for g in null])
    assert np.abs(np.nanmean(r)) < 0.1 and np.nanmean(np.abs(r) > 0.6) < 0.02
    assert 0.05 < (eff.loc[null, "intercept"] != 0).mean() < 0.3  # some image-independent DE genes
