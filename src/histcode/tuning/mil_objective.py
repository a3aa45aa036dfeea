"""The MIL study: train_mil's inputs loaded once, each trial = ``run_fold`` on the first k saved folds.

Inputs are read with train_mil's own loaders (manifest, feature files checked by ``usable_bags``, the
patient splits train_mil saved), so a trial sees exactly the data and folds of the stage it tunes. Bags
stay in one ``BagCache`` shared by every trial. Objective ``auc``: mean over folds of the held-out
ROC-AUC (folds whose test set holds one class are skipped); ``val_loss``: mean best validation loss.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from histcode.cohort.splits import load_splits
from histcode.config import BaseConfig, ConfigError, ProjectConfig
from histcode.io.manifest import LABELLED_COLUMNS, read_manifest
from histcode.metrics.classification import classification_metrics
from histcode.mil.bags import BagCache, bag_shape, usable_bags
from histcode.mil.config import MilConfig
from histcode.mil.cv import FoldResult, run_fold
from histcode.mil.parallel import FoldRunner
from histcode.paths import Paths
from histcode.tuning.objective import FoldOutcome, PairedBootstrap

log = logging.getLogger(__name__)

TRIAL_DEFAULTS: dict[str, Any] = {"bootstrap": 0, "progress": False}  # point metrics only; no bars per fold
FOLD_METRICS = ("auc", "accuracy", "balanced_accuracy", "average_precision", "best_epoch", "n_test")


@dataclass
class MilData:
    """Everything a trial needs, loaded once: usable manifest rows, cached bags, saved splits."""

    manifest: pd.DataFrame
    bags: BagCache
    splits: pd.DataFrame
    in_dim: int
    cohort: str
    encoder: str
    inputs: list[Path]
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def n_folds(self) -> int:
        return int(self.splits["fold"].nunique())


def load_mil_data(params: dict[str, Any], bcfg: BaseConfig, cfg: MilConfig) -> MilData:
    """Manifest, feature bags and splits of ``base.train_cohort``; unreadable bags are recorded and skipped."""
    paths, cohort = Paths.from_base(bcfg), bcfg.train_cohort
    encoder = ProjectConfig.load(params).require_mil_encoder()
    manifest_csv = paths.slides_csv(cohort)
    if not manifest_csv.exists():
        raise FileNotFoundError(f"{manifest_csv}: slides manifest missing; run `dvc repro ingest@{cohort}`")
    manifest = read_manifest(manifest_csv, columns=LABELLED_COLUMNS, labelled=True)
    fdir = paths.features(cohort, encoder)
    ok, failures = usable_bags(fdir, list(manifest["slide_id"]), cohort=cohort, who="tune mil")
    splits = load_splits(paths.splits(cohort))
    usable = manifest[manifest["slide_id"].isin(ok)]
    unsplit = sorted(set(usable["patient_id"]) - set(splits["patient_id"]))
    if unsplit:
        log.warning(
            "tune mil: %d patient(s) with features are not in %s (e.g. %s); they are left out of every fold",
            len(unsplit), paths.splits(cohort), unsplit[:3],
        )
    return MilData(
        manifest=usable.reset_index(drop=True),
        bags=BagCache(ok, cfg.cache_mb),
        splits=splits,
        in_dim=bag_shape(next(iter(ok.values())))[1],
        cohort=cohort,
        encoder=encoder,
        inputs=[fdir, manifest_csv, paths.splits(cohort)],
        failures=failures,
    )


def trial_folds(n_available: int, wanted: int | None, where: str = "tune.mil.folds") -> list[int]:
    """The first ``wanted`` fold ids (all when None), checked against the folds the splits hold."""
    if wanted is None:
        return list(range(n_available))
    if wanted > n_available:
        raise ConfigError(f"{where}={wanted} but the saved splits hold {n_available} folds; lower it or use null")
    return list(range(wanted))


def _outcome(fold: int, res: FoldResult) -> FoldOutcome:
    metrics = {k: float(res.metrics[k]) for k in FOLD_METRICS if k in res.metrics}
    metrics["val_loss"] = float(res.metrics["best_val_loss"])
    return FoldOutcome(fold, metrics, res.predictions)


def mil_fold_evaluator(data: MilData, *, seed: int):
    """``(cfg, fold) -> FoldOutcome``: ``run_fold`` of the trial config (its ``pooling``) on one saved fold."""

    def evaluate(cfg: MilConfig, fold: int) -> FoldOutcome:
        return _outcome(fold, run_fold(data.manifest, data.bags, data.splits, fold, cfg.pooling, cfg,
                                       in_dim=data.in_dim, seed=seed))

    return evaluate


@dataclass
class _MilHandle:
    fold: int
    future: Future[FoldResult]

    def result(self) -> FoldOutcome:
        return _outcome(self.fold, self.future.result())

    def cancel(self) -> bool:
        return self.future.cancel()


def mil_fold_submitter(data: MilData, runner: FoldRunner, *, seed: int):
    """``(cfg, fold) -> handle``: the fold trained by train_mil's worker processes (``mil.workers``); seeds derive
    from (pooling, fold), so the outcome equals ``mil_fold_evaluator``'s."""

    def submit(cfg: MilConfig, fold: int) -> _MilHandle:
        fut = runner.submit(data.bags, data.manifest, data.splits, fold, cfg.pooling, cfg, in_dim=data.in_dim,
                            seed=seed)
        assert isinstance(fut, Future), "mil_fold_submitter needs a runner with workers"
        return _MilHandle(fold, fut)

    return submit


