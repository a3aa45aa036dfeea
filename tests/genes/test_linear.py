"""Regularised linear DE models: nested-CV choice, joint low-rank fits, and the P(DE) transform."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from histcode.genes.heads import LinearDEModel
from histcode.genes.linear import LINEAR_MODELS, de_probability, fit_linear, rank_project, ridge_coefs
from histcode.metrics.de_stats import columnwise_pearson


def low_rank_cohort(n: int = 60, f: int = 40, g: int = 12, n_planted: int = 6, seed: int = 0):
    """Two latent slide variables drive the first ``n_planted`` genes; features are the latents + noise."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    x = np.hstack([z + 0.3 * rng.normal(size=(n, 2)), rng.normal(size=(n, f - 2))])
    y = 0.5 + 0.2 * rng.normal(size=(n, g))
    load = rng.normal(size=(2, n_planted))
    y[:, :n_planted] = 0.5 + 0.3 * z @ load + 0.05 * rng.normal(size=(n, n_planted))
    return x, y


def held_out_r(model: str, x: np.ndarray, y: np.ndarray, k: int = 5) -> np.ndarray:
    fold = np.arange(len(x)) % k
    pred = np.zeros_like(y)
    for i in range(k):
        fit = fit_linear(model, x[fold != i], y[fold != i], inner_folds=4, seed=i)
        pred[fold == i] = fit.predict(x[fold == i])
    return columnwise_pearson(y, pred)


@pytest.mark.parametrize("model", LINEAR_MODELS)
def test_models_recover_planted_genes_and_leave_nulls_at_chance(model: str) -> None:
    x, y = low_rank_cohort()
    r = held_out_r(model, x, y)
    assert r[:6].mean() > 0.6, r
    # null genes: neither systematically positive nor pulled negative by a training-mean prediction
    assert abs(np.nanmean(r[6:])) < 0.2 and np.nanmean(np.abs(r[6:])) < 0.3, r


def test_penalty_is_chosen_on_the_training_fold() -> None:
    x, y = low_rank_cohort()
    strong = fit_linear("ridge", x, y, inner_folds=4, seed=0)
    noise = fit_linear("ridge", x, np.random.default_rng(3).normal(size=y.shape), inner_folds=4, seed=0)
    assert strong.chosen["alpha"] < 1000
    rrr = fit_linear("rrr", x, y, inner_folds=4, seed=0)
    assert 1 <= rrr.chosen["rank"] <= 8
    assert np.linalg.matrix_rank(rrr.coef, tol=1e-8) == rrr.chosen["rank"]
    assert noise.coef.shape == strong.coef.shape == (40, 12)


def test_ridge_coefs_match_closed_form_and_rank_projection_is_low_rank() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(15, 30)), rng.normal(size=(15, 4))
    x, y = x - x.mean(0), y - y.mean(0)
    coef = ridge_coefs(x, y, (0.5, 10.0))
    for a, c in zip((0.5, 10.0), coef, strict=True):
        np.testing.assert_allclose(c, np.linalg.solve(x.T @ x + a * np.eye(30), x.T @ y), atol=1e-8)
    proj = rank_project(x, coef[0], [1, 2])
    assert np.linalg.matrix_rank(proj[1]) == 1 and np.linalg.matrix_rank(proj[2]) == 2


def test_de_probability_matches_normal_tails() -> None:
    hi, lo = np.log10(2 ** 1.5 + 1), np.log10(2 ** -1.5 + 1)
    p = de_probability(np.array([[hi, lo, 0.3]]), np.array([0.1, 0.1, 0.1]), 1.5)
    expect = [stats.norm.sf(0) + stats.norm.cdf((lo - hi) / 0.1), stats.norm.sf((hi - lo) / 0.1) + 0.5,
              stats.norm.sf((hi - 0.3) / 0.1) + stats.norm.cdf((lo - 0.3) / 0.1)]
    np.testing.assert_allclose(p[0], expect, rtol=1e-9)
    assert p[0, 2] < 0.05  # log10(fc+1) 0.3 is fc ≈ 1: not DE


def test_registered_linear_model_equals_the_fit() -> None:
    x, y = low_rank_cohort(n=30)
    fit = fit_linear("rrr", x, y, inner_folds=3, seed=0)
    t = {k: torch.from_numpy(np.asarray(getattr(fit, k), dtype=np.float32))
         for k in ("coef", "intercept", "x_mean", "x_scale", "y_mean", "y_scale")}
    module = LinearDEModel(genes=[f"g{i}" for i in range(12)], log2_threshold=1.5, **t)
    with torch.no_grad():
        out = module(torch.from_numpy(x[:5].astype(np.float32))).numpy()
    np.testing.assert_allclose(out[..., 0], fit.predict(x[:5]), atol=1e-4)
    np.testing.assert_allclose(out[..., 1], de_probability(fit.predict(x[:5]), fit.y_scale, 1.5), atol=1e-4)
    with pytest.raises(ValueError, match="expects inputs"):
        module(torch.zeros(2, 3))
