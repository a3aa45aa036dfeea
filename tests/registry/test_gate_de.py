"""The DE promotion rule (kind ``de``): genes better than random after BH, median r, paired patient bootstrap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from histcode.registry.evidence import _check
from histcode.registry.gate import GateConfig, de_significant, decide, metric

CFG = GateConfig(bootstrap=300, seed=1, de_n_random=50)


def de_evidence(noise: float, *, n_patients: int = 40, n_genes: int = 30, n_planted: int = 12,
                seed: int = 0) -> pd.DataFrame:
    """Held-out predictions: the first ``n_planted`` genes follow a patient latent (predicted with ``noise``),
    the rest are pure noise; truth is identical for every call (seeded 123)."""
    rng = np.random.default_rng(123)
    z = rng.normal(size=(n_patients, 1))
    truth = 0.5 + 0.2 * rng.normal(size=(n_patients, n_genes))
    truth[:, :n_planted] = 0.5 + 0.3 * z + 0.05 * rng.normal(size=(n_patients, n_planted))
    guess = 0.5 + 0.2 * np.random.default_rng(seed).normal(size=truth.shape)
    guess[:, :n_planted] = 0.5 + 0.3 * z + noise * np.random.default_rng(seed + 1).normal(size=(n_patients,
                                                                                                  n_planted))
    pats = [f"P{i:03d}" for i in range(n_patients)]
    genes = [f"G{j:02d}" for j in range(n_genes)]
    rows = [{"id": f"{p}|{g}", "patient_id": p, "gene": g, "fold": i % 5, "y_true": truth[i, j],
             "y_pred": guess[i, j]} for i, p in enumerate(pats) for j, g in enumerate(genes)]
    return _check(pd.DataFrame(rows), "de", "test evidence")


def test_de_metric_is_median_pearson_over_genes() -> None:
    df = de_evidence(0.1)
    truth = df.pivot(index="patient_id", columns="gene", values="y_true")
    pred = df.pivot(index="patient_id", columns="gene", values="y_pred")
    r = [np.corrcoef(truth[g], pred[g])[0, 1] for g in truth.columns]
    assert metric(df, "de") == pytest.approx(float(np.median(r)))


def test_first_de_champion_needs_significant_genes() -> None:
    good = de_evidence(0.1)
    assert {f"G{j:02d}" for j in range(12)} >= set(de_significant(good, CFG)) and len(de_significant(good, CFG)) >= 10
    d = decide(good, "de", 5, CFG)
    assert d.promote and "no champion" in d.reason and d.details["n_genes_significant_bh"] >= 10
    sig = de_significant(good, CFG)  # the reason names them and their median r, beside the all-gene median
    assert ", ".join(sig[:8]) in d.reason and "more (their median r" in d.reason
    assert d.details["median_r_significant_genes"] > d.details["median_r_all_genes"]
    noise_only = de_evidence(0.1, n_planted=0)
    refused = decide(noise_only, "de", 5, CFG)
    assert not refused.promote and "below the absolute rule" in refused.reason
    assert refused.as_tags()["gate.decision"] == "refused" and "gate.n_genes_significant_bh" in refused.as_tags()


def test_worse_de_challenger_refused_better_promoted() -> None:
    champion = de_evidence(0.25, seed=3)
    worse = de_evidence(0.6, seed=5)
    better = de_evidence(0.05, seed=7)
    d_worse = decide(worse, "de", 1, CFG, champion)
    assert not d_worse.promote and d_worse.delta < 0 and d_worse.prob_better < 0.5
    d_better = decide(better, "de", 1, CFG, champion)
    assert d_better.promote and d_better.delta > 0 and d_better.prob_better >= 0.9
    assert "same 40 patients" in d_better.reason


def test_de_evidence_on_other_patients_is_not_comparable() -> None:
    champion = de_evidence(0.2)
    other = champion.assign(patient_id="X" + champion["patient_id"], id="X" + champion["id"])
    d = decide(other, "de", 1, CFG, champion)
    assert not d.promote and "not comparable" in d.reason


def _null(df: pd.DataFrame, n_shuffles: int = 10, seed: int = 0) -> pd.DataFrame:
    """A CV null stand-in: correlations of the truth with predictions whose patients are shuffled."""
    truth = df.pivot(index="patient_id", columns="gene", values="y_true")
    pred = df.pivot(index="patient_id", columns="gene", values="y_pred")
    rng = np.random.default_rng(seed)
    rows = []
    for b in range(n_shuffles):
        shuffled = pred.to_numpy()[rng.permutation(len(pred))]
        for j, g in enumerate(truth.columns):
            rows.append({"shuffle": b, "gene": g, "pearson_r": np.corrcoef(truth[g], shuffled[:, j])[0, 1]})
    return pd.DataFrame(rows)


def test_cv_null_gene_test_judges_with_the_versions_null_and_refuses_a_version_without_one() -> None:
    cfg = GateConfig(bootstrap=300, seed=1, de_n_random=50, de_gene_test="cv_null")
    good = de_evidence(0.1)
    sig = de_significant(good, cfg, _null(good))
    assert set(sig) <= {f"G{j:02d}" for j in range(12)} and len(sig) >= 10
    d = decide(good, "de", 5, cfg, challenger_null=_null(good))
    assert d.promote and d.details["n_genes_significant_bh"] == len(sig)
    missing = decide(good, "de", 5, cfg)
    assert not missing.promote and "challenger has no CV null" in missing.reason
    assert "promote.de_gene_test: pooled" in missing.reason
    champion, better = de_evidence(0.25, seed=3), de_evidence(0.05, seed=7)
    old_champion = decide(better, "de", 1, cfg, champion, challenger_null=_null(better))
    assert not old_champion.promote and "champion has no CV null" in old_champion.reason
    both = decide(better, "de", 1, cfg, champion, challenger_null=_null(better), champion_null=_null(champion))
    assert "no CV null" not in both.reason and both.delta > 0  # compared, each judged by its own null
    assert both.details["champion_n_genes_significant_bh"] == len(de_significant(champion, cfg, _null(champion)))
    assert both.details["n_genes_significant_bh"] == len(de_significant(better, cfg, _null(better)))


def test_overall_condition_refuses_a_few_discoveries_in_a_model_that_fails_over_all_genes() -> None:
    """``de_overall_p``: three genes pass BH, but over all genes the model is below its own shuffled-target
    null (the other genes anti-correlated, as the fold-mean term of a model that learned nothing makes them)."""
    cfg = GateConfig(bootstrap=300, seed=1, de_n_random=50, de_overall_p=0.05)
    good = de_evidence(0.1)
    d = decide(good, "de", 5, cfg, challenger_null=_null(good, 20))
    assert d.promote and d.details["cv_null_overall_p"] == pytest.approx(1 / 21)  # above all 20 null runs
    assert "vs its shuffled-target CV null" in d.reason
    few = de_evidence(0.02, n_genes=60, n_planted=3)
    truth = few.pivot(index="patient_id", columns="gene", values="y_true")
    rng = np.random.default_rng(9)
    for g in truth.columns[3:]:  # r about -0.4 on the 57 genes without signal
        rows = few["gene"] == g
        t = truth[g].loc[few.loc[rows, "patient_id"]].to_numpy()
        few.loc[rows, "y_pred"] = 0.5 - 0.4 * (t - t.mean()) / t.std() * 0.2 + 0.2 * rng.normal(size=t.size)
    assert len(de_significant(few, cfg)) >= 3
    assert decide(few, "de", 3, GateConfig(bootstrap=300, seed=1, de_n_random=50)).promote  # today's gate
    refused = decide(few, "de", 3, cfg, challenger_null=_null(few, 20))
    assert not refused.promote and "not better than its null over all genes" in refused.reason
    assert refused.details["cv_null_overall_mean_r"] < refused.details["cv_null_overall_null_mean_r"]
    missing = decide(good, "de", 5, cfg)
    assert not missing.promote and "promote.de_overall_p: null" in missing.reason
    with pytest.raises(ValueError, match="de_overall_p"):
        GateConfig(de_overall_p=0.0)
