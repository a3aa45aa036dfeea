"""The held-out verdict's paired bootstraps: the same resampled patients score both settings, so equal settings
differ by exactly 0 in every resample, a clearly better model's gain lies above 0, and the full sample gives the
study's own objective."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from histcode.genes.train import long_predictions
from histcode.tuning.de_objective import _objective_value, _run_matrices, de_paired_bootstrap, de_score
from histcode.tuning.mil_objective import mil_paired_bootstrap
from histcode.tuning.objective import FoldOutcome

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
