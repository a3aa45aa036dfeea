"""Threshold choice and calibration metrics against sklearn (roc_curve, brier_score_loss, calibration_curve)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import balanced_accuracy_score, brier_score_loss, roc_curve

from histcode.metrics.calibration import (
    calibration_metrics,
    expected_calibration_error,
    fit_recalibrator,
    plot_reliability,
    recalibrated_metrics,
    reliability_table,
    split_calibration,
)
from histcode.metrics.threshold import choose_threshold, youden_j


def _scores(seed: int, n: int = 200, sep: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = 1 / (1 + np.exp(-(rng.normal(size=n) + sep * (2 * y - 1))))
    return y, p


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_threshold_reaches_sklearn_roc_max_youden(seed: int) -> None:
    y, p = _scores(seed)
    fpr, tpr, _ = roc_curve(y, p)
    t = choose_threshold(y, p)
    assert t["youden_j"] == pytest.approx(float(np.max(tpr - fpr)))
    assert youden_j(y, p, t["threshold"]) == pytest.approx(t["youden_j"])
    assert balanced_accuracy_score(y, p >= t["threshold"]) == pytest.approx((1 + t["youden_j"]) / 2)


def test_separable_scores_get_the_middle_of_the_gap_in_logits() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.001, 0.01, 0.02, 0.6, 0.9, 0.99])
    t = choose_threshold(y, p)["threshold"]
    expected = 1 / (1 + np.exp(-(np.log(0.02 / 0.98) + np.log(0.6 / 0.4)) / 2))
    assert t == pytest.approx(expected)
    assert 0.02 < t < 0.6 and t != 0.5


def test_threshold_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both classes"):
        choose_threshold(np.ones(4), np.linspace(0.1, 0.9, 4))


@pytest.mark.parametrize("n_bins", [5, 10])
def test_reliability_and_ece_match_sklearn_calibration_curve(n_bins: int) -> None:
    y, p = _scores(3, n=500, sep=0.6)
    p[:3] = [0.0, 0.5, 1.0]  # edges: 0 in the first bin, 1 in the last, an inner edge in the lower bin
    frac, mean = calibration_curve(y, p, n_bins=n_bins, strategy="uniform")
    t = reliability_table(y, p, n_bins)
    ok = t[t["n"] > 0]
    np.testing.assert_allclose(ok["frac_pos"], frac)
    np.testing.assert_allclose(ok["mean_prob"], mean)
    assert ok["n"].sum() == len(y)
    ece = float(np.sum(ok["n"] / len(y) * np.abs(frac - mean)))
    assert expected_calibration_error(y, p, n_bins) == pytest.approx(ece)
    m = calibration_metrics(y, p, n_bins)
    assert m["brier"] == pytest.approx(brier_score_loss(y, p)) and m["ece_bins"] == n_bins


def test_ece_is_zero_when_bins_are_exact_and_large_when_overconfident() -> None:
    y = np.array([0, 0, 0, 1] * 25)
    assert expected_calibration_error(y, np.full(100, 0.25)) == pytest.approx(0.0)
    assert expected_calibration_error(y, np.where(y == 1, 0.0, 1.0)) == pytest.approx(1.0)


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_recalibration_fixes_a_shifted_model(method: str) -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 400)
    z = rng.normal(size=400) + 3 * (2 * y - 1) - 6  # ranks well, every P far below 0.5 (a shifted site)
    p = 1 / (1 + np.exp(-z))
    df = pd.DataFrame({"slide_id": [f"s{i}" for i in range(400)], "patient_id": [f"p{i}" for i in range(400)],
                       "label": y, "prob_tumor": p})
    cal, test = df.iloc[:100], df.iloc[100:]
    m, p_test = recalibrated_metrics(cal, test, method=method)
    assert ((test["prob_tumor"] >= 0.5) == test["label"]).mean() < 0.6
    assert m["recalibrated_accuracy"] > 0.9 and m["n_calibration"] == 100 and m["n_test"] == 300
    assert m["recalibrated_ece"] < 0.1
    rec = fit_recalibrator(cal["label"], cal["prob_tumor"], method)
    np.testing.assert_allclose(p_test, rec(test["prob_tumor"].to_numpy()))


def test_recalibration_is_never_fitted_on_test_slides() -> None:
    y, p = _scores(5, n=40)
    df = pd.DataFrame({"slide_id": [f"s{i}" for i in range(40)], "patient_id": [f"p{i // 2}" for i in range(40)],
                       "label": y, "prob_tumor": p})
    # the user lists one slide of patient p0: the patient's other slide leaves the test set too
    cal, test = split_calibration(df, pd.DataFrame({"slide_id": ["s0", "s10"], "label": [1, 1]}))
    assert set(cal["slide_id"]) == {"s0", "s1", "s10", "s11"}
    assert not set(cal["patient_id"]) & set(test["patient_id"]) and len(test) == 36
    assert (cal.set_index("slide_id").loc[["s0", "s10"], "label"] == 1).all()  # the subset's labels are used
    with pytest.raises(ValueError, match="overlap"):
        recalibrated_metrics(df.iloc[:20], df.iloc[10:], method="platt")
    # changing the test slides' labels cannot change the fitted map
    a = fit_recalibrator(df.iloc[:20]["label"], df.iloc[:20]["prob_tumor"])
    flipped = df.copy()
    flipped.loc[20:, "label"] = 1 - flipped.loc[20:, "label"]
    _, p1 = recalibrated_metrics(df.iloc[:20], df.iloc[20:], method="platt")
    _, p2 = recalibrated_metrics(flipped.iloc[:20], flipped.iloc[20:], method="platt")
    np.testing.assert_allclose(p1, p2)
    np.testing.assert_allclose(p1, a(df.iloc[20:]["prob_tumor"].to_numpy()))


def test_reliability_png(tmp_path) -> None:
    y, p = _scores(6)
    out = plot_reliability({"cv": (y, p), "external": (y[:50], p[:50] ** 2)}, tmp_path / "r.png", title="t")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reliability_counts_fit_inside_the_histogram(tmp_path, monkeypatch) -> None:
    """The count printed over the tallest bar was cut by the axes' frame (external site_c figure, 11 slides)."""
    import histcode.atomic

    figs = []
    real = histcode.atomic.save_figure

    def keep(fig, path, **kw):  # type: ignore[no-untyped-def]
        figs.append(fig)
        return real(fig, path, **kw)

    monkeypatch.setattr(histcode.atomic, "save_figure", keep)
    y = np.r_[np.zeros(12), np.ones(12)]
    p = np.r_[np.full(11, 0.02), [0.15], np.full(12, 0.95)]
    plot_reliability({"model": (y, p)}, tmp_path / "r.png", title="t")
    hist = figs[0].axes[1]
    tallest = max(b.get_height() for b in hist.patches)
    assert tallest == 12 and hist.get_ylim()[0] == 0 and hist.get_ylim()[1] >= 1.2 * tallest
