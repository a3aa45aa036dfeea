"""DE statistics equal scipy / statsmodels / sklearn on fixed inputs."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score
from statsmodels.stats.multitest import multipletests

from histcode.genes.metrics import per_gene_metrics
from histcode.metrics.de_stats import (
    bh,
    columnwise_pearson,
    columnwise_spearman,
    compare_to_random,
    fold_centred,
    overall_null_test,
    permutation_pearson,
    pooled_null_pvalues,
    random_baseline,
    random_predictions,
    top_share_mean,
    wilcoxon,
)


def _ab(seed: int = 0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(25, 4))
    b = a * [1.0, -0.5, 0.0, 0.2] + rng.normal(size=(25, 4))
    b[:, 3] = np.round(b[:, 3])  # ties
    return a, b


def test_columnwise_correlations_equal_scipy_with_nans_and_constants():
    a, b = _ab()
    a[3, 0] = np.nan
    b[7, 1] = np.nan
    for j in range(4):
        ok = np.isfinite(a[:, j]) & np.isfinite(b[:, j])
        assert columnwise_pearson(a, b)[j] == pytest.approx(stats.pearsonr(a[ok, j], b[ok, j]).statistic, abs=1e-12)
        assert columnwise_spearman(a, b)[j] == pytest.approx(stats.spearmanr(a[ok, j], b[ok, j]).statistic,
                                                             abs=1e-12)
    const = np.column_stack([np.full(5, 0.1), np.arange(5.0)])
    r = columnwise_pearson(const, np.arange(10.0).reshape(5, 2))
    assert np.isnan(r[0]) and r[1] == pytest.approx(1.0)
    assert np.isnan(columnwise_pearson(np.arange(4.0).reshape(2, 2), np.ones((2, 2)))).all()  # n < 3


def test_random_predictions_stay_in_the_5_95_range_and_are_seeded():
    rng = np.random.default_rng(0)
    y = rng.lognormal(size=(200, 3)) * [1, 10, 100]
    y[5, 1] = np.nan
    lo, hi = np.nanpercentile(y, [5, 95], axis=0)
    draw = random_predictions(y, np.random.default_rng(1))
    ok = np.isfinite(y)
    assert np.isnan(draw[5, 1]) and np.isfinite(draw[ok]).all()
    assert (draw[ok] >= np.broadcast_to(lo, y.shape)[ok]).all() and (draw[ok] <= np.broadcast_to(hi, y.shape)[ok]).all()
    np.testing.assert_allclose(np.nanmean(draw, axis=0), (lo + hi) / 2, rtol=0.15)
    np.testing.assert_array_equal(draw, random_predictions(y, np.random.default_rng(1)))


def test_random_baseline_correlations_match_scipy_per_draw_and_fold():
    rng = np.random.default_rng(3)
    y = rng.normal(size=(30, 2))
    fold = np.arange(30) % 3
    base = random_baseline(y, fold, n_random=4, seed=11)
    again = np.random.default_rng(11)
    for i in range(4):
        draw = random_predictions(y, again)
        assert base.pearson[i, 1] == pytest.approx(stats.pearsonr(y[:, 1], draw[:, 1]).statistic)
        assert base.spearman[i, 0] == pytest.approx(stats.spearmanr(y[:, 0], draw[:, 0]).statistic)
        rows = fold == 2
        assert base.fold_pearson[i, 2, 0] == pytest.approx(stats.pearsonr(y[rows, 0], draw[rows, 0]).statistic)


def test_wilcoxon_and_bh_equal_scipy_and_statsmodels():
    x, y = np.array([0.5, 0.6, 0.2, np.nan, 0.9]), np.array([0.1, -0.2, 0.0, 0.3, 0.05, -0.1])
    ref = stats.ranksums(x[np.isfinite(x)], y, alternative="greater")
    assert wilcoxon(x, y, "greater") == pytest.approx((ref.statistic, ref.pvalue))
    assert all(np.isnan(wilcoxon(np.array([]), y)))
    p = np.array([0.01, 0.04, np.nan, 0.03, 0.5, 0.002])
    q, rej = bh(p, 0.05)
    ok = np.isfinite(p)
    r_rej, r_q, _, _ = multipletests(p[ok], alpha=0.05, method="fdr_bh")
    np.testing.assert_allclose(q[ok], r_q)
    np.testing.assert_array_equal(rej[ok], r_rej)
    assert np.isnan(q[2]) and not rej[2]


def _pred_frame(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(40):
        s = rng.normal()
        for g, coef in (("GOOD", 1.0), ("BAD", 0.0), ("MID", 0.4)):
            t = 0.5 + 0.2 * s + (0 if coef else rng.normal(scale=0.2))
            pred = 0.5 + 0.2 * coef * s + rng.normal(scale=0.05)
            lab = int(t > 0.55)
            rows.append({"patient_id": f"p{i}", "gene": g, "fold": i % 4, "y_true_log10fc": t,
                         "y_pred_log10fc": pred, "y_true_label": lab, "p_label": float(np.clip(pred, 0, 1))})
    return pd.DataFrame(rows)


def test_per_gene_metrics_equal_scipy_and_sklearn():
    df = _pred_frame()
    pg = per_gene_metrics(df).set_index("gene")
    for g, sub in df.groupby("gene"):
        t, p = sub["y_true_log10fc"], sub["y_pred_log10fc"]
        ref_r = stats.pearsonr(t, p)
        ref_s = stats.spearmanr(t, p)
        assert pg.loc[g, "pearson_r"] == pytest.approx(ref_r.statistic)
        assert pg.loc[g, "pearson_p"] == pytest.approx(ref_r.pvalue)
        assert pg.loc[g, "spearman_r"] == pytest.approx(ref_s.statistic)
        assert pg.loc[g, "spearman_p"] == pytest.approx(ref_s.pvalue)
        y = sub["y_true_label"].to_numpy()
        assert pg.loc[g, "accuracy"] == pytest.approx(((sub["p_label"] > 0.5).astype(int) == y).mean())
        if 0 < y.sum() < len(y):
            assert pg.loc[g, "auc"] == pytest.approx(roc_auc_score(y, sub["p_label"]))


def test_compare_to_random_per_gene_wilcoxon_and_bh():
    df = _pred_frame(1)
    table, overall, base = compare_to_random(df, n_random=20, seed=5, alternative="greater", fdr=0.05)
    truth = df.pivot(index="patient_id", columns="gene", values="y_true_log10fc")[["GOOD", "BAD", "MID"]]
    guess = df.pivot(index="patient_id", columns="gene", values="y_pred_log10fc")[["GOOD", "BAD", "MID"]]
    fold = df.groupby("patient_id")["fold"].first().loc[truth.index].to_numpy()
    ref_base = random_baseline(truth.to_numpy(), fold, 20, 5)
    np.testing.assert_allclose(base.pearson, ref_base.pearson)
    ps = []
    for j, g in enumerate(truth.columns):
        model_fold = [stats.pearsonr(truth[g][fold == k], guess[g][fold == k]).statistic for k in range(4)]
        ref = stats.ranksums(model_fold, ref_base.fold_pearson[:, :, j].ravel(), alternative="greater")
        row = table.set_index("gene").loc[g]
        assert row["wilcoxon_p"] == pytest.approx(ref.pvalue) and row["wilcoxon_stat"] == pytest.approx(ref.statistic)
        ps.append(ref.pvalue)
    _, q, _, _ = multipletests(ps, method="fdr_bh")
    np.testing.assert_allclose(table["wilcoxon_q"], q)
    pooled = [stats.pearsonr(truth[g], guess[g]).statistic for g in truth.columns]
    ref_all = stats.ranksums(pooled, ref_base.pearson.ravel(), alternative="greater")
    assert overall["wilcoxon_p"] == pytest.approx(ref_all.pvalue)
    sig = table.set_index("gene")["significant"]
    assert sig["GOOD"] and not sig["BAD"]


def test_pooled_permutation_test_against_a_brute_force_loop_and_marks_significance():
    df = _pred_frame(1)
    table, overall, _ = compare_to_random(df, n_random=20, seed=5, alternative="greater", fdr=0.05,
                                          n_permutations=300)
    truth = df.pivot(index="patient_id", columns="gene", values="y_true_log10fc")[list(table["gene"])]
    guess = df.pivot(index="patient_id", columns="gene", values="y_pred_log10fc")[list(table["gene"])]
    rng, ref = np.random.default_rng(5), []
    perms = [rng.permutation(len(guess)) for _ in range(300)]
    for g in table["gene"]:
        obs = stats.pearsonr(truth[g], guess[g]).statistic
        hits = sum(stats.pearsonr(truth[g].to_numpy(), guess[g].to_numpy()[pm]).statistic >= obs - 1e-12
                   for pm in perms)
        ref.append((1 + hits) / 301)
    np.testing.assert_allclose(table["permutation_p"], ref)
    np.testing.assert_allclose(table["permutation_q"], multipletests(ref, method="fdr_bh")[1])
    np.testing.assert_array_equal(table["significant"], table["permutation_q"] <= 0.05)
    folds, _, _ = compare_to_random(df, n_random=20, seed=5, alternative="greater", fdr=0.05, gene_test="folds",
                                    n_permutations=300)
    np.testing.assert_array_equal(folds["significant"], folds["wilcoxon_q"] <= 0.05)
    assert overall["n_genes_significant_bh"] == overall["n_genes_significant_bh_pooled"]
    two = permutation_pearson(truth.to_numpy(), guess.to_numpy(), 300, 5, "two-sided")
    positive = table["pearson_r_pooled"].to_numpy() > 0  # |r_perm| >= r_obs counts every r_perm >= r_obs
    assert positive.any() and (two[positive] >= table["permutation_p"].to_numpy()[positive] - 1e-12).all()
    with pytest.raises(ValueError, match="gene_test"):
        compare_to_random(df, n_random=2, seed=5, alternative="greater", fdr=0.05, gene_test="nope")


def test_pooled_test_holds_its_level_where_the_t_test_does_not_and_the_fold_test_cannot_reject():
    """Predictions independent of the truth: the permutation p rejects at the nominal rate even when one patient
    carries an extreme fold change and an extreme prediction (there the Student t test of r rejects far more
    often). At 21 patients in 5 folds the per-fold Wilcoxon's smallest attainable p (all folds above every
    random draw) is ~6e-5, and with 1e4 permutations a gene whose pooled r is 0.75 reaches p < 1e-3."""
    rng = np.random.default_rng(3)
    n, g = 13, 2000
    y = rng.standard_normal((n, g))
    yhat = rng.standard_normal((n, g))
    cols = np.arange(g)
    y[rng.integers(0, n, g), cols] += 8.0  # per gene one patient with an extreme fold change, and one
    yhat[rng.integers(0, n, g), cols] += 8.0  # (drawn independently) with an extreme prediction
    r = columnwise_pearson(y, yhat)
    t_p = stats.t.sf(r * np.sqrt((n - 2) / (1 - r * r)), n - 2)
    perm_p = permutation_pearson(y, yhat, 2000, 1)
    assert (t_p < 0.05).mean() > 0.075  # the t test: every chance alignment of the two extremes "significant"
    assert (perm_p < 0.05).mean() < 0.05 + 0.012  # the permutation test keeps its level
    y2, yh2 = rng.standard_normal((21, g)), rng.standard_normal((21, g))
    p2 = permutation_pearson(y2, yh2, 2000, 2)
    assert abs((p2 < 0.05).mean() - 0.05) < 0.025
    best = stats.ranksums(np.full(5, 0.99), rng.uniform(-0.9, 0.9, 500), alternative="greater").pvalue
    assert 4e-5 < best < 8e-5
    a, b = _pair(0.75, 21)
    assert permutation_pearson(a[:, None], b[:, None], 10_000, 0)[0] < 1e-3


def _pair(r: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Two length-n vectors whose sample Pearson correlation is exactly r."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(n), rng.standard_normal(n)
    a = (a - a.mean()) / a.std()
    b = b - b.mean() - (b @ a / n) * a
    b /= b.std()
    return a, r * a + np.sqrt(1 - r * r) * b


def test_cv_null_p_values_pool_the_null_over_genes_as_a_brute_force_count():
    """p = (1 + #null at least as extreme, over every shuffle and gene) / (1 + #null); NaN nulls are skipped."""
    rng = np.random.default_rng(4)
    null = rng.uniform(-0.9, 0.9, (7, 5))
    null[2, 3] = np.nan
    obs = np.array([0.95, 0.1, -0.5, np.nan, null[0, 0]])
    flat = null[np.isfinite(null)]
    for alt, hit in (("greater", lambda o: flat >= o), ("less", lambda o: flat <= o),
                     ("two-sided", lambda o: np.abs(flat) >= abs(o))):
        want = [(1 + hit(o).sum()) / (1 + flat.size) if np.isfinite(o) else np.nan for o in obs]
        np.testing.assert_allclose(pooled_null_pvalues(obs, null, alt), want)
    assert pooled_null_pvalues(obs, null)[0] == pytest.approx(1 / 35)  # above every null value: the smallest p
    with pytest.raises(ValueError, match="no finite"):
        pooled_null_pvalues(obs, np.full((2, 2), np.nan))


def test_compare_to_random_cv_null_test_needs_the_null_and_marks_significance_by_it():
    df = _pred_frame(1)
    with pytest.raises(ValueError, match="null_shuffles"):
        compare_to_random(df, n_random=5, seed=5, alternative="greater", fdr=0.05, gene_test="cv_null")
    genes = list(dict.fromkeys(df["gene"]))
    rng = np.random.default_rng(0)
    null = pd.DataFrame([{"shuffle": b, "gene": g, "pearson_r": rng.uniform(-0.5, 0.5)} for b in range(20)
                         for g in genes])
    table, overall, _ = compare_to_random(df, n_random=5, seed=5, alternative="greater", fdr=0.05,
                                          gene_test="cv_null", n_permutations=200, cv_null=null)
    want = pooled_null_pvalues(table["pearson_r_pooled"].to_numpy(),
                               null.pivot(index="shuffle", columns="gene", values="pearson_r")[genes].to_numpy())
    np.testing.assert_allclose(table["cv_null_p"], want)
    np.testing.assert_allclose(table["cv_null_q"], multipletests(want, method="fdr_bh")[1])
    np.testing.assert_array_equal(table["significant"], table["cv_null_q"] <= 0.05)
    assert overall["n_genes_significant_bh"] == overall["n_genes_significant_bh_cv_null"] == table["significant"].sum()
    assert overall["cv_null_overall_p"] == overall_null_test(table["pearson_r_pooled"].to_numpy(),
                                                             null.pivot(index="shuffle", columns="gene",
                                                                        values="pearson_r")[genes].to_numpy()
                                                             )["cv_null_overall_p"]
    with pytest.raises(ValueError, match="lacks 1 evaluated genes"):
        compare_to_random(df, n_random=5, seed=5, alternative="greater", fdr=0.05, gene_test="cv_null",
                          cv_null=null[null["gene"] != genes[0]])


def test_permutation_p_values_equal_one_full_correlation_per_permutation() -> None:
    """The blocked dot-product path gives the p-values of the per-permutation computation it replaced
    (same permutations in the same order), for every alternative, with ties, a constant column and NaNs."""
    from histcode.metrics.de_stats import columnwise_pearson

    def reference(y: np.ndarray, yhat: np.ndarray, b: int, seed: int, alternative: str) -> np.ndarray:
        obs = columnwise_pearson(y, yhat)
        rng = np.random.default_rng(seed)
        hits = np.zeros(obs.shape)
        for _ in range(b):
            r = columnwise_pearson(y, yhat[rng.permutation(len(yhat))])
            with np.errstate(invalid="ignore"):
                hits += {"greater": r >= obs - 1e-12, "less": r <= obs + 1e-12,
                         "two-sided": np.abs(r) >= np.abs(obs) - 1e-12}[alternative]
        return np.where(np.isfinite(obs), (1.0 + hits) / (1.0 + b), np.nan)

    rng = np.random.default_rng(3)
    y = rng.normal(size=(21, 40))
    yhat = 0.4 * y + rng.normal(size=(21, 40))
    yhat[:, 5] = np.round(yhat[:, 5])  # ties
    yhat[:, 7] = 1.0  # constant: NaN
    for alternative in ("greater", "less", "two-sided"):
        fast = permutation_pearson(y, yhat, 1500, 9, alternative)  # > one block of 512
        np.testing.assert_array_equal(fast, reference(y, yhat, 1500, 9, alternative))
    assert np.isnan(fast[7]) and np.isfinite(np.delete(fast, 7)).all()
    y_nan = y.copy()
    y_nan[2, 3] = np.nan  # missing values take the per-permutation path
    np.testing.assert_array_equal(permutation_pearson(y_nan, yhat, 300, 4), reference(y_nan, yhat, 300, 4, "greater"))


def test_overall_null_test_counts_null_runs_by_their_mean_r() -> None:
    null = np.array([[0.1, 0.3], [-0.2, 0.0], [0.0, np.nan], [0.4, 0.4]])  # run means 0.2, -0.1, 0.0, 0.4
    out = overall_null_test(np.array([0.1, 0.3, np.nan]), null)  # observed mean 0.2
    assert out["cv_null_overall_mean_r"] == pytest.approx(0.2)
    assert out["cv_null_overall_p"] == pytest.approx((1 + 2) / (1 + 4))  # 0.2 and 0.4 reach it
    means = np.array([0.2, -0.1, 0.0, 0.4])
    assert out["cv_null_overall_z"] == pytest.approx((0.2 - means.mean()) / means.std(ddof=1))
    with pytest.raises(ValueError, match="at least 2 runs"):
        overall_null_test(np.array([0.1]), np.array([[0.3]]))


def test_overall_null_test_holds_its_level_where_the_rank_sum_over_genes_does_not() -> None:
    """Where nothing is predicted, a multi-task model's gene correlations share a run-level shift (one fit for
    all genes). The rank-sum of 200 such r against independent random r treats them as 200 independent genes
    and rejects far above 5 %; the mean r against the model's own CV null runs (the same kind of runs) holds 5 %."""
    rng = np.random.default_rng(11)

    def run(n: int) -> np.ndarray:  # n runs x 200 genes: a shared shift per run plus gene noise
        return rng.normal(0, 0.08, (n, 1)) + rng.normal(0, 0.2, (n, 200))

    random_r = rng.normal(0, 0.2, (50, 200))
    rank_sum = overall = 0
    trials = 300
    for _ in range(trials):
        obs, null = run(1)[0], run(20)
        rank_sum += wilcoxon(obs, random_r, "greater")[1] < 0.05
        overall += overall_null_test(obs, null)["cv_null_overall_p"] < 0.05
    assert rank_sum / trials > 0.25
    assert overall / trials <= 0.08


def test_top_share_mean_takes_the_k_highest_finite_correlations() -> None:
    r = np.array([[0.9, np.nan, 0.1, 0.5, -0.3], [0.2, 0.2, np.nan, np.nan, np.nan]])
    np.testing.assert_allclose(top_share_mean(r, 2), [0.7, 0.2])
    assert np.isnan(top_share_mean(r, 3)[1])  # two finite values cannot fill a top 3
    assert top_share_mean(np.array([0.4, -1.0, 0.0]), 1) == pytest.approx(0.4)


def test_overall_top_decile_counts_null_runs_by_their_top_mean() -> None:
    obs = np.r_[0.6, 0.5, np.zeros(18)]  # 20 finite genes -> k 2, observed top mean 0.55
    null = np.zeros((4, 20))
    null[0, :2] = [0.7, 0.5]  # top mean 0.60 >= 0.55
    null[1, :2] = [0.55, 0.55]  # 0.55 reaches it (ties count)
    null[2, :2] = [0.9, 0.1]  # 0.50
    out = overall_null_test(obs, null)
    assert out["cv_null_overall_top_k"] == 2 and out["cv_null_overall_top_mean_r"] == pytest.approx(0.55)
    assert out["cv_null_overall_top_p"] == pytest.approx((1 + 2) / (1 + 4))
    tops = np.array([0.6, 0.55, 0.5, 0.0])
    assert out["cv_null_overall_top_null_mean_r"] == pytest.approx(tops.mean())
    assert out["cv_null_overall_top_z"] == pytest.approx((0.55 - tops.mean()) / tops.std(ddof=1))


def test_overall_top_decile_holds_its_level_and_finds_a_sparse_signal_the_mean_misses() -> None:
    """Under the null (shared run-level shift, as a multi-task fit) the top-decile test rejects at about its
    level; with 20 of 200 genes predicted at r ~0.45 and the rest at chance, it rejects far more often than
    the mean over all genes, which the 180 null genes dilute."""
    rng = np.random.default_rng(12)

    def run(n: int) -> np.ndarray:
        return rng.normal(0, 0.03, (n, 1)) + rng.normal(0, 0.22, (n, 200))

    trials = 300
    level = mean_power = top_power = 0
    for _ in range(trials):
        null = run(40)
        level += overall_null_test(run(1)[0], null)["cv_null_overall_top_p"] < 0.05
        obs = run(1)[0]
        obs[:20] = rng.normal(0.45, 0.15, 20)
        out = overall_null_test(obs, null)
        mean_power += out["cv_null_overall_p"] < 0.05
        top_power += out["cv_null_overall_top_p"] < 0.05
    assert level / trials <= 0.08
    assert top_power / trials >= 0.9 and top_power > 1.5 * mean_power


def test_fold_centred_subtracts_each_fold_s_training_mean() -> None:
    y = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [6.0, 60.0]])
    pred = np.array([[0.5, 5.0], [0.5, 5.0], [0.5, 5.0], [0.5, 5.0]])
    fold = np.array([0, 0, 1, 1])
    want = pred - np.array([[4.5, 45.0], [4.5, 45.0], [1.5, 15.0], [1.5, 15.0]])
    np.testing.assert_allclose(fold_centred(y, pred, fold), want)
    # a model that only predicts its training mean is anti-correlated with the held-out values
    trained_mean = np.array([[4.5], [4.5], [1.5], [1.5]])
    assert columnwise_pearson(y[:, :1], trained_mean)[0] < -0.8
    with pytest.raises(ValueError, match="fold_centred needs"):
        fold_centred(y, pred[:, :1], fold)
