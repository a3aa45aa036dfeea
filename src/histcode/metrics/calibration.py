"""Probability calibration of a binary classifier: Brier score, ECE, reliability diagram, recalibration.

**ECE** uses ``n_bins`` **equal-width** bins of P(positive): [0, 1/n], (1/n, 2/n], ..., ((n-1)/n, 1] (a
probability on an inner edge goes to the lower bin — exactly ``sklearn.calibration.calibration_curve``'s
``strategy="uniform"`` binning): ECE = Σ_b (n_b / n) · |mean P in b − fraction positive in b| over non-empty
bins. **Recalibration** (Platt: logistic regression on the logit of P; isotonic: monotone step function) is
fitted on a labelled calibration subset only and applied to other slides; ``recalibrated_metrics`` refuses a
calibration subset that shares a slide with the test set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss

N_BINS = 10
METHODS = ("platt", "isotonic")
EPS = 1e-6


def _check(y_true: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(int).ravel()
    p = np.asarray(prob, dtype=float).ravel()
    if y.shape != p.shape or y.size == 0:
        raise ValueError(f"y_true ({y.size}) and prob ({p.size}) must be non-empty and of equal length")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("prob must be probabilities in [0, 1] without NaN")
    if not set(np.unique(y)) <= {0, 1}:
        raise ValueError(f"y_true must be 0/1, got {sorted(set(np.unique(y)))}")
    return y, p


def reliability_table(y_true: np.ndarray, prob: np.ndarray, n_bins: int = N_BINS) -> pd.DataFrame:
    """One row per equal-width bin: bin_low, bin_high, n, mean_prob, frac_pos (NaN for empty bins)."""
    y, p = _check(y_true, prob)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.searchsorted(edges[1:-1], p, side="left")
    n = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(idx, weights=p, minlength=n_bins) / n
        frac = np.bincount(idx, weights=y, minlength=n_bins) / n
    return pd.DataFrame(
        {"bin_low": edges[:-1], "bin_high": edges[1:], "n": n, "mean_prob": mean_p, "frac_pos": frac}
    )


def expected_calibration_error(y_true: np.ndarray, prob: np.ndarray, n_bins: int = N_BINS) -> float:
    """Count-weighted mean |mean P − fraction positive| over non-empty equal-width bins."""
    t = reliability_table(y_true, prob, n_bins)
    t = t[t["n"] > 0]
    return float((t["n"] * (t["mean_prob"] - t["frac_pos"]).abs()).sum() / t["n"].sum())


def calibration_metrics(y_true: np.ndarray, prob: np.ndarray, n_bins: int = N_BINS) -> dict[str, float]:
    """{"brier", "ece", "ece_bins"}: sklearn's Brier score and the equal-width-bin ECE."""
    y, p = _check(y_true, prob)
    return {
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p, n_bins),
        "ece_bins": float(n_bins),
    }


@dataclass
class Recalibrator:
    """A fitted map P → calibrated P (``method`` platt | isotonic), fitted on ``n_fit`` labelled slides."""

    method: str
    model: Any
    n_fit: int

    def __call__(self, prob: np.ndarray) -> np.ndarray:
        p = np.asarray(prob, dtype=float).ravel()
        if self.method == "platt":
            return self.model.predict_proba(_logit(p)[:, None])[:, 1]
        return np.asarray(self.model.predict(p), dtype=float)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


def fit_recalibrator(y_true: np.ndarray, prob: np.ndarray, method: str = "platt") -> Recalibrator:
    """Fit Platt scaling (logistic regression on logit P, unpenalised) or isotonic regression on (P, y)."""
    if method not in METHODS:
        raise ValueError(f"unknown recalibration method {method!r}; valid: {list(METHODS)}")
    y, p = _check(y_true, prob)
    if not 0 < y.sum() < y.size:
        raise ValueError("the calibration subset needs slides of both classes (tumour and normal)")
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(p)[:, None], y)
    else:
        from sklearn.isotonic import IsotonicRegression

        model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
    return Recalibrator(method, model, int(y.size))


