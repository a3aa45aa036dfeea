"""Regularised linear DE models for few patients, penalty chosen by nested CV inside the training fold.

With 13–110 matched pairs and tens to thousands of input features, the per-gene heads of the paper overfit
or underfit depending on a fixed weight decay. These models choose their penalty on the training fold only:

* ``ridge``: one ridge per gene, alpha per gene;
* ``enet``: one elastic net per gene (l1_ratio 0.5), alpha per gene;
* ``pls``: PLS2 on all genes jointly (shared latent components), number of components for all genes;
* ``rrr``: reduced-rank ridge on all genes jointly (HE2RNA/SEQUOIA predict many genes through a shared
  low-rank layer): ridge coefficients projected onto the top-r right singular vectors of the fitted values;
  alpha and r for all genes.

The inner K-fold scores a setting by the Pearson r of its inner held-out predictions pooled over the inner
folds (per gene; joint models take the mean over genes), i.e. the metric the outer CV reports. Choosing by
squared error instead picks the heaviest penalty for any gene without signal, and a prediction that is the
training-fold mean is anti-correlated with the held-out values (a high held-out value lowers its training
mean): with 13 patients a null gene then scores r ≈ −0.4 instead of chance.

Inputs and targets are standardised with the training fold's statistics (targets per gene, so every gene
weighs the same in the joint fits). Missing targets are imputed with the gene's training mean. Every fitted
model is linear in the standardised input, so ``LinearFit`` (coef, intercept) holds any of them.
``de_probability`` turns a predicted log10(fc+1) into P(|log2 fc| > threshold).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.cross_decomposition import PLSRegression
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import enet_path
from sklearn.model_selection import KFold

LINEAR_MODELS = ("ridge", "enet", "pls", "rrr")
ALPHAS = tuple(float(a) for a in np.logspace(-2, 4, 13))  # ridge/rrr, standardised units
ENET_ALPHAS = tuple(float(a) for a in np.logspace(0, -2, 7))  # elastic net, descending as enet_path wants


@dataclass
class LinearFit:
    """y = ((x - x_mean) / x_scale) @ coef * y_scale + y_mean; ``sigma`` (G,) the training targets' std."""

    coef: np.ndarray  # (F, G), standardised units
    intercept: np.ndarray  # (G,), standardised units
    x_mean: np.ndarray
    x_scale: np.ndarray
    y_mean: np.ndarray
    y_scale: np.ndarray
    chosen: dict[str, float]

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float64) - self.x_mean) / self.x_scale
        return (z @ self.coef + self.intercept) * self.y_scale + self.y_mean


def ridge_coefs(x: np.ndarray, y: np.ndarray, alphas: tuple[float, ...]) -> np.ndarray:
    """Ridge coefficients (A, F, G) of centred x (N, F), y (N, G) for every alpha, from one SVD of x."""
    u, sv, vt = np.linalg.svd(x, full_matrices=False)
    uty = u.T @ y
    return np.stack([vt.T @ ((sv / (sv ** 2 + a))[:, None] * uty) for a in alphas])


def rank_project(x: np.ndarray, coef: np.ndarray, ranks: list[int]) -> dict[int, np.ndarray]:
    """Reduced-rank versions (F, G) of ``coef``: projected onto the top-r right singular vectors of x @ coef."""
    _, _, vt = np.linalg.svd(x @ coef, full_matrices=False)
    return {r: coef @ vt[:r].T @ vt[:r] for r in ranks}


