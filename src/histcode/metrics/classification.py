"""Slide-classification metrics with percentile-bootstrap confidence intervals, and ROC/PR curves.

Point values are sklearn's; a CI is the (α/2, 1-α/2) percentile of the metric over ``n_boot`` resamples of
the slides drawn with replacement (``bootstrap_indices``: reproducible from ``seed``). Resamples holding a
single class cannot define AUC and are skipped for it (their count is reported).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

METRICS = ("accuracy", "balanced_accuracy", "auc", "average_precision")


def bootstrap_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) int indices of resamples with replacement."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def _check(y_true: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(int).ravel()
    p = np.asarray(prob, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y_true has {y.size} values but prob has {p.size}")
    if y.size == 0:
        raise ValueError("no predictions to evaluate")
    if not set(np.unique(y)) <= {0, 1}:
        raise ValueError(f"y_true must be 0/1, got values {sorted(set(np.unique(y)))}")
    if np.isnan(p).any():
        raise ValueError("prob contains NaN")
    return y, p


def _average_precision(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """sklearn's step-wise average precision of every row of (B, n) labels/scores at once (ties grouped at
    distinct scores; NaN for a row without positives). AP = Σ over positives of the precision at the end of
    their tie group, / positives: one sort for all resamples instead of a Python call each (7x faster on the
    demo's 1,000 resamples of 48 slides, equal to sklearn within 4e-16)."""
    n = y.shape[1]
    order = np.argsort(-p, axis=1, kind="mergesort")
    ys, ps = np.take_along_axis(y, order, 1), np.take_along_axis(p, order, 1)
    last = np.ones(ps.shape, dtype=bool)  # the last position of each group of equal scores
    last[:, :-1] = ps[:, 1:] != ps[:, :-1]
    tps = np.cumsum(ys, axis=1)
    end = np.minimum.accumulate(np.where(last, np.arange(n), n)[:, ::-1], axis=1)[:, ::-1]
    precision = np.take_along_axis(tps, end, 1) / (end + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ys * precision).sum(1) / tps[:, -1]


def _metric_fns(threshold: float) -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    return {
        "accuracy": lambda y, p: float(accuracy_score(y, p >= threshold)),
        "balanced_accuracy": lambda y, p: float(balanced_accuracy_score(y, p >= threshold)),
        "auc": lambda y, p: float(roc_auc_score(y, p)),
        "average_precision": lambda y, p: float(average_precision_score(y, p)),
    }


def _fast_boot(y: np.ndarray, p: np.ndarray, idx: np.ndarray, threshold: float,
               metrics: tuple[str, ...] = METRICS) -> dict[str, np.ndarray]:
    """Accuracy, balanced accuracy and those of ``metrics`` among AUC (by ranks) and AP over resamples, vectorised
    (AUC and AP NaN where a resample has one class)."""
    yb, pb = y[idx], p[idx]
    hit = (pb >= threshold).astype(int) == yb
    n_pos = yb.sum(1)
    n_neg = yb.shape[1] - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = (hit & (yb == 1)).sum(1) / n_pos
        tnr = (hit & (yb == 0)).sum(1) / n_neg
        both = (n_pos > 0) & (n_neg > 0)
        bal = np.where(both, (tpr + tnr) / 2, np.where(n_pos > 0, tpr, tnr))
    out = {"accuracy": hit.mean(1), "balanced_accuracy": bal}
    if "auc" in metrics:
        from scipy.stats import rankdata

        ranks = rankdata(pb, axis=1)  # average ranks handle ties exactly as sklearn's AUC
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = ((ranks * (yb == 1)).sum(1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
        out["auc"] = np.where(both, auc, np.nan)
    if "average_precision" in metrics:
        out["average_precision"] = np.where(both, _average_precision(yb, pb), np.nan)
    return out


def classification_metrics(
    y_true: np.ndarray,
    prob: np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    threshold: float = 0.5,
    alpha: float = 0.05,
) -> dict[str, float]:
    """Accuracy, balanced accuracy, ROC-AUC and average precision of P(tumour) with bootstrap CIs.

    Returns flat keys ``<metric>``, ``<metric>_ci_low``, ``<metric>_ci_high`` plus ``n``, ``n_pos``,
    ``n_boot``, ``n_boot_auc`` (resamples with both classes). AUC/AP are NaN when only one class is present.
    """
    y, p = _check(y_true, prob)
    out: dict[str, float] = {"n": float(y.size), "n_pos": float(y.sum()), "threshold": float(threshold)}
    two_classes = 0 < y.sum() < y.size
    with warnings.catch_warnings():  # one class present: balanced accuracy is that class's recall
        warnings.simplefilter("ignore", UserWarning)
        for name, fn in _metric_fns(threshold).items():
            out[name] = (
                fn(y, p) if (two_classes or name in ("accuracy", "balanced_accuracy")) else float("nan")
            )
    out["n_boot"] = float(n_boot)
    if n_boot <= 0:
        return out
    boot = _fast_boot(y, p, bootstrap_indices(y.size, n_boot, seed), threshold)
    for name in METRICS:
        vals = boot[name][~np.isnan(boot[name])]
        lo, hi = np.quantile(vals, [alpha / 2, 1 - alpha / 2]) if vals.size else (np.nan, np.nan)
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = float(lo), float(hi)
    out["n_boot_auc"] = float((~np.isnan(boot["auc"])).sum())
    return out


def roc_pr_curves(
    y_true: np.ndarray, prob: np.ndarray, *, label: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ROC (fpr, tpr) and PR (recall, precision) curves as DataFrames; a ``pooling`` column if ``label``."""
    y, p = _check(y_true, prob)
    if not 0 < y.sum() < y.size:
        raise ValueError("ROC/PR curves need both classes among the predictions")
    fpr, tpr, _ = roc_curve(y, p)
    precision, recall, _ = precision_recall_curve(y, p)
    roc = pd.DataFrame({"fpr": fpr, "tpr": tpr})
    pr = pd.DataFrame({"recall": recall[::-1], "precision": precision[::-1]})
    if label is not None:
        roc["pooling"] = label
        pr["pooling"] = label
    return roc, pr


def paired_delta(
    y_true: np.ndarray,
    prob_a: np.ndarray,
    prob_b: np.ndarray,
    *,
    metric: str = "auc",
    n_boot: int = 1000,
    seed: int = 0,
    threshold: float = 0.5,
    alpha: float = 0.05,
) -> dict[str, float]:
    """metric(a) - metric(b) on the same slides, with a paired percentile-bootstrap CI (same resamples)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; valid: {list(METRICS)}")
    y, pa = _check(y_true, prob_a)
    _, pb = _check(y_true, prob_b)
    fn = _metric_fns(threshold)[metric]
    out = {"delta": fn(y, pa) - fn(y, pb)}
    if n_boot > 0:
        idx = bootstrap_indices(y.size, n_boot, seed)
        d = _fast_boot(y, pa, idx, threshold, (metric,))[metric] - _fast_boot(y, pb, idx, threshold, (metric,))[metric]
        d = d[~np.isnan(d)]
        lo, hi = np.quantile(d, [alpha / 2, 1 - alpha / 2]) if d.size else (np.nan, np.nan)
        out.update({"ci_low": float(lo), "ci_high": float(hi)})
    return out
