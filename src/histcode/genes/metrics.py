"""Per-gene metrics of held-out DE predictions (shared by train_de's registry tags and evaluate_de)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import roc_auc_score

PRED_COLUMNS = ("patient_id", "gene", "fold", "y_true_log10fc", "y_pred_log10fc", "y_true_label", "p_label")


def check_predictions(df: pd.DataFrame, where: str = "DE predictions") -> None:
    """Raise naming ``where`` if the DESIGN §4 columns are missing."""
    missing = [c for c in PRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}; expected {list(PRED_COLUMNS)} (re-run train_de)")


def correlation(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float, float, float]:
    """(Pearson r, p, Spearman rho, p) as scipy computes them; NaNs when n < 3 or either side is constant."""
    t, p = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    ok = np.isfinite(t) & np.isfinite(p)
    t, p = t[ok], p[ok]
    if t.size < 3 or np.ptp(t) == 0 or np.ptp(p) == 0:
        return (np.nan,) * 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pr = stats.pearsonr(t, p)
        sr = stats.spearmanr(t, p)
    return float(pr.statistic), float(pr.pvalue), float(sr.statistic), float(sr.pvalue)


def per_gene_metrics(df: pd.DataFrame, threshold: float = 0.5) -> pd.DataFrame:
    """One row per gene: n, Pearson/Spearman (r, p), MSE, and for the binary task accuracy (p_label >
    ``threshold``), balanced accuracy, AUC (NaN with one class), positive rate and mean fold-change level."""
    check_predictions(df)
    rows = []
    for gene, g in df.groupby("gene", sort=False):
        t = g["y_true_log10fc"].to_numpy(dtype=np.float64)
        p = g["y_pred_log10fc"].to_numpy(dtype=np.float64)
        r, rp, rho, rhop = correlation(t, p)
        ok = np.isfinite(t) & np.isfinite(p)
        lab = g["y_true_label"]
        has = lab.notna().to_numpy()
        y = lab[has].to_numpy(dtype=np.int64)
        prob = g["p_label"].to_numpy(dtype=np.float64)[has]
        hat = (prob > threshold).astype(np.int64)
        acc = float((hat == y).mean()) if y.size else np.nan
        both = y.size > 0 and 0 < y.sum() < y.size
        bal = float(0.5 * ((hat[y == 1] == 1).mean() + (hat[y == 0] == 0).mean())) if both else np.nan
        auc = float(roc_auc_score(y, prob)) if both else np.nan
        rows.append({
            "gene": gene, "n": int(ok.sum()), "pearson_r": r, "pearson_p": rp, "spearman_r": rho,
            "spearman_p": rhop, "mse": float(np.mean((t[ok] - p[ok]) ** 2)) if ok.any() else np.nan,
            "accuracy": acc, "balanced_accuracy": bal, "auc": auc,
            "positive_rate": float(y.mean()) if y.size else np.nan,
            "mean_log10fc": float(np.nanmean(t)) if np.isfinite(t).any() else np.nan,
        })
    return pd.DataFrame.from_records(rows)


def summarise(per_gene: pd.DataFrame) -> dict[str, float]:
    """Cohort-level numbers for MLflow/registry tags (medians are robust to a few failed genes)."""
    out: dict[str, float] = {"n_genes": float(len(per_gene))}
    for col in ("pearson_r", "spearman_r", "accuracy", "balanced_accuracy", "auc", "mse"):
        vals = per_gene[col].to_numpy(dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        out[f"{col}_median"] = float(np.median(vals)) if vals.size else float("nan")
        out[f"{col}_mean"] = float(np.mean(vals)) if vals.size else float("nan")
    return out
