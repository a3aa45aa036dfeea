"""The held-out verdict's paired bootstraps: the same resampled patients score both settings, so equal settings
differ by exactly 0 in every resample, a clearly better model's gain lies above 0, and the full sample gives the
study's own objective."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from histcode.genes.train import long_predictions
from histcode.tuning.de_objective import _objective_value, _run_matrices, de_paired_bootstrap, de_score
from histcode.tuning.mil_objective import mil_paired_bootstrap, pairwise_auc
from histcode.tuning.objective import FoldOutcome
from histcode.tuning.stage import heldout_check
from histcode.tuning.study import StudySummary

GENES = [f"G{i}" for i in range(6)]


def _mil_fold(fold: int, probs: np.ndarray, labels: np.ndarray) -> FoldOutcome:
    n = len(labels)
    preds = pd.DataFrame({"slide_id": [f"s{fold}-{i}" for i in range(n)],
                          "patient_id": [f"p{fold}-{i // 2}" for i in range(n)],  # two slides per patient
                          "fold": fold, "split": "test", "label": labels, "prob_tumor": probs, "pooling": "x"})
    return FoldOutcome(fold, {"auc": float("nan"), "n_test": float(n)}, preds)


def _de_fold(fold: int, truth: np.ndarray, pred: np.ndarray, shuffled: list[np.ndarray]) -> FoldOutcome:
    ids = [f"p{fold}-{i}" for i in range(len(truth))]
    labels = np.zeros_like(truth)
    frames = [long_predictions(ids, GENES, fold, y, pred, labels, np.full_like(truth, 0.5))
              for y in [truth, *shuffled]]
    return FoldOutcome(fold, {"n_test": float(len(truth))}, frames)


def test_mil_equal_settings_gain_nothing_and_a_better_model_gains() -> None:
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 8)  # each patient: one normal, one tumour slide
    noisy = [_mil_fold(f, rng.uniform(size=16), labels) for f in (3, 4)]
    good = [_mil_fold(f, labels * 0.8 + rng.uniform(0, 0.1, size=16), labels) for f in (3, 4)]
    boot = mil_paired_bootstrap("auc", n=300, seed=1)
    assert boot is not None and mil_paired_bootstrap("val_loss") is None
    assert np.array_equal(boot(noisy, noisy), np.zeros(300))
    gains = boot(good, noisy)
    assert np.isfinite(gains).all() and np.percentile(gains, 2.5) > 0
    assert np.array_equal(gains, boot(good, noisy))  # seeded
    y, scores = labels, noisy[0].payload["prob_tumor"].to_numpy()
    assert pairwise_auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    assert pairwise_auc(y, np.round(scores, 1)) == pytest.approx(roc_auc_score(y, np.round(scores, 1)), abs=1e-12)
    empty = [FoldOutcome(3, {"auc": float("nan")}, noisy[0].payload.iloc[:0]), noisy[1]]
    assert np.isnan(boot(empty, empty)).all()  # a fold without predictions gives no interval, not an error


def test_de_bootstrap_full_sample_is_the_objective_and_resamples_are_paired() -> None:
    rng = np.random.default_rng(2)
    truth = [rng.normal(size=(5, len(GENES))) for _ in range(2)]
    shuffles = [[rng.permutation(t) for _ in range(4)] for t in truth]
    signal = [_de_fold(f, t, t + rng.normal(scale=0.3, size=t.shape), s)
              for f, t, s in zip((3, 4), truth, shuffles, strict=True)]
    noise = [_de_fold(f, t, rng.normal(size=t.shape), s) for f, t, s in zip((3, 4), truth, shuffles, strict=True)]
    for objective in ("pearson_r_mean", "pearson_r_median", "cv_null_z", "cv_null_top_z"):
        order, mats = _run_matrices(signal)
        full = _objective_value(objective, mats, np.arange(len(order)))
        assert full == pytest.approx(de_score(objective)(signal), abs=1e-9)
        boot = de_paired_bootstrap(objective, n=200, seed=3)
        assert np.array_equal(boot(noise, noise), np.zeros(200))
    gains = de_paired_bootstrap("pearson_r_mean", n=200, seed=3)(signal, noise)
    assert np.percentile(gains, 2.5) > 0
    assert de_paired_bootstrap("spearman_r_mean") is None and de_paired_bootstrap("mse_mean") is None


@pytest.mark.parametrize(("tuned", "boot", "holds", "says"), [
    (0.9, None, True, "the tuned settings hold up (no interval for objective val_loss)"),
    (1.1, None, False, "the tuned settings do not beat the current ones there"),
    (0.9, lambda a, b: np.full(1000, -0.2), True, "the tuned settings hold up (gain +0.1000, 95% interval "
                                                   "[+0.2000, +0.2000]"),  # minimised: a lower loss is a gain
    (0.9, lambda a, b: np.linspace(-0.5, 0.1, 1000), False, "the difference is within the noise of these patients"),
    (1.1, lambda a, b: np.full(1000, 0.2), False, "the tuned settings are worse there"),
])
def test_heldout_verdict_for_a_minimised_objective(tuned, boot, holds, says) -> None:
    """val_loss (minimised): the interval is oriented as a gain; without one the plain comparison says why."""
    summary = StudySummary("s", "val_loss", "minimize", 0.5, 0, {"lr": 1.0}, 3, 3, 0, 0)
    value = {"tuned": tuned, "current": 1.0}

    def evaluate(cfg: str, fold: int) -> FoldOutcome:
        return FoldOutcome(fold, {"val_loss": value[cfg], "n_test": 5.0})

    check = heldout_check(lambda v: "tuned" if v else "current", evaluate,
                          lambda outs: float(np.mean([o.metrics["val_loss"] for o in outs])), summary, [3, 4],
                          bootstrap=boot)
    assert check.holds is holds and says in check.verdict
    assert check.verdict.startswith("On folds [3, 4] (10 held-out slides), which the search never scored: tuned "
                                    f"val_loss {tuned:.4f} vs the current settings 1.0000: ")
    assert (check.ci is None) == (boot is None)