def pooled_pearson(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-column Pearson r of (N, G) arrays; -inf where undefined (a constant prediction is never chosen)."""
    from histcode.metrics.de_stats import columnwise_pearson

    r = columnwise_pearson(y, pred)
    return np.where(np.isfinite(r), r, -np.inf)


def inner_scores(x: np.ndarray, y: np.ndarray, cv: KFold, n_settings: int,
                 predict: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """(S, G) pooled inner-CV Pearson r of each setting: ``predict(x_tr, y_tr, x_va)`` → (S, N_va, G) for
    centred-on-training inputs; predictions of every inner fold are pooled before correlating."""
    pred = np.zeros((n_settings, *y.shape))
    for tr, va in cv.split(x):
        xm, ym = x[tr].mean(axis=0), y[tr].mean(axis=0)
        pred[:, va] = predict(x[tr] - xm, y[tr] - ym, x[va] - xm) + ym
    return np.stack([pooled_pearson(y, p) for p in pred])


def _standardise(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nan_to_num(np.nanmean(a, axis=0), nan=0.0)
        std = np.nanstd(a, axis=0)
    std = np.where(np.isfinite(std) & (std > 1e-8), std, 1.0)
    z = (a - mean) / std
    return np.where(np.isfinite(z), z, 0.0), mean, std


def inner_cv(n: int, folds: int, seed: int) -> KFold:
    """The inner K-fold of a training fold: ``min(folds, n)`` shuffled splits."""
    if n < 3:
        raise ValueError(f"nested CV needs >= 3 training patients, got {n}; use fewer folds (de.n_folds)")
    return KFold(n_splits=max(2, min(folds, n)), shuffle=True, random_state=seed)


def _ridge(zx: np.ndarray, zy: np.ndarray, cv: KFold) -> tuple[np.ndarray, dict[str, float]]:
    score = inner_scores(zx, zy, cv, len(ALPHAS), lambda xt, yt, xv: np.einsum("nf,afg->ang", xv,
                                                                                     ridge_coefs(xt, yt, ALPHAS)))
    best = np.argmax(score, axis=0)  # per gene
    coefs = ridge_coefs(zx - zx.mean(axis=0), zy - zy.mean(axis=0), ALPHAS)
    coef = coefs[best, :, np.arange(zy.shape[1])].T
    return coef, {"alpha": float(np.median(np.asarray(ALPHAS)[best]))}


def _enet(zx: np.ndarray, zy: np.ndarray, cv: KFold) -> tuple[np.ndarray, dict[str, float]]:
    alphas = np.asarray(ENET_ALPHAS)

    def path(xt: np.ndarray, yt: np.ndarray) -> np.ndarray:  # (A, F, G)
        out = np.zeros((len(alphas), xt.shape[1], yt.shape[1]))
        for g in range(yt.shape[1]):
            _, c, _ = enet_path(xt, yt[:, g], l1_ratio=0.5, alphas=alphas, max_iter=1000, tol=1e-3)
            out[:, :, g] = c.T
        return out

    score = inner_scores(zx, zy, cv, len(alphas), lambda xt, yt, xv: np.einsum("nf,afg->ang", xv, path(xt, yt)))
    best = np.argmax(score, axis=0)
    coef = path(zx - zx.mean(axis=0), zy - zy.mean(axis=0))[best, :, np.arange(zy.shape[1])].T
    return coef, {"alpha": float(np.median(alphas[best]))}


def _pls(zx: np.ndarray, zy: np.ndarray, cv: KFold, max_components: int) -> tuple[np.ndarray, dict[str, float]]:
    n_inner_train = zx.shape[0] - int(np.ceil(zx.shape[0] / cv.get_n_splits()))
    comps = list(range(1, max(1, min(max_components, n_inner_train - 1, zx.shape[1])) + 1))

    def predict(xt: np.ndarray, yt: np.ndarray, xv: np.ndarray) -> np.ndarray:
        return np.stack([PLSRegression(n_components=c, scale=False).fit(xt, yt).predict(xv) for c in comps])

    score = inner_scores(zx, zy, cv, len(comps), predict).mean(axis=1)
    c = comps[int(np.argmax(score))]
    est = PLSRegression(n_components=c, scale=False).fit(zx, zy)
    coef = np.asarray(est.coef_)
    coef = coef.T if coef.shape[0] == zy.shape[1] and coef.shape[1] == zx.shape[1] else coef
    return coef, {"n_components": float(c)}


def _rrr(zx: np.ndarray, zy: np.ndarray, cv: KFold, max_rank: int) -> tuple[np.ndarray, dict[str, float]]:
    n_inner_train = zx.shape[0] - int(np.ceil(zx.shape[0] / cv.get_n_splits()))
    ranks = list(range(1, max(1, min(max_rank, n_inner_train - 1, zy.shape[1])) + 1))
    grid = [(a, r) for a in range(len(ALPHAS)) for r in ranks]

    def predict(xt: np.ndarray, yt: np.ndarray, xv: np.ndarray) -> np.ndarray:
        coefs = ridge_coefs(xt, yt, ALPHAS)
        proj = [rank_project(xt, coefs[a], ranks) for a in range(len(ALPHAS))]
        return np.stack([xv @ proj[a][r] for a, r in grid])

    score = inner_scores(zx, zy, cv, len(grid), predict).mean(axis=1)
    a, r = grid[int(np.argmax(score))]
    xc, yc = zx - zx.mean(axis=0), zy - zy.mean(axis=0)
    coef = rank_project(xc, ridge_coefs(xc, yc, (ALPHAS[a],))[0], [r])[r]
    return coef, {"alpha": ALPHAS[a], "rank": float(r)}


def fit_linear(model: str, x: np.ndarray, y: np.ndarray, *, inner_folds: int, seed: int,
               max_rank: int = 8, max_components: int = 8) -> LinearFit:
    """Fit ``model`` (one of ``LINEAR_MODELS``) on x (P, F), y (P, G) log10(fc+1) with the penalty chosen by
    nested CV inside (x, y) (module docstring)."""
    if model not in LINEAR_MODELS:
        raise ValueError(f"unknown DE linear model {model!r}; valid: {list(LINEAR_MODELS)}")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} rows but y has {y.shape[0]}")
    zx, xm, xs = _standardise(x)
    zy, ym, ys = _standardise(y)
    cv = inner_cv(zx.shape[0], inner_folds, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if model == "ridge":
            coef, chosen = _ridge(zx, zy, cv)
        elif model == "enet":
            coef, chosen = _enet(zx, zy, cv)
        elif model == "pls":
            coef, chosen = _pls(zx, zy, cv, max_components)
        else:
            coef, chosen = _rrr(zx, zy, cv, max_rank)
    icpt = zy.mean(axis=0) - zx.mean(axis=0) @ coef
    return LinearFit(coef=np.asarray(coef, dtype=np.float64), intercept=np.asarray(icpt, dtype=np.float64),
                     x_mean=xm, x_scale=xs, y_mean=ym, y_scale=ys, chosen=chosen)


def de_probability(pred_log10: np.ndarray, sigma: np.ndarray, log2_threshold: float) -> np.ndarray:
    """P(|log2 fc| > threshold) when log10(fc+1) ~ Normal(pred, sigma²) (sigma per gene, (G,)).

    |log2 fc| > t ⇔ log10(fc+1) > log10(2^t + 1) or < log10(2^-t + 1); both tails are summed.
    """
    hi, lo = np.log10(2.0 ** log2_threshold + 1.0), np.log10(2.0 ** -log2_threshold + 1.0)
    s = np.maximum(np.asarray(sigma, dtype=np.float64), 1e-6)
    p = np.asarray(pred_log10, dtype=np.float64)
    return stats.norm.sf((hi - p) / s) + stats.norm.cdf((lo - p) / s)
