"""Classification metrics: points equal sklearn; bootstrap CIs equal a plain sklearn loop on the same
resamples; curves equal sklearn's; paired deltas."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from histcode.metrics.classification import (
    bootstrap_indices,
    classification_metrics,
    paired_delta,
    roc_pr_curves,
)


def data(n: int = 80, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1).round(2)  # rounding makes ties
    return y, p


def test_point_values_equal_sklearn() -> None:
    y, p = data()
    m = classification_metrics(y, p, n_boot=0)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p >= 0.5))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, p >= 0.5))
    assert m["auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["average_precision"] == pytest.approx(average_precision_score(y, p))
    assert (m["n"], m["n_pos"]) == (80, y.sum())


def test_bootstrap_cis_equal_a_reference_loop() -> None:
    y, p = data(60, 1)
    n_boot, seed = 300, 5
    m = classification_metrics(y, p, n_boot=n_boot, seed=seed)
    ref: dict[str, list[float]] = {
        "accuracy": [],
        "balanced_accuracy": [],
        "auc": [],
        "average_precision": [],
    }
    for idx in bootstrap_indices(len(y), n_boot, seed):
        yb, pb = y[idx], p[idx]
        ref["accuracy"].append(accuracy_score(yb, pb >= 0.5))
        if 0 < yb.sum() < len(yb):
            ref["balanced_accuracy"].append(balanced_accuracy_score(yb, pb >= 0.5))
            ref["auc"].append(roc_auc_score(yb, pb))
            ref["average_precision"].append(average_precision_score(yb, pb))
    for name, vals in ref.items():
        lo, hi = np.quantile(vals, [0.025, 0.975])
        assert m[f"{name}_ci_low"] == pytest.approx(lo, abs=1e-12), name
        assert m[f"{name}_ci_high"] == pytest.approx(hi, abs=1e-12), name
        assert m[f"{name}_ci_low"] <= m[name] <= m[f"{name}_ci_high"]
    assert m["n_boot_auc"] == len(ref["auc"])


def test_single_class_and_tiny_samples() -> None:
    m = classification_metrics(np.ones(5), np.array([0.9, 0.8, 0.2, 0.7, 0.6]), n_boot=50, seed=0)
    assert m["accuracy"] == pytest.approx(0.8) and np.isnan(m["auc"]) and m["n_boot_auc"] == 0
    with pytest.raises(ValueError, match="y_true has 3 values but prob has 2"):
        classification_metrics([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="y_true must be 0/1"):
        classification_metrics([0, 2], [0.1, 0.2])


def test_curves_equal_sklearn() -> None:
    y, p = data(50, 2)
    roc, pr = roc_pr_curves(y, p, label="gated_attention")
    fpr, tpr, _ = roc_curve(y, p)
    prec, rec, _ = precision_recall_curve(y, p)
    np.testing.assert_allclose(roc["fpr"], fpr)
    np.testing.assert_allclose(roc["tpr"], tpr)
    np.testing.assert_allclose(pr["recall"], rec[::-1])
    np.testing.assert_allclose(pr["precision"], prec[::-1])
    assert list(roc.columns) == ["fpr", "tpr", "pooling"] and list(pr.columns) == [
        "recall",
        "precision",
        "pooling",
    ]
    assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(roc_auc_score(y, p))


def test_paired_delta_uses_the_same_resamples() -> None:
    y, p = data(70, 3)
    q = np.clip(p + np.random.default_rng(9).normal(0, 0.3, len(p)), 0, 1)
    d = paired_delta(y, p, q, metric="auc", n_boot=400, seed=1)
    assert d["delta"] == pytest.approx(roc_auc_score(y, p) - roc_auc_score(y, q))
    same = paired_delta(y, p, p, metric="auc", n_boot=100, seed=1)
    assert same == {"delta": 0.0, "ci_low": 0.0, "ci_high": 0.0}  # unpaired CIs would not collapse
    assert d["ci_low"] <= d["delta"] <= d["ci_high"]


def test_average_precision_of_every_resample_equals_sklearn() -> None:
    from histcode.metrics.classification import _average_precision

    y, p = data(40, 4)
    idx = bootstrap_indices(len(y), 200, 2)
    yb, pb = y[idx], p[idx]
    pb[0] = 0.5  # one resample of a single tie group: AP = prevalence
    ap = _average_precision(yb, pb)
    for b in range(len(idx)):
        if 0 < yb[b].sum() < len(y):
            assert ap[b] == pytest.approx(average_precision_score(yb[b], pb[b]), abs=1e-14), b
    assert ap[0] == pytest.approx(yb[0].mean(), abs=1e-14)
    assert np.isnan(_average_precision(np.zeros((1, 5), int), np.linspace(0, 1, 5)[None]))[0]


def test_paired_delta_of_average_precision_equals_a_reference_loop() -> None:
    y, p = data(50, 5)
    q = np.clip(p + np.random.default_rng(3).normal(0, 0.2, len(p)), 0, 1).round(2)
    d = paired_delta(y, p, q, metric="average_precision", n_boot=300, seed=4)
    ref = [average_precision_score(y[i], p[i]) - average_precision_score(y[i], q[i])
           for i in bootstrap_indices(len(y), 300, 4) if 0 < y[i].sum() < len(y)]
    lo, hi = np.quantile(ref, [0.025, 0.975])
    assert (d["ci_low"], d["ci_high"]) == (pytest.approx(lo, abs=1e-12), pytest.approx(hi, abs=1e-12))
