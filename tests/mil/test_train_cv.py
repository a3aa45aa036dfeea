"""Training and CV on a tiny cohort with a planted tumour signal: learns it, deterministic, early stops."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from histcode.cohort.splits import make_patient_splits
from histcode.mil.bags import BagCache, feature_paths, subsample
from histcode.mil.config import MilConfig
from histcode.mil.cv import final_epochs, run_fold, train_final

CFG = MilConfig(
    hidden=16,
    attn_hidden=8,
    dropout=0.0,
    lr=3e-3,
    max_epochs=12,
    min_epochs=2,
    patience=3,
    n_folds=3,
    bootstrap=50,
    progress=False,
)


def _setup(toy_cohort: tuple[pd.DataFrame, object]) -> tuple[pd.DataFrame, BagCache, pd.DataFrame]:
    manifest, fdir = toy_cohort
    paths, missing = feature_paths(fdir, list(manifest["slide_id"]))
    assert not missing
    splits = make_patient_splits(manifest, n_folds=3, val_frac=0.2, seed=0)
    return manifest, BagCache(paths, budget_mb=64), splits


def test_cv_learns_planted_signal_and_is_deterministic(toy_cohort) -> None:
    manifest, bags, splits = _setup(toy_cohort)
    folds = [run_fold(manifest, bags, splits, k, "gated_attention", CFG, in_dim=16, seed=3) for k in range(3)]
    preds = pd.concat([f.predictions for f in folds], ignore_index=True)
    assert sorted(preds["slide_id"]) == sorted(manifest["slide_id"])  # every slide held out exactly once
    assert list(preds.columns) == [
        "slide_id",
        "patient_id",
        "fold",
        "split",
        "label",
        "prob_tumor",
        "pooling",
    ]
    assert roc_auc_score(preds["label"], preds["prob_tumor"]) > 0.9
    for f in folds:
        test_patients = set(splits[(splits.fold == f.fold) & (splits.split == "test")]["patient_id"])
        assert set(f.predictions["patient_id"]) <= test_patients
        assert 1 <= f.best_epoch <= CFG.max_epochs
        assert f.metrics["auc_ci_low"] <= f.metrics["auc"] <= f.metrics["auc_ci_high"]
    again = run_fold(manifest, bags, splits, 0, "gated_attention", CFG, in_dim=16, seed=3)
    np.testing.assert_array_equal(again.predictions["prob_tumor"], folds[0].predictions["prob_tumor"])


def test_early_stopping_keeps_the_best_validation_epoch(toy_cohort) -> None:
    manifest, bags, splits = _setup(toy_cohort)
    res = run_fold(manifest, bags, splits, 1, "mean", CFG, in_dim=16, seed=0)
    val = [h["val_loss"] for h in res.history]
    assert res.best_epoch == int(np.argmin(val)) + 1
    assert res.metrics["best_val_loss"] == pytest.approx(min(val))
    assert len(val) == CFG.max_epochs or len(val) - res.best_epoch == CFG.patience


def test_final_model_trains_median_best_epoch_on_all_patients(toy_cohort) -> None:
    manifest, bags, splits = _setup(toy_cohort)
    folds = [run_fold(manifest, bags, splits, k, "max", CFG, in_dim=16, seed=0) for k in range(3)]
    epochs = final_epochs(folds, CFG)
    assert epochs == max(CFG.min_epochs, int(np.median([f.best_epoch for f in folds])))
    model = train_final(manifest, bags, "max", CFG, in_dim=16, seed=0, epochs=epochs)
    assert model.meta["n_train_slides"] == len(manifest) and model.meta["epochs"] == epochs


def test_bag_cache_budget_and_subsample() -> None:
    rng = np.random.default_rng(0)
    bag = torch.arange(100.0).reshape(50, 2)
    sub = subsample(bag, 10, rng)
    assert sub.shape == (10, 2) and bool((sub[1:, 0] > sub[:-1, 0]).all())  # sorted, no repeats
    assert subsample(bag, 100, rng) is bag


def test_standardisation_is_fitted_on_training_tiles_only(toy_cohort) -> None:
    manifest, bags, splits = _setup(toy_cohort)
    res = run_fold(manifest, bags, splits, 0, "gated_attention", CFG, in_dim=16, seed=0)
    train_patients = set(splits[(splits.fold == 0) & (splits.split == "train")]["patient_id"])
    sids = manifest[manifest["patient_id"].isin(train_patients)]["slide_id"]
    tiles = np.concatenate([bags.get(s).numpy() for s in sids]).astype(np.float64)
    np.testing.assert_allclose(res.model.x_mean.numpy(), tiles.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res.model.x_scale.numpy(), tiles.std(0), rtol=1e-4)
    bag = bags.get(sids.iloc[0])
    with torch.no_grad():
        full = res.model.forward_full(bag)
    streamed = res.model.predict_stream(bag.split(7))
    torch.testing.assert_close(streamed.prob, full.prob, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(streamed.weights, full.weights, rtol=1e-5, atol=1e-7)


def test_folds_in_worker_processes_equal_folds_in_process(toy_cohort) -> None:
    """Seeds derive from (method, fold): a fold trained in a spawned worker gives the in-process result."""
    from histcode.mil.parallel import FoldRunner

    manifest, bags, splits = _setup(toy_cohort)
    cfg = MilConfig(**{**CFG.__dict__, "max_epochs": 4})
    inline = FoldRunner(0).submit(bags, manifest, splits, 1, "dsmil", cfg, in_dim=16, seed=3).result()
    with FoldRunner(1) as runner:
        remote = runner.submit(bags, manifest, splits, 1, "dsmil", cfg, in_dim=16, seed=3).result()
    pd.testing.assert_frame_equal(remote.predictions, inline.predictions)
    assert remote.history == inline.history and remote.model is None
