"""The decision threshold of a binary classifier, chosen on held-out predictions instead of a fixed 0.5.

Criterion: **Youden's J** = TPR − FPR (= 2 · balanced accuracy − 1), maximised over cut points between distinct
scores. Balanced accuracy rather than accuracy because a site's tumour/normal mix is not the training cohort's;
the maximiser does not move with class prevalence. When several cut points tie at the maximum (a
cleanly separating CV gives a whole interval of them), the threshold is the **middle of the widest tied gap in
logit space**: the cut farthest from both classes' nearest scores, the one a shift of the scores moves
least — the edge of the gap (what ``roc_curve``'s thresholds are) is the worst choice for another site.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_curve

EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def _expit(z: float) -> float:
    return float(1.0 / (1.0 + np.exp(-z)))


def youden_j(y_true: np.ndarray, prob: np.ndarray, threshold: float) -> float:
    """TPR − FPR of the rule ``prob >= threshold``."""
    y = np.asarray(y_true).astype(int)
    pred = np.asarray(prob, dtype=float) >= threshold
    return float(pred[y == 1].mean() - pred[y == 0].mean())


def choose_threshold(y_true: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    """Youden-optimal threshold of P(positive) with its J, sensitivity and specificity.

    Returns {"threshold", "youden_j", "sensitivity", "specificity", "n"}; rule: positive iff prob >= threshold.
    Needs both classes; raises ValueError otherwise.
    """
    y = np.asarray(y_true).astype(int).ravel()
    p = np.asarray(prob, dtype=float).ravel()
    if y.shape != p.shape or y.size == 0:
        raise ValueError(f"y_true ({y.size}) and prob ({p.size}) must be non-empty and of equal length")
    if np.isnan(p).any():
        raise ValueError("prob contains NaN")
    if not 0 < y.sum() < y.size:
        raise ValueError("choosing a threshold needs both classes among the held-out predictions")
    fpr, tpr, thr = roc_curve(y, p, drop_intermediate=False)
    j = tpr - fpr
    best = j.max()
    # roc_curve's thresholds are the distinct scores, descending (thr[0] = +inf): the cut "prob >= thr[i]"
    # holds for every t in the gap (thr[i+1], thr[i]], with thr[len] = -inf. Gap widths are measured in logits.
    hi = np.where(np.isinf(thr), np.inf, _logit(np.minimum(thr, 1.0)))
    lo = np.r_[hi[1:], -np.inf]
    candidates = np.flatnonzero(np.isclose(j, best))
    i = int(candidates[np.argmax(hi[candidates] - lo[candidates])])
    if np.isinf(lo[i]) and np.isinf(hi[i]):
        t = 0.5
    elif np.isinf(lo[i]):  # every score positive: just below the lowest score
        t = _expit(hi[i] - 1.0)
    elif np.isinf(hi[i]):  # nothing positive: just above the highest score
        t = _expit(lo[i] + 1.0)
    else:
        t = _expit((lo[i] + hi[i]) / 2)
    pred = p >= t
    return {
        "threshold": t,
        "youden_j": float(pred[y == 1].mean() - pred[y == 0].mean()),
        "sensitivity": float(pred[y == 1].mean()),
        "specificity": float(1 - pred[y == 0].mean()),
        "n": float(y.size),
    }