def read_calibration_subset(path: str | Path) -> pd.DataFrame:
    """A user's labelled calibration subset: CSV with ``slide_id`` and/or ``patient_id`` (+ optional ``label``,
    0 normal / 1 tumour, per slide: it overrides the manifest's label of that slide for the fit)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: calibration subset not found; give a CSV of slide_id/patient_id[,label]")
    df = pd.read_csv(path, dtype={"slide_id": str, "patient_id": str})
    if not {"slide_id", "patient_id"} & set(df.columns):
        raise ValueError(f"{path}: needs a slide_id or patient_id column; has {list(df.columns)}")
    if "label" in df.columns:
        if "slide_id" not in df.columns:
            raise ValueError(f"{path}: labels are per slide; add slide_id or drop label (manifest labels are used)")
        if df["label"].isna().any() or not set(df["label"].astype(int).unique()) <= {0, 1}:
            raise ValueError(f"{path}: label must be 0 (normal) or 1 (tumour) for every row")
        df = df.astype({"label": int})
    return df


def split_calibration(preds: pd.DataFrame, subset: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(calibration rows, test rows) of ``preds``: every slide of a patient listed in ``subset`` (by slide_id or
    patient_id) is a calibration row — a patient's other slides never stay among the test slides. Labels given
    in ``subset`` replace the manifest's for the calibration rows."""
    listed = pd.Series(False, index=preds.index)
    if "slide_id" in subset:
        listed |= preds["slide_id"].astype(str).isin(set(subset["slide_id"].dropna().astype(str)))
    if "patient_id" in subset:
        listed |= preds["patient_id"].astype(str).isin(set(subset["patient_id"].dropna().astype(str)))
    patients = set(preds.loc[listed, "patient_id"].astype(str))
    is_cal = preds["patient_id"].astype(str).isin(patients)
    cal = preds[is_cal].copy()
    if "label" in subset and "slide_id" in subset:
        given = subset.dropna(subset=["slide_id"]).set_index("slide_id")["label"]
        cal["label"] = cal["slide_id"].map(given).fillna(cal["label"]).astype(int)
    return cal, preds[~is_cal]


def recalibrated_metrics(
    calibration: pd.DataFrame, test: pd.DataFrame, *, method: str, threshold: float = 0.5, n_bins: int = N_BINS
) -> tuple[dict[str, float], np.ndarray]:
    """Fit ``method`` on the calibration rows only; accuracy (at ``threshold`` on the recalibrated P, which
    is 0.5: recalibrated probabilities mean what they say), Brier and ECE on the test rows; + test P."""
    if set(calibration["slide_id"]) & set(test["slide_id"]) or (
        set(calibration["patient_id"]) & set(test["patient_id"])
    ):
        raise ValueError("calibration and test slides overlap: recalibration must never be fitted on test slides")
    if test.empty:
        raise ValueError("every slide is in the calibration subset: no test slides left to report on")
    rec = fit_recalibrator(calibration["label"].to_numpy(), calibration["prob_tumor"].to_numpy(), method)
    y = test["label"].to_numpy().astype(int)
    p = rec(test["prob_tumor"].to_numpy())
    out = {
        "recalibrated_accuracy": float(((p >= threshold).astype(int) == y).mean()),
        "recalibrated_threshold": float(threshold),
        "n_calibration": float(rec.n_fit),
        "n_test": float(y.size),
    }
    out.update({f"recalibrated_{k}": v for k, v in calibration_metrics(y, p, n_bins).items()})
    return out, p


def plot_reliability(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, *, title: str, n_bins: int = N_BINS
) -> Path:
    """Reliability diagram (fraction tumour vs mean P(tumour) per equal-width bin, one line per entry of
    ``curves`` = {label: (y, prob)}, with ECE in the legend) above a histogram of slides per bin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from histcode.atomic import save_figure

    fig, (ax, hx) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfect calibration")
    width = 1.0 / n_bins / (len(curves) + 1)
    for k, (label, (y, p)) in enumerate(curves.items()):
        t = reliability_table(y, p, n_bins)
        ece = expected_calibration_error(y, p, n_bins)
        ok = t["n"] > 0
        line = ax.plot(t.loc[ok, "mean_prob"], t.loc[ok, "frac_pos"], marker="o",
                       label=f"{label} (ECE {ece:.3f}, n={len(y)})")[0]
        bars = hx.bar(t["bin_low"] + width * (k + 0.5), t["n"], width=width, color=line.get_color(), label=label)
        hx.bar_label(bars, labels=[str(int(v)) if v else "" for v in t["n"]], fontsize=7)
    ax.set(xlim=(0, 1), ylim=(-0.02, 1.02), ylabel="fraction tumour (observed)", title=title)
    ax.legend(loc="upper left", fontsize=8)
    hx.margins(y=0.25)  # room above the tallest bar for its count label (it was cut by the frame)
    hx.set(xlabel=f"mean predicted P(tumour) ({n_bins} equal-width bins)", ylabel="slides per bin")
    hx.set_xticks(np.linspace(0, 1, n_bins + 1))
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, path, dpi=120)
