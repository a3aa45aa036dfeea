"""Patient-level cross-validation of one pooling, and the final model on all patients.

For fold k: train on the fold's train patients, early-stop on its val patients, predict its test
patients' slides (held out). The final model is refit on every patient of the cohort for the median best
epoch of the folds (no data left for early stopping, so the CV decides how long to train).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from histcode.cohort.splits import fold_patients
from histcode.metrics.classification import classification_metrics
from histcode.mil.bags import BagCache
from histcode.mil.config import MilConfig
from histcode.mil.model import MilClassifier
from histcode.mil.pooling import create_pooling
from histcode.mil.train import Item, evaluate, fit

PRED_COLUMNS = ["slide_id", "patient_id", "fold", "split", "label", "prob_tumor", "pooling"]


def derive_seed(seed: int, *parts: object) -> int:
    """A stable seed per (pooling, fold, ...) so runs are reproducible whatever the loop order."""
    return (seed * 1_000_003 + zlib.crc32("/".join(map(str, parts)).encode())) % (2**31 - 1)


def method_settings(cfg: MilConfig) -> dict[str, object]:
    """Architecture settings of every MIL method from the ``mil`` params (each method takes its own)."""
    return {
        "hidden": cfg.hidden,
        "attn_hidden": cfg.attn_hidden,
        "dropout": cfg.dropout,
        "inst_b": cfg.inst_b,
        "bag_weight": cfg.bag_weight,
        "inst_loss": cfg.inst_loss,
        "top_s": cfg.top_s,
        "heads": cfg.heads,
        "landmarks": cfg.landmarks,
        "exact_max": cfg.exact_max,
    }


def new_model(
    pooling: str, in_dim: int, cfg: MilConfig, *, seed: int, meta: dict | None = None
) -> MilClassifier:
    torch.manual_seed(seed)
    pool = create_pooling(pooling, in_dim, **method_settings(cfg))
    return MilClassifier(pool, n_classes=2, meta=meta)


def slide_items(manifest: pd.DataFrame, patients: list[str], available: set[str]) -> list[Item]:
    """(slide_id, label) of the patients' slides that have features, in slide_id order."""
    sub = manifest[manifest["patient_id"].astype(str).isin(set(patients))]
    sub = sub[sub["slide_id"].isin(available)].sort_values("slide_id")
    return [(str(s), int(lab)) for s, lab in zip(sub["slide_id"], sub["label"], strict=True)]


@dataclass
class FoldResult:
    pooling: str
    fold: int
    predictions: pd.DataFrame
    metrics: dict[str, float]
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    model: MilClassifier | None = None


def run_fold(
    manifest: pd.DataFrame,
    bags: BagCache,
    splits: pd.DataFrame,
    fold: int,
    pooling: str,
    cfg: MilConfig,
    *,
    in_dim: int,
    seed: int,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> FoldResult:
    """Train/early-stop/test one fold of one pooling; predictions hold the fold's test slides."""
    t0 = time.perf_counter()
    parts = fold_patients(splits, fold)
    avail = set(bags.paths)
    train, val, test = (slide_items(manifest, parts[s], avail) for s in ("train", "val", "test"))
    s = derive_seed(seed, pooling, fold)
    model = new_model(pooling, in_dim, cfg, seed=s)
    res = fit(
        model,
        bags,
        train,
        val,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        max_epochs=cfg.max_epochs,
        min_epochs=cfg.min_epochs,
        patience=cfg.patience,
        max_tiles=cfg.max_train_tiles,
        chunk_tiles=cfg.chunk_tiles,
        seed=s,
        progress=cfg.progress,
        tile_dropout=cfg.tile_dropout,
        feature_noise=cfg.feature_noise,
        on_epoch=on_epoch,
    )
    _, probs = evaluate(res.model, bags, test, chunk_tiles=cfg.chunk_tiles)
    pid = manifest.drop_duplicates("slide_id").set_index("slide_id")["patient_id"].astype(str)
    preds = pd.DataFrame(
        {
            "slide_id": [sid for sid, _ in test],
            "patient_id": [pid[sid] for sid, _ in test],
            "fold": fold,
            "split": "test",
            "label": [lab for _, lab in test],
            "prob_tumor": probs,
            "pooling": pooling,
        },
        columns=PRED_COLUMNS,
    )
    metrics = (
        classification_metrics(
            preds["label"].to_numpy(),
            probs,
            n_boot=cfg.bootstrap,
            seed=derive_seed(seed, "boot", pooling, fold),
        )
        if len(preds)
        else {}
    )
    metrics.update(
        {
            "best_epoch": float(res.best_epoch),
            "best_val_loss": res.best_val_loss,
            "n_train": float(len(train)),
            "n_val": float(len(val)),
            "n_test": float(len(test)),
            "fit_s": time.perf_counter() - t0,
        }
    )
    return FoldResult(pooling, fold, preds, metrics, res.best_epoch, res.history, res.model)


def final_epochs(folds: list[FoldResult], cfg: MilConfig) -> int:
    """Median best epoch over the folds (at least ``min_epochs``), the refit length of the final model."""
    best = [f.best_epoch for f in folds if f.best_epoch > 0]
    return max(cfg.min_epochs, int(np.median(best))) if best else cfg.max_epochs


def train_final(
    manifest: pd.DataFrame,
    bags: BagCache,
    pooling: str,
    cfg: MilConfig,
    *,
    in_dim: int,
    seed: int,
    epochs: int,
    meta: dict | None = None,
) -> MilClassifier:
    """Refit on every patient of the cohort for ``epochs`` epochs (no early stopping)."""
    patients = sorted(manifest["patient_id"].astype(str).unique())
    items = slide_items(manifest, patients, set(bags.paths))
    s = derive_seed(seed, pooling, "final")
    model = new_model(pooling, in_dim, cfg, seed=s, meta=meta)
    res = fit(
        model,
        bags,
        items,
        [],
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        max_epochs=epochs,
        max_tiles=cfg.max_train_tiles,
        chunk_tiles=cfg.chunk_tiles,
        seed=s,
        progress=cfg.progress,
        tile_dropout=cfg.tile_dropout,
        feature_noise=cfg.feature_noise,
    )
    res.model.meta.update({"epochs": epochs, "n_train_slides": len(items), "n_train_patients": len(patients)})
    return res.model
