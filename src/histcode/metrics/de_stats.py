"""Per-gene DE statistics against a random baseline (issue 6 §5).

- Held-out correlations: each gene's Pearson/Spearman over all patients' held-out predictions (pooled over
  folds) and Pearson within each fold.
- Random baseline: predictions drawn uniformly within the 5–95 % range of the gene's real values, ``n_random``
  seeded draws; their correlations with the truth are computed exactly like the model's.
- Overall test: Wilcoxon rank-sum of the G pooled model correlations vs the G × n_random random ones.
- Overall, calibrated (with a shuffled-target CV null): the mean r over genes, and the mean of the top tenth,
  each against the same statistic in every null run (``overall_null_test``).
- Per gene, two tests, Benjamini–Hochberg across genes (``gene_test`` chooses which one marks a gene
  significant):
  - ``pooled`` (default): the gene's pooled held-out Pearson r over all n patients against a permutation null:
    the model's own predictions shuffled across patients (``n_permutations``, the same permutations for every
    gene), i.e. a random prediction with the model's distribution of values. Unlike the Student-t test of r,
    it holds when a few patients carry extreme fold changes and predictions (at 13 patients the t test called a
    null gene at r 0.88 significant, p 3e-5, on a development cohort).
  - ``cv_null``: the gene's pooled held-out r against the method's own cross-validation re-run on targets
    shuffled across patients (``histcode.genes.null``: B shuffles of the patients' target rows, every gene at
    once), the null correlations pooled over genes as in SAM (Tusher et al. 2001): p = (1 + #{(b, g'):
    r_null[b, g'] >= r}) / (1 + B·G). The held-out predictions of a cross-validation are not exchangeable
    across patients (each was fit on the other folds' targets), which makes ``pooled`` liberal at ~13
    patients; this null carries that dependence.
  - ``folds``: Wilcoxon rank-sum of the gene's K per-fold correlations vs its K × n_random per-fold random
    correlations (same patients, same sample size per correlation). With K = 5 folds its smallest attainable
    p is ~6e-5, reached only when all five fold correlations exceed every random one; with ~4 patients per
    fold (TCGA-sized cohorts of ~20 matched pairs) random fold correlations span most of [−1, 1], so after BH
    over ~200 genes it can practically never reject. Kept beside, as the paper-style per-fold comparison.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from histcode.console import tqdm

Alternative = Literal["two-sided", "greater", "less"]
GeneTest = Literal["pooled", "cv_null", "folds"]
GENE_TESTS = ("pooled", "cv_null", "folds")


def columnwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each column pair of a, b (P, G) → (G,), ignoring rows where either is NaN.

    NaN for a column with < 3 usable rows or zero variance (scipy's pearsonr would warn/raise there).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"columnwise_pearson needs two (P, G) arrays of equal shape, got {a.shape}, {b.shape}")
    m = np.isfinite(a) & np.isfinite(b)
    n = m.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ma = np.where(m, a, 0.0).sum(axis=0) / n
        mb = np.where(m, b, 0.0).sum(axis=0) / n
        da = np.where(m, a - ma, 0.0)
        db = np.where(m, b - mb, 0.0)
        va, vb = (da * da).sum(axis=0), (db * db).sum(axis=0)
        r = (da * db).sum(axis=0) / np.sqrt(va * vb)
    bad = (n < 3) | _constant(a, m) | _constant(b, m)
    return np.where(bad, np.nan, np.clip(r, -1.0, 1.0))


def _constant(a: np.ndarray, m: np.ndarray) -> np.ndarray:
    """(G,) True where a column's usable values are all equal (or there are none)."""
    hi = np.where(m, a, -np.inf).max(axis=0)
    lo = np.where(m, a, np.inf).min(axis=0)
    return ~(hi > lo)


def columnwise_spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rho per column (Pearson of average ranks over rows where both are finite) → (G,)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    m = np.isfinite(a) & np.isfinite(b)
    ra = stats.rankdata(np.where(m, a, np.nan), axis=0, nan_policy="omit")
    rb = stats.rankdata(np.where(m, b, np.nan), axis=0, nan_policy="omit")
    return columnwise_pearson(ra, rb)


