"""The MIL model's decision threshold (chosen on its CV held-out predictions) and its CV calibration report.

The threshold is chosen on the **pooled out-of-fold predictions** of the patient-level CV: every slide scored
by a model that never saw its patient, which is the final model's position on a new cohort. (The per-fold
validation sets are small and already used for early stopping.) It is stored beside the model as
``decision_threshold.json`` (+ ``model.json`` meta), as the MLflow param and registered-version tag
``decision_threshold``, and every external evaluation applies it instead of 0.5. CV accuracy at this
threshold is in-sample for the threshold (reported as ``accuracy_at_threshold``); external cohorts are the
honest test.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from histcode.atomic import write_json
from histcode.metrics.calibration import calibration_metrics, plot_reliability
from histcode.metrics.threshold import choose_threshold
from histcode.mil.config import MilConfig

log = logging.getLogger(__name__)
THRESHOLD_FILE = "decision_threshold.json"
TAG = "decision_threshold"


def decision_threshold(held_out: pd.DataFrame, cfg: MilConfig) -> dict[str, Any]:
    """{"threshold", "method", "youden_j", "sensitivity", "specificity", "n"} from one pooling's CV preds."""
    y, p = held_out["label"].to_numpy(), held_out["prob_tumor"].to_numpy()
    if cfg.threshold == "fixed" or len(set(y)) < 2:
        if cfg.threshold != "fixed":
            log.warning("CV held-out predictions hold one class: decision threshold stays 0.5")
        return {"threshold": 0.5, "method": "fixed", "n": float(len(y))}
    return {**choose_threshold(y, p), "method": "youden_oof"}


def write_threshold(model_dir: str | Path, decision: dict[str, Any]) -> Path:
    path = Path(model_dir) / THRESHOLD_FILE
    write_json(path, decision)
    return path


def read_threshold(model_dir: str | Path) -> float | None:
    """The stored threshold of a saved model directory (or its index dir's primary pooling), else None."""
    path = Path(model_dir)
    if path.is_file():
        path = path.parent
    for cand in (path / THRESHOLD_FILE, *sorted(path.glob(f"*/{THRESHOLD_FILE}"))[:1]):
        if cand.exists():
            return float(json.loads(cand.read_text())["threshold"])
    return None


def cv_calibration(
    preds: pd.DataFrame, thresholds: dict[str, float], cfg: MilConfig, figure: Path, *, title: str
) -> dict[str, float]:
    """Per pooling: Brier, ECE, accuracy/balanced accuracy at its threshold; one reliability diagram PNG."""
    out: dict[str, float] = {}
    curves = {}
    for pooling, df in preds.groupby("pooling", sort=False):
        y, p = df["label"].to_numpy(), df["prob_tumor"].to_numpy()
        t = thresholds.get(str(pooling), 0.5)
        hit = (p >= t).astype(int) == y
        out[f"{pooling}.decision_threshold"] = t
        out[f"{pooling}.accuracy_at_threshold"] = float(hit.mean())
        if len(set(y)) == 2:
            out[f"{pooling}.balanced_accuracy_at_threshold"] = float((hit[y == 1].mean() + hit[y == 0].mean()) / 2)
        for k, v in calibration_metrics(y, p, cfg.ece_bins).items():
            out[f"{pooling}.{k}"] = v
        curves[str(pooling)] = (y, p)
    if curves:
        plot_reliability(curves, figure, title=title, n_bins=cfg.ece_bins)
    return out
