"""The DE study: train_de's inputs built once, each trial = the per-fold linear-head fits of train_de.

A fold is trained exactly as ``histcode.genes.train.cross_validate`` trains it (patients held out in other
folds train, seed ``base.seed + fold``), via ``fit_de_model``. The objective summarises the per-gene
held-out metrics of the folds done so far, pooled (``pearson_r_mean`` = train_de's mean Pearson over
genes), so the value after the last fold equals what train_de would report for these settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from histcode.config import BaseConfig
from histcode.genes.config import DEConfig
from histcode.genes.metrics import per_gene_metrics, summarise
from histcode.genes.run import load_de_data as load_train_de_data
from histcode.genes.train import fit_de_model, long_predictions
from histcode.paths import Paths
from histcode.tuning.objective import FoldOutcome


@dataclass
class DeData:
    """DE inputs x (P, 2D), targets y_reg/y_cls (P, G), and each patient's held-out fold."""

    x: np.ndarray
    y_reg: np.ndarray
    y_cls: np.ndarray
    patient_ids: list[str]
    genes: list[str]
    folds: dict[str, int]
    cohort: str
    inputs: list[Path]

    @property
    def fold_ids(self) -> list[int]:
        return sorted(set(self.folds.values()))


def load_de_data(bcfg: BaseConfig, cfg: DEConfig, cohort: str | None = None) -> DeData:
    """train_de's inputs for ``cohort`` (built by train_de's own loader): embeddings, targets, folds."""
    data = load_train_de_data(cfg, bcfg, cohort=cohort)
    paths = Paths.from_base(bcfg)
    return DeData(
        x=data.inputs.x,
        y_reg=data.y_reg,
        y_cls=data.y_cls,
        patient_ids=list(data.inputs.patient_ids),
        genes=list(data.targets.genes),
        folds=data.folds,
        cohort=data.cohort,
        inputs=[paths.expression(data.cohort), data.feats_dir, data.attn_dir, paths.splits(data.cohort)],
    )


def de_fold_evaluator(data: DeData, *, seed: int):
    """``(cfg, fold) -> FoldOutcome`` whose payload is the fold's long-format held-out predictions."""
    fold_arr = np.array([data.folds[p] for p in data.patient_ids])

    def evaluate(cfg: DEConfig, fold: int) -> FoldOutcome:
        test = fold_arr == fold
        if (~test).sum() < 2:
            raise ValueError(f"fold {fold}: fewer than 2 training patients; use fewer folds (de.n_folds)")
        model = fit_de_model(data.x[~test], data.y_reg[~test], data.y_cls[~test], data.genes, lr=cfg.lr,
                             weight_decay=cfg.weight_decay, epochs=cfg.epochs, seed=seed + fold)
        with torch.no_grad():
            reg, prob = model.predict(torch.from_numpy(np.asarray(data.x[test], dtype=np.float32)))
        patients = [p for p, t in zip(data.patient_ids, test, strict=True) if t]
        preds = long_predictions(patients, data.genes, fold, data.y_reg[test], reg.numpy(), data.y_cls[test],
                                 prob.numpy())
        per_fold = summarise(per_gene_metrics(preds))
        metrics = {k: per_fold[k] for k in ("pearson_r_mean", "mse_mean") if k in per_fold}
        metrics["n_test"] = float(test.sum())
        return FoldOutcome(fold, metrics, preds)

    return evaluate


def de_score(objective: str):
    """``summarise(per_gene_metrics(...))[objective]`` over the pooled held-out predictions so far."""

    def score(outcomes: list[FoldOutcome]) -> float:
        preds = pd.concat([o.payload for o in outcomes], ignore_index=True)
        return float(summarise(per_gene_metrics(preds)).get(objective, np.nan))

    return score