def draw_range(y_true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per gene (q5, q95) of its finite true values: the range a random prediction is drawn from."""
    y = np.asarray(y_true, dtype=np.float64)
    with np.errstate(all="ignore"):
        lo, hi = np.nanpercentile(y, [5.0, 95.0], axis=0)
    return lo, hi


def permutation_pearson(y: np.ndarray, yhat: np.ndarray, n_permutations: int, seed: int,
                        alternative: Alternative = "greater") -> np.ndarray:
    """Per column of (P, G) truth and prediction: the permutation p-value of the Pearson r, rows of ``yhat``
    shuffled (one permutation applied to every column), p = (1 + #{r_perm at least as extreme}) / (1 + B).
    NaN where the observed r is undefined."""
    y, yhat = np.asarray(y, dtype=np.float64), np.asarray(yhat, dtype=np.float64)
    obs = columnwise_pearson(y, yhat)
    rng = np.random.default_rng(seed)
    hits = np.zeros(obs.shape)
    for r in _permuted_pearson(y, yhat, n_permutations, rng):
        with np.errstate(invalid="ignore"):
            if alternative == "greater":
                hits += (r >= obs - 1e-12).sum(axis=0)
            elif alternative == "less":
                hits += (r <= obs + 1e-12).sum(axis=0)
            else:
                hits += (np.abs(r) >= np.abs(obs) - 1e-12).sum(axis=0)
    return np.where(np.isfinite(obs), (1.0 + hits) / (1.0 + n_permutations), np.nan)


PERMUTATION_CHUNK = 512


def _permuted_pearson(y: np.ndarray, yhat: np.ndarray, n_permutations: int,
                      rng: np.random.Generator) -> Iterator[np.ndarray]:
    """(c, G) blocks of the Pearson r of ``y`` with row-permuted ``yhat``, ``rng.permutation`` drawn in order.

    Without missing values a row permutation moves neither column means nor variances, so every r is a dot
    product of the standardised columns: one einsum per block of permutations instead of a full
    ``columnwise_pearson`` per permutation (~100× faster at 10⁴ permutations). With NaNs the usable rows change
    with the permutation, so each is computed in full."""
    n = len(yhat)
    if not (np.isfinite(y).all() and np.isfinite(yhat).all()):
        for _ in range(n_permutations):
            yield columnwise_pearson(y, yhat[rng.permutation(n)])[None]
        return
    bad = (n < 3) | _constant(y, np.ones(y.shape, bool)) | _constant(yhat, np.ones(yhat.shape, bool))
    with np.errstate(invalid="ignore", divide="ignore"):
        zy, zh = y - y.mean(axis=0), yhat - yhat.mean(axis=0)
        zy, zh = zy / np.sqrt((zy * zy).sum(axis=0)), zh / np.sqrt((zh * zh).sum(axis=0))
    for start in range(0, n_permutations, PERMUTATION_CHUNK):
        idx = np.stack([rng.permutation(n) for _ in range(min(PERMUTATION_CHUNK, n_permutations - start))])
        r = np.einsum("pg,cpg->cg", zy, zh[idx])
        yield np.where(bad, np.nan, np.clip(r, -1.0, 1.0))


def pooled_null_pvalues(obs: np.ndarray, null: np.ndarray, alternative: Alternative = "greater") -> np.ndarray:
    """Per gene: p of its observed r (G,) against every finite null correlation (B, G) pooled over genes,
    p = (1 + #{null at least as extreme}) / (1 + #null). NaN where the observed r is undefined."""
    obs = np.asarray(obs, dtype=np.float64)
    flat = np.asarray(null, dtype=np.float64).ravel()
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        raise ValueError("pooled_null_pvalues: the null holds no finite correlation")
    if alternative == "greater":
        ref, stat = np.sort(flat), obs - 1e-12
        hits = ref.size - np.searchsorted(ref, stat, side="left")
    elif alternative == "less":
        ref, stat = np.sort(flat), obs + 1e-12
        hits = np.searchsorted(ref, stat, side="right")
    else:
        ref, stat = np.sort(np.abs(flat)), np.abs(obs) - 1e-12
        hits = ref.size - np.searchsorted(ref, stat, side="left")
    p = (1.0 + hits) / (1.0 + ref.size)
    return np.where(np.isfinite(obs), p, np.nan)


def top_share_k(obs: np.ndarray, top_share: float = 0.1) -> int:
    """How many genes the top-share statistic averages: ceil(``top_share`` · the genes with a finite observed r)."""
    return max(1, math.ceil(top_share * int(np.isfinite(np.asarray(obs, dtype=np.float64)).sum())))


def top_share_mean(r: np.ndarray, k: int) -> np.ndarray:
    """Mean of the ``k`` highest finite correlations along the last axis ((G,) → scalar, (B, G) → (B,)); NaN
    where fewer than ``k`` are finite. The statistic of a sparse panel: a minority of genes carries the signal
    and the mean over all genes spends its power on the rest."""
    a = np.asarray(r, dtype=np.float64)
    finite = np.isfinite(a)
    top = -np.sort(-np.where(finite, a, -np.inf), axis=-1)[..., :k]
    return np.where(finite.sum(axis=-1) >= k, np.nanmean(np.where(np.isfinite(top), top, np.nan), axis=-1), np.nan)


def _against_runs(obs: float, runs: np.ndarray) -> tuple[float, float, float]:
    """(null mean, p = (1 + #{runs >= obs}) / (1 + B), z in null SDs) of one statistic over B null runs."""
    sd = float(runs.std(ddof=1))
    return (float(runs.mean()), float((1 + (runs >= obs - 1e-12).sum()) / (1 + runs.size)),
            float((obs - runs.mean()) / sd) if sd > 0 else float("nan"))


def overall_null_test(obs: np.ndarray, null: np.ndarray, top_share: float = 0.1) -> dict[str, float]:
    """The model over all genes against its shuffled-target CV null: the mean held-out r over genes (G,) vs the
    same mean in each of B null runs (B, G). Calibrated where a rank-sum over genes is not: the genes' r move
    together within one run (a multi-task model shares its fit), and the raw pooled r carries a fold-mean term
    random draws lack, which the CV null carries too. p = (1 + #{null mean >= observed}) / (1 + B); z: in
    null standard deviations.

    Beside it (``cv_null_overall_top_*``), the same test of the mean of the k = ceil(``top_share`` · G) highest
    r (G: the genes with a finite observed r): as exchangeable, and with power where only a minority of the
    panel is linked to morphology (pre-registered in benchmarks/results/de_overall_topdecile_preregistration.txt)."""
    obs = np.asarray(obs, dtype=np.float64)
    null = np.asarray(null, dtype=np.float64)
    obs_mean = float(np.nanmean(obs))
    means = np.nanmean(null, axis=1)
    means = means[np.isfinite(means)]
    if means.size < 2:
        raise ValueError("overall_null_test: the CV null needs at least 2 runs with finite correlations")
    k = top_share_k(obs, top_share)
    obs_top = float(top_share_mean(obs, k))
    tops = top_share_mean(null, k)
    tops = tops[np.isfinite(tops)]
    null_mean, p, z = _against_runs(obs_mean, means)
    out = {"cv_null_overall_mean_r": obs_mean, "cv_null_overall_null_mean_r": null_mean,
           "cv_null_overall_p": p, "cv_null_overall_z": z, "cv_null_shuffles": float(means.size)}
    if tops.size >= 2:
        top_null, top_p, top_z = _against_runs(obs_top, tops)
        out.update({"cv_null_overall_top_k": float(k), "cv_null_overall_top_mean_r": obs_top,
                    "cv_null_overall_top_null_mean_r": top_null, "cv_null_overall_top_p": top_p,
                    "cv_null_overall_top_z": top_z})
    return out


def null_matrix(null: pd.DataFrame, genes: list[str]) -> np.ndarray:
    """Long null correlations (columns shuffle, gene, pearson_r) → (B, G) in the order of ``genes``."""
    missing = {"shuffle", "gene", "pearson_r"} - set(null.columns)
    if missing:
        raise ValueError(f"CV null table lacks columns {sorted(missing)}")
    wide = null.pivot(index="shuffle", columns="gene", values="pearson_r")
    absent = [g for g in genes if g not in wide.columns]
    if absent:
        raise ValueError(f"CV null lacks {len(absent)} evaluated genes (e.g. {absent[0]}); re-run train_de")
    return wide[genes].to_numpy(np.float64)


def random_predictions(y_true: np.ndarray, rng: np.random.Generator,
                       bounds: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """One random draw (P, G): per gene uniform in [q5, q95] of its finite true values (NaN where the truth is).
    ``bounds``: ``draw_range(y_true)`` computed once for many draws (NaN-aware percentiles are the slow part)."""
    y = np.asarray(y_true, dtype=np.float64)
    lo, hi = draw_range(y) if bounds is None else bounds
    draw = rng.uniform(size=y.shape) * (hi - lo) + lo
    return np.where(np.isfinite(y), draw, np.nan)


@dataclass(frozen=True)
class RandomBaseline:
    """Correlations of ``n_random`` random draws: pooled pearson/spearman (R, G), per fold pearson (R, K, G)."""

    pearson: np.ndarray
    spearman: np.ndarray
    fold_pearson: np.ndarray
    folds: np.ndarray


def fold_centred(y_true: np.ndarray, y_pred: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """Held-out predictions (P, G) minus their training fold's target mean: the part of a prediction that
    varies with the patient. Each prediction carries its training fold's mean, which at small n is
    anti-correlated with the held-out values (a fold of high patients leaves a low training mean), so pooled
    over folds it biases the held-out r down by a term random predictions lack; Pearson is blind to one
    constant for all patients, so this equals giving every fold the same intercept. Uses no held-out target."""
    y, p, f = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64), np.asarray(fold)
    if y.shape != p.shape or y.ndim != 2 or f.shape != (y.shape[0],):
        raise ValueError(f"fold_centred needs (P, G) truth and predictions and (P,) folds, got {y.shape}, "
                         f"{p.shape}, {f.shape}")
    out = p.copy()
    for k in np.unique(f):
        held = f == k
        out[held] -= np.nanmean(y[~held], axis=0) if (~held).any() else 0.0
    return out


def random_baseline(y_true: np.ndarray, fold: np.ndarray, n_random: int, seed: int, *,
                    progress: bool = False) -> RandomBaseline:
    """Random-baseline correlations for truth y_true (P, G) whose rows belong to CV folds ``fold`` (P,)."""
    fold = np.asarray(fold)
    rng = np.random.default_rng(seed)
    ks = np.unique(fold)
    g = y_true.shape[1]
    pear, spear = np.empty((n_random, g)), np.empty((n_random, g))
    fold_r = np.empty((n_random, len(ks), g))
    bounds = draw_range(y_true)
    for i in tqdm(range(n_random), desc="random baseline", disable=not progress,
                  per_item=False):
        draw = random_predictions(y_true, rng, bounds)
        pear[i] = columnwise_pearson(y_true, draw)
        spear[i] = columnwise_spearman(y_true, draw)
        for j, k in enumerate(ks):
            rows = fold == k
            fold_r[i, j] = columnwise_pearson(y_true[rows], draw[rows])
    return RandomBaseline(pearson=pear, spearman=spear, fold_pearson=fold_r, folds=ks)


def matrices(pred: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """Long predictions → truth (P × G), prediction (P × G) and fold per patient (P,), genes in first-seen order."""
    genes = list(dict.fromkeys(pred["gene"]))
    truth = pred.pivot(index="patient_id", columns="gene", values="y_true_log10fc")[genes]
    guess = pred.pivot(index="patient_id", columns="gene", values="y_pred_log10fc")[genes]
    fold = pred.groupby("patient_id")["fold"].first().loc[truth.index]
    if (pred.groupby("patient_id")["fold"].nunique() > 1).any():
        raise ValueError("DE predictions: a patient appears in more than one held-out fold; re-run train_de")
    return truth, guess, fold


def wilcoxon(x: np.ndarray, y: np.ndarray, alternative: Alternative = "two-sided") -> tuple[float, float]:
    """scipy.stats.ranksums on the finite values of x and y; (NaN, NaN) if either side is empty."""
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if x.size == 0 or y.size == 0:
        return float("nan"), float("nan")
    res = stats.ranksums(x, y, alternative=alternative)
    return float(res.statistic), float(res.pvalue)


def bh(pvalues: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini–Hochberg (statsmodels ``fdr_bh``) over the finite p-values: (q values, reject); NaN stays NaN."""
    p = np.asarray(pvalues, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    rej = np.zeros(p.shape, dtype=bool)
    ok = np.isfinite(p)
    if ok.any():
        rej[ok], q[ok], _, _ = multipletests(p[ok], alpha=alpha, method="fdr_bh")
    return q, rej


def compare_to_random(pred: pd.DataFrame, *, n_random: int, seed: int, alternative: Alternative,
                      fdr: float, progress: bool = False, gene_test: GeneTest = "pooled",
                      n_permutations: int = 10_000, cv_null: pd.DataFrame | None = None,
                      ) -> tuple[pd.DataFrame, dict[str, float], RandomBaseline]:
    """Per-gene table (model vs random correlations; pooled-r test p/q, CV-null p/q when ``cv_null`` (long:
    shuffle, gene, pearson_r) is given, per-fold Wilcoxon p/q; ``significant`` after BH by ``gene_test``) and
    the overall Wilcoxon numbers."""
    if gene_test not in GENE_TESTS:
        raise ValueError(f"gene_test must be one of {list(GENE_TESTS)}, got {gene_test!r}")
    if gene_test == "cv_null" and cv_null is None:
        raise ValueError("gene_test 'cv_null' needs the shuffled-target CV null of these predictions "
                         "(train_de writes it with de.null_shuffles > 0)")
    truth, guess, fold = matrices(pred)
    y, yhat, f = truth.to_numpy(np.float64), guess.to_numpy(np.float64), fold.to_numpy()
    base = random_baseline(y, f, n_random, seed, progress=progress)
    model_fold = np.stack([columnwise_pearson(y[f == k], yhat[f == k]) for k in base.folds])  # (K, G)
    pooled_r = columnwise_pearson(y, yhat)
    rows = []
    for j, gene in enumerate(truth.columns):
        stat, p = wilcoxon(model_fold[:, j], base.fold_pearson[:, :, j], alternative)
        rows.append({"gene": gene, "pearson_r_pooled": pooled_r[j],
                     "pearson_r_fold_mean": np.nanmean(model_fold[:, j]) if np.isfinite(model_fold[:, j]).any()
                     else np.nan,
                     "random_pearson_median": np.nanmedian(base.pearson[:, j]),
                     "random_pearson_q95": np.nanpercentile(base.pearson[:, j], 95),
                     "random_spearman_median": np.nanmedian(base.spearman[:, j]),
                     "wilcoxon_stat": stat, "wilcoxon_p": p})
    table = pd.DataFrame.from_records(rows)
    table["wilcoxon_q"], fold_rej = bh(table["wilcoxon_p"].to_numpy(), fdr)
    table["permutation_p"] = permutation_pearson(y, yhat, n_permutations, seed, alternative)
    table["permutation_q"], pooled_rej = bh(table["permutation_p"].to_numpy(), fdr)
    rejected = {"pooled": pooled_rej, "folds": fold_rej}
    overall_null: dict[str, float] = {}
    if cv_null is not None:
        null_r = null_matrix(cv_null, list(truth.columns))
        table["cv_null_p"] = pooled_null_pvalues(pooled_r, null_r, alternative)
        overall_null = overall_null_test(pooled_r, null_r)
        table["cv_null_q"], rejected["cv_null"] = bh(table["cv_null_p"].to_numpy(), fdr)
    table["significant"] = rejected[gene_test]
    stat, p = wilcoxon(pooled_r, base.pearson, alternative)
    overall = {"wilcoxon_stat": stat, "wilcoxon_p": p,
               "random_pearson_median": float(np.nanmedian(base.pearson)),
               "random_spearman_median": float(np.nanmedian(base.spearman)),
               "n_genes_significant_bh": float(table["significant"].sum()),
               "n_genes_significant_bh_pooled": float(pooled_rej.sum()),
               "n_genes_significant_bh_folds": float(fold_rej.sum()),
               **({"n_genes_significant_bh_cv_null": float(rejected["cv_null"].sum())} if cv_null is not None else {}),
               "n_genes_above_random_q95": float((table["pearson_r_pooled"] > table["random_pearson_q95"]).sum()),
               **overall_null}
    return table, overall, base
