"""Pairing and fold-change targets from hand-made files equal a direct NumPy computation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from histcode.expression.build import TargetsError, make_de_targets, write_de_targets
from histcode.expression.config import ExpressionConfig
from histcode.expression.pairing import pair_samples
from histcode.expression.targets import fold_change

PANEL = ["TP53", "PIK3CA", "KRAS", "CD3D", "PTEN"]


def _compendium(path: Path) -> Path:
    rows = [("TP53", 60), ("TP53", 40), ("PIK3CA", 80), ("KRAS", 70), ("APC", 1)]
    pd.DataFrame(rows, columns=["SYMBOL", "MUTATIONS"]).assign(COHORT="X").to_csv(path, sep="\t", index=False)
    return path


@pytest.fixture
def cohort(tmp_path: Path, star_writer, genes) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Six patients covering every pairing case; returns the manifest and the written FPKM-UQ values."""
    rng = np.random.default_rng(7)
    values: dict[str, np.ndarray] = {}
    rows = []

    def add(fid: str, patient: str, code: str, *, drop: str | None = None, broken: bool = False) -> None:
        v = np.round(rng.gamma(1.0, 20.0, size=len(PANEL)), 4)
        v[rng.random(len(PANEL)) < 0.15] = 0.0  # silent genes exercise the pseudo-count
        values[fid] = v
        path = tmp_path / "rna" / fid / f"{fid}.rna_seq.augmented_star_gene_counts.tsv"
        star_writer(path, [(genes[g], g, float(x)) for g, x in zip(PANEL, v, strict=True) if g != drop])
        if broken:
            path.write_text("not a STAR file\n")
        st = "Primary Tumor" if code.startswith("01") else "Solid Tissue Normal"
        rows.append({"sample_id": f"TCGA-AA-{patient}-{code}", "patient_id": f"TCGA-AA-{patient}", "cohort": "c",
                     "sample_type": st, "path": str(path), "format": "star", "file_id": fid})

    add("f1", "0001", "01A")
    add("f2", "0001", "11A")
    add("f3", "0002", "01B")
    add("f4", "0002", "01A")
    add("f6", "0002", "11B")
    add("f5", "0002", "11A")
    add("f7", "0003", "01A")  # tumour only
    add("f8", "0004", "11A")  # normal only
    add("f9", "0005", "01A")
    add("fa", "0005", "11A", broken=True)  # its only normal cannot be read
    add("fb", "0006", "01A", broken=True)  # falls back to vial B
    add("fc", "0006", "01B")
    add("fd", "0006", "11A", drop="KRAS")  # KRAS missing in one paired sample
    return pd.DataFrame(rows), values


def test_pairing_rules(cohort) -> None:
    manifest, _ = cohort
    p = pair_samples(manifest, unreadable={"fa": "bad file", "fb": "bad file"})
    pairs = p.pairs.set_index("patient_id")
    assert pairs.index.tolist() == ["TCGA-AA-0001", "TCGA-AA-0002", "TCGA-AA-0006"]
    assert pairs.loc["TCGA-AA-0002", ["tumour_sample", "normal_sample"]].tolist() == ["f4", "f5"]
    assert "2 tumour files (TCGA-AA-0002-01A, TCGA-AA-0002-01B)" in pairs.loc["TCGA-AA-0002", "reason"]
    assert pairs.loc["TCGA-AA-0006", "tumour_sample"] == "fc"
    assert "skipped unreadable tumour file(s) ['fb']" in pairs.loc["TCGA-AA-0006", "reason"]
    excl = p.excluded.set_index("patient_id")["reason"].to_dict()
    assert excl == {"TCGA-AA-0003": "no Solid Tissue Normal RNA-seq sample",
                    "TCGA-AA-0004": "no Primary Tumor RNA-seq sample",
                    "TCGA-AA-0005": "no readable normal RNA-seq file (fa: bad file)"}
    # order of manifest rows does not change the choice
    again = pair_samples(manifest.iloc[::-1], unreadable={"fa": "bad file", "fb": "bad file"})
    pd.testing.assert_frame_equal(again.pairs, p.pairs)


