"""The DE study: train_de's inputs read once; each trial cross-validates one DE method as train_de does.

The tuned method is ``tune.de.method`` (null: ``de.method``, the registered model), so the study changes the
model a user registers, not a baseline beside it. A fold is the fold of train_de's CV
(``histcode.genes.methods.fold_predictions``: patients of other folds train, seed ``base.seed + fold``), so a
trial with the current settings over every fold gives train_de's held-out predictions of that method. The
objective summarises the per-gene held-out metrics of the folds done so far, pooled (``pearson_r_mean`` =
train_de's mean Pearson over genes).

A trial may change the settings a method reads after its inputs are loaded
(``histcode.genes.methods.method_keys``: the summaries' PCA/prototypes/centring, the heads' lr/epochs, the
linear models' inner folds); keys that choose which tiles are read (``top_l``, ``summary_max_tiles``) are
refused, since every trial would re-read every slide.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from histcode.config import BaseConfig
from histcode.genes.config import DEConfig
from histcode.genes.methods import Representations, fold_predictions, patient_fold_array
from histcode.genes.metrics import per_gene_metrics, summarise
from histcode.genes.run import load_de_data as load_train_de_data
from histcode.genes.run import method_settings, summary_settings
from histcode.paths import Paths
from histcode.tuning.objective import FoldOutcome


@dataclass
class DeData:
    """DE inputs of every representation the method may use, targets y_reg/y_cls (P, G), each patient's fold."""

    method: str
    reps: Representations
    y_reg: np.ndarray
    y_cls: np.ndarray
    genes: list[str]
    folds: dict[str, int]
    cohort: str
    inputs: list[Path]

    @property
    def patient_ids(self) -> list[str]:
        return list(self.reps.patient_ids)

    @property
    def fold_ids(self) -> list[int]:
        return sorted(set(self.folds.values()))


def load_de_data(bcfg: BaseConfig, cfg: DEConfig, method: str, cohort: str | None = None) -> DeData:
    """train_de's inputs for ``cohort`` (built by train_de's own loader) as ``method`` needs them."""
    data = load_train_de_data(dataclasses.replace(cfg, method=method), bcfg, cohort=cohort)
    paths = Paths.from_base(bcfg)
    return DeData(
        method=method,
        reps=Representations(data.inputs.patient_ids, data.inputs.x, data.summaries),
        y_reg=data.y_reg,
        y_cls=data.y_cls,
        genes=list(data.targets.genes),
        folds=data.folds,
        cohort=data.cohort,
        inputs=[paths.expression(data.cohort), data.feats_dir, data.attn_dir, paths.splits(data.cohort)],
    )


def de_fold_evaluator(data: DeData, *, seed: int, log2_threshold: float):
    """``(cfg, fold) -> FoldOutcome`` whose payload is the fold's long-format held-out predictions of
    ``data.method`` under the trial's ``de`` settings."""
    fold_arr = patient_fold_array(data.reps, data.folds)
    by_settings: dict[object, Representations] = {}  # a trial's folds (and the check's) share one summary fit

    def evaluate(cfg: DEConfig, fold: int) -> FoldOutcome:
        wanted = summary_settings(cfg)
        if wanted not in by_settings:
            by_settings.clear()
            by_settings[wanted] = data.reps.with_summary_settings(wanted)
        result = fold_predictions(data.method, by_settings[wanted], data.y_reg, data.y_cls, data.genes, fold_arr,
                                  fold, method_settings(cfg, seed, log2_threshold))
        per_fold = summarise(per_gene_metrics(result.predictions))
        metrics = {k: per_fold[k] for k in ("pearson_r_mean", "mse_mean") if k in per_fold}
        metrics["n_test"] = float((fold_arr == fold).sum())
        return FoldOutcome(fold, metrics, result.predictions)

    return evaluate


def de_score(objective: str):
    """``summarise(per_gene_metrics(...))[objective]`` over the pooled held-out predictions so far."""

    def score(outcomes: list[FoldOutcome]) -> float:
        preds = pd.concat([o.payload for o in outcomes], ignore_index=True)
        return float(summarise(per_gene_metrics(preds)).get(objective, np.nan))

    return score
