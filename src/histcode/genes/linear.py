"""Regularised linear DE models for few patients, penalty chosen by nested CV inside the training fold.

With 13–110 matched pairs and tens to thousands of input features, the per-gene heads of the paper overfit
or underfit depending on a fixed weight decay. These models choose their penalty on the training fold only:

* ``ridge``: one ridge per gene, alpha per gene by efficient leave-one-out (``RidgeCV(alpha_per_target)``);
* ``enet``: one elastic net per gene (``ElasticNetCV``, l1_ratio 0.5, inner K-fold);
* ``pls``: PLS2 on all genes jointly (shared latent components), number of components by inner K-fold;
* ``rrr``: reduced-rank ridge on all genes jointly (HE2RNA/SEQUOIA predict many genes through a shared
  low-rank layer): ridge coefficients projected onto the top-r right singular vectors of the fitted values;
  alpha and r by inner K-fold.

Inputs and targets are standardised with the training fold's statistics (targets per gene, so every gene
weighs the same in the joint fits and in the inner-CV loss). Missing targets are imputed with the gene's
training mean. Every fitted model is linear in the standardised input, so ``LinearFit`` (coef, intercept)
holds any of them. ``de_probability`` turns a predicted log10(fc+1) into P(|log2 fc| > threshold).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.cross_decomposition import PLSRegression
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import ElasticNetCV, Ridge, RidgeCV
from sklearn.model_selection import GridSearchCV, KFold

LINEAR_MODELS = ("ridge", "enet", "pls", "rrr")
ALPHAS = tuple(float(a) for a in np.logspace(-2, 4, 13))


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


def _ridge_rank_coefs(x: np.ndarray, y: np.ndarray, alpha: float, ranks: list[int]) -> dict[int, np.ndarray]:
    """Reduced-rank ridge coefficients (F, G) of centred x, y for each rank: the ridge fit projected onto the
    top-r right singular vectors of its fitted values (one ridge fit and one SVD for all ranks)."""
    coef = Ridge(alpha=alpha, fit_intercept=False).fit(x, y).coef_.T
    _, _, vt = np.linalg.svd(x @ coef, full_matrices=False)
    return {r: coef @ vt[:r].T @ vt[:r] for r in ranks}


def reduced_rank_ridge(x: np.ndarray, y: np.ndarray, cv: KFold, ranks: list[int]) -> tuple[np.ndarray, float, int]:
    """(coef (F, G), alpha, rank) with alpha × rank chosen by the inner K-fold's mean squared error."""
    loss = np.zeros((len(ALPHAS), len(ranks)))
    for tr, va in cv.split(x):
        xm, ym = x[tr].mean(axis=0), y[tr].mean(axis=0)
        for i, alpha in enumerate(ALPHAS):
            coefs = _ridge_rank_coefs(x[tr] - xm, y[tr] - ym, alpha, ranks)
            for j, r in enumerate(ranks):
                loss[i, j] += np.mean(((x[va] - xm) @ coefs[r] + ym - y[va]) ** 2) * len(va)
    i, j = np.unravel_index(np.argmin(loss), loss.shape)
    xm, ym = x.mean(axis=0), y.mean(axis=0)
    coef = _ridge_rank_coefs(x - xm, y - ym, ALPHAS[i], [ranks[j]])[ranks[j]]
    return coef, ALPHAS[i], ranks[j]


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


def fit_linear(model: str, x: np.ndarray, y: np.ndarray, *, inner_folds: int, seed: int,
               max_rank: int = 8, max_components: int = 8) -> LinearFit:
    """Fit ``model`` (one of ``LINEAR_MODELS``) on x (P, F), y (P, G) log10(fc+1) with the penalty chosen by
    nested CV inside (x, y)."""
    if model not in LINEAR_MODELS:
        raise ValueError(f"unknown DE linear model {model!r}; valid: {list(LINEAR_MODELS)}")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} rows but y has {y.shape[0]}")
    zx, xm, xs = _standardise(x)
    zy, ym, ys = _standardise(y)
    n, g = zy.shape
    cv = inner_cv(n, inner_folds, seed)
    chosen: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if model == "ridge":
            est = RidgeCV(alphas=ALPHAS, alpha_per_target=True).fit(zx, zy)
            coef, icpt = est.coef_.T.reshape(zx.shape[1], g), np.broadcast_to(est.intercept_, (g,)).copy()
            chosen["alpha"] = float(np.median(est.alpha_))
        elif model == "enet":
            coef, icpt, alphas = np.zeros((zx.shape[1], g)), np.zeros(g), []
            for j in range(g):
                est = ElasticNetCV(l1_ratio=0.5, alphas=20, cv=cv, max_iter=5000).fit(zx, zy[:, j])
                coef[:, j], icpt[j] = est.coef_, est.intercept_
                alphas.append(est.alpha_)
            chosen["alpha"] = float(np.median(alphas))
        elif model == "pls":
            n_inner_train = n - int(np.ceil(n / cv.get_n_splits()))
            top = max(1, min(max_components, n_inner_train - 1, zx.shape[1]))
            grid = GridSearchCV(PLSRegression(scale=False), {"n_components": list(range(1, top + 1))}, cv=cv,
                                scoring="neg_mean_squared_error").fit(zx, zy)
            est = grid.best_estimator_
            coef = np.asarray(est.coef_).T if est.coef_.shape[0] == g else np.asarray(est.coef_)
            icpt = zy.mean(axis=0) - zx.mean(axis=0) @ coef
            chosen["n_components"] = float(grid.best_params_["n_components"])
        else:
            n_inner_train = n - int(np.ceil(n / cv.get_n_splits()))
            ranks = list(range(1, max(1, min(max_rank, n_inner_train - 1, g)) + 1))
            coef, alpha, rank = reduced_rank_ridge(zx, zy, cv, ranks)
            icpt = zy.mean(axis=0) - zx.mean(axis=0) @ coef
            chosen.update(alpha=alpha, rank=float(rank))
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