def test_fold_changes_from_files_equal_direct_computation(tmp_path: Path, cohort) -> None:
    manifest, values = cohort
    cfg = ExpressionConfig(n_driver_genes=3, markers=["CD3D", "PTEN", "NOTAGENE"], pseudo_count=0.5,
                           log2_threshold=1.5, intogen=_compendium(tmp_path / "comp.tsv"), progress=False)
    res = make_de_targets(manifest, cfg)
    assert res.pairing.excluded["patient_id"].tolist() == ["TCGA-AA-0003", "TCGA-AA-0004", "TCGA-AA-0005"]
    status = res.panel.set_index("gene")["status"].to_dict()
    assert status == {"TP53": "ok", "PIK3CA": "ok", "KRAS": "ok, missing in 1 of 6 paired samples (those pairs "
                      "excluded for this gene)", "CD3D": "ok", "PTEN": "ok",
                      "NOTAGENE": "not found in the expression files"}
    # KRAS is kept (issue 16: only the pair whose file lacks it loses it); the rest compared exactly below
    assert res.targets.log10_fc.columns.tolist() == ["TP53", "PIK3CA", "KRAS", "CD3D", "PTEN"]
    kras = res.targets.log10_fc["KRAS"]
    assert kras.isna().sum() == 1 and res.targets.labels["KRAS"].isna().sum() == 1
    kept = ["TP53", "PIK3CA", "CD3D", "PTEN"]
    res.targets.log10_fc, res.targets.log2_fc, res.targets.labels = (
        t[kept] for t in (res.targets.log10_fc, res.targets.log2_fc, res.targets.labels))
    cols = [PANEL.index(g) for g in kept]
    pairs = {"TCGA-AA-0001": ("f1", "f2"), "TCGA-AA-0002": ("f4", "f5"), "TCGA-AA-0006": ("fc", "fd")}
    t = np.stack([values[a][cols] for a, _ in pairs.values()])
    n = np.stack([values[b][cols] for _, b in pairs.values()])
    fc = (t + 0.5) / (n + 0.5)
    assert res.targets.log10_fc.index.tolist() == list(pairs)
    np.testing.assert_allclose(res.targets.log10_fc.to_numpy(), np.log10(fc + 1), rtol=1e-6)
    np.testing.assert_allclose(res.targets.log2_fc.to_numpy(), np.log2(fc), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(res.targets.labels.to_numpy(dtype=int), (np.abs(np.log2(fc)) > 1.5).astype(int))
    assert res.metrics["pairs"] == 3 and res.metrics["files_unreadable"] == 2
    assert res.metrics["target_genes"] == 5 and res.metrics["panel_genes_missing"] == 1

    paths = write_de_targets(res, tmp_path / "out")
    pd.testing.assert_frame_equal(pd.read_parquet(paths["log10_fc"]), res.targets.log10_fc)
    assert pd.read_parquet(paths["labels"]).index.name == "patient_id"
    assert pd.read_csv(paths["excluded"])["patient_id"].tolist() == ["TCGA-AA-0003", "TCGA-AA-0004",
                                                                     "TCGA-AA-0005"]
    assert set(pd.read_csv(paths["panel"])["status"]) >= {"ok", "not found in the expression files"}


def test_fold_change_formula_and_pseudo_count() -> None:
    t, n = np.array([0.0, 10.0, 0.0]), np.array([0.0, 0.0, 10.0])
    np.testing.assert_allclose(fold_change(t, n, 0.01), [1.0, 10.01 / 0.01, 0.01 / 10.01])
    with pytest.raises(ValueError, match="pseudo_count must be > 0"):
        fold_change(t, n, 0.0)


def test_no_pairs_is_a_clear_error(tmp_path: Path, cohort) -> None:
    manifest, _ = cohort
    tumours = manifest[manifest["sample_type"] == "Primary Tumor"]
    with pytest.raises(TargetsError, match="no matched tumour/normal RNA-seq pairs among 5 patients") as err:
        make_de_targets(tumours, ExpressionConfig(progress=False))
    assert len(err.value.pairing.excluded) == 5
