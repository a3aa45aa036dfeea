"""The DE study: train_de's inputs read once; each trial cross-validates one DE method as train_de does.

The tuned method is ``tune.de.method`` (null: ``de.method``, the registered model), so the study changes the
model a user registers, not a baseline beside it. A fold is the fold of train_de's CV
(``histcode.genes.methods.fold_predictions``: patients of other folds train, seed ``base.seed + fold``), so a
trial with the current settings over every fold gives train_de's held-out predictions of that method. The
objective summarises the per-gene held-out metrics of the folds done so far, pooled (``pearson_r_mean`` =
train_de's mean Pearson over genes), or, for ``cv_null_z`` / ``cv_null_top_z``, tests them against the same
trial re-run on targets shuffled across patients (``histcode.genes.null``; evaluate_de's calibrated overall
test, ``cv_null_overall_z`` / ``_top_z``): a setting that only raises every gene's r by chance, null genes
included, raises its shuffled runs as much and gains nothing.

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
from histcode.genes.null import target_permutations
from histcode.genes.run import load_de_data as load_train_de_data
from histcode.genes.run import method_settings, summary_settings
from histcode.metrics.de_stats import columnwise_pearson, matrices, overall_null_test
from histcode.paths import Paths
from histcode.tuning.objective import FoldOutcome, PairedBootstrap


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


# objectives scored against the trial's own shuffled-target runs → the key of overall_null_test they read
NULL_OBJECTIVES = {"cv_null_z": "cv_null_overall_z", "cv_null_top_z": "cv_null_overall_top_z"}


def de_fold_evaluator(data: DeData, *, seed: int, log2_threshold: float, n_shuffles: int = 0):
    """``(cfg, fold) -> FoldOutcome`` whose payload is a list of long-format held-out predictions of
    ``data.method`` under the trial's ``de`` settings: the fold's, then the fold's in each of ``n_shuffles``
    runs on shuffled targets."""
    fold_arr = patient_fold_array(data.reps, data.folds)
    perms = target_permutations(len(data.patient_ids), n_shuffles, seed)  # train_de's null runs
    by_settings: dict[object, Representations] = {}  # a trial's folds (and the check's) share one summary fit

    def evaluate(cfg: DEConfig, fold: int) -> FoldOutcome:
        wanted = summary_settings(cfg)
        if wanted not in by_settings:
            by_settings.clear()
            by_settings[wanted] = data.reps.with_summary_settings(wanted)
        reps, settings = by_settings[wanted], method_settings(cfg, seed, log2_threshold)
        runs = [fold_predictions(data.method, reps, data.y_reg[p], data.y_cls[p], data.genes, fold_arr, fold,
                                 settings).predictions for p in [np.arange(len(fold_arr)), *perms]]
        per_fold = summarise(per_gene_metrics(runs[0]))
        metrics = {k: per_fold[k] for k in ("pearson_r_mean", "mse_mean") if k in per_fold}
        metrics["n_test"] = float((fold_arr == fold).sum())
        return FoldOutcome(fold, metrics, runs)

    return evaluate


def de_score(objective: str):
    """Over the pooled held-out predictions so far: ``summarise(per_gene_metrics(...))[objective]``, or for a
    ``NULL_OBJECTIVES`` key the z of the mean (or top-tenth mean) r over genes against the shuffled runs."""

    def score(outcomes: list[FoldOutcome]) -> float:
        if objective not in NULL_OBJECTIVES:
            preds = pd.concat([o.payload[0] for o in outcomes], ignore_index=True)  # the unshuffled run
            return float(summarise(per_gene_metrics(preds)).get(objective, np.nan))
        if len(outcomes[0].payload) < 3:
            raise ValueError(f"objective {objective} needs >= 2 shuffled-target runs (tune.de.null_shuffles)")
        order, mats = _run_matrices(outcomes)
        return _objective_value(objective, mats, np.arange(len(order)))

    return score


def _run_matrices(outcomes: list[FoldOutcome], order: pd.Index | None = None) -> tuple[pd.Index,
                                                                                       list[tuple[np.ndarray, ...]]]:
    """Per run (unshuffled first): (truth, prediction) (P, G) over the held-out folds pooled, rows in ``order``."""
    runs = list(zip(*[o.payload for o in outcomes], strict=True))
    mats = []
    for frames in runs:
        truth, guess, _ = matrices(pd.concat(frames, ignore_index=True))
        order = truth.index if order is None else order
        mats.append((truth.loc[order].to_numpy(np.float64), guess.loc[order].to_numpy(np.float64)))
    return order, mats


def _objective_value(objective: str, mats: list[tuple[np.ndarray, ...]], rows: np.ndarray) -> float:
    r = [columnwise_pearson(t[rows], g[rows]) for t, g in (mats if objective in NULL_OBJECTIVES else mats[:1])]
    if not np.isfinite(r[0]).any():  # e.g. a resample of one patient repeated: no r anywhere
        return float("nan")
    if objective == "pearson_r_mean":
        return float(np.nanmean(r[0]))
    if objective == "pearson_r_median":
        return float(np.nanmedian(r[0]))
    try:
        return float(overall_null_test(r[0], np.stack(r[1:])).get(NULL_OBJECTIVES[objective], np.nan))
    except ValueError:  # fewer than 2 null runs with a finite r (too few held-out patients so far)
        return float("nan")


def de_paired_bootstrap(objective: str, *, n: int = 1000, seed: int = 0) -> PairedBootstrap | None:
    """Tuned − current objective over the held-out patients pooled, in ``n`` resamples of those patients (the
    same for both settings, and for the shuffled runs of a cv_null objective); None for objectives computed
    another way (spearman_r_mean, mse_mean)."""
    if objective not in ("pearson_r_mean", "pearson_r_median", *NULL_OBJECTIVES):
        return None

    def differences(tuned: list[FoldOutcome], current: list[FoldOutcome]) -> np.ndarray:
        order, a = _run_matrices(tuned)
        _, b = _run_matrices(current, order)
        rng = np.random.default_rng(seed)
        out = np.empty(n)
        for i in range(n):
            rows = rng.integers(0, len(order), size=len(order))
            out[i] = _objective_value(objective, a, rows) - _objective_value(objective, b, rows)
        return out

    return differences