def mil_score(objective: str):
    """Mean over folds of the fold metric ``objective`` (``auc`` or ``val_loss``), NaN folds skipped."""

    def score(outcomes: list[FoldOutcome]) -> float:
        vals = np.array([o.metrics.get(objective, np.nan) for o in outcomes], dtype=float)
        vals = vals[np.isfinite(vals)]
        return float(vals.mean()) if vals.size else float("nan")

    return score


def pairwise_auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC-AUC of scores ``p`` for labels ``y`` (both classes present) as the share of (tumour, normal) pairs ranked
    right, ties counting half: sklearn's value without its per-call checks, which cost ~1 ms and dominated 1,000
    resamples of a held-out fold."""
    pos, neg = p[y == 1][:, None], p[y == 0][None, :]
    return float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size))


def mil_paired_bootstrap(objective: str, *, n: int = 1000, seed: int = 0) -> PairedBootstrap | None:
    """Tuned − current mean held-out AUC over folds in ``n`` resamples of each fold's test patients (the same
    patients for both settings; a resample with one class is NaN); None for ``val_loss``, which the
    predictions do not carry."""
    if objective != "auc":
        return None

    def differences(tuned: list[FoldOutcome], current: list[FoldOutcome]) -> np.ndarray:
        if any(not isinstance(o.payload, pd.DataFrame) or o.payload.empty for o in [*tuned, *current]):
            return np.full(n, np.nan)  # a fold without predictions: no interval
        folds = []
        for t, c in zip(tuned, current, strict=True):
            a = t.payload.set_index("slide_id")
            b = c.payload.set_index("slide_id").loc[a.index]
            _, inv = np.unique(a["patient_id"].astype(str).to_numpy(), return_inverse=True)
            rows = [np.flatnonzero(inv == j) for j in range(inv.max() + 1)]
            folds.append((rows, a["label"].to_numpy(int), a["prob_tumor"].to_numpy(float),
                          b["prob_tumor"].to_numpy(float)))
        rng = np.random.default_rng(seed)
        out = np.full(n, np.nan)
        for i in range(n):
            diffs = []
            for rows, y, pt, pc in folds:
                pick = np.concatenate([rows[j] for j in rng.integers(0, len(rows), size=len(rows))])
                if np.unique(y[pick]).size == 2:
                    diffs.append(pairwise_auc(y[pick], pt[pick]) - pairwise_auc(y[pick], pc[pick]))
            if len(diffs) == len(folds):
                out[i] = float(np.mean(diffs))
        return out

    return differences


def pooled_metrics(outcomes: list[FoldOutcome]) -> dict[str, float]:
    """AUC/accuracy of the held-out predictions of all folds of a trial pooled (an extra for the MLflow UI)."""
    preds = [o.payload for o in outcomes if isinstance(o.payload, pd.DataFrame) and len(o.payload)]
    if not preds:
        return {}
    df = pd.concat(preds, ignore_index=True)
    m = classification_metrics(df["label"].to_numpy(), df["prob_tumor"].to_numpy(), n_boot=0)
    return {f"pooled_{k}": m[k] for k in ("auc", "accuracy") if np.isfinite(m[k])}
