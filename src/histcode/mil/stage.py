"""The ``train_mil`` stage: splits → CV of every pooling → final models → registry → attention export.

Outputs (DESIGN §4): data/splits/<cohort>/, data/models/mil/<pooling>/ (+ mil.json naming the primary
pooling, failures.csv), data/attention/<cohort>/<pooling>/<slide_id>.h5 for every slide,
data/predictions/mil/<cohort>.csv (held-out test predictions of every pooling), reports/metrics/mil.json,
reports/plots/mil_roc/<pooling>.csv, mil_pr/<pooling>.csv and reports/figures/mil/roc_pr.png. MLflow
experiment "mil": one parent run, a nested run per (pooling, fold) and per final model, tagged pooling/encoder/fold.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from histcode import tracking
from histcode.atomic import write_csv, write_json
from histcode.cohort.splits import make_patient_splits, save_splits
from histcode.config import ConfigError, base, load_params, section, to_dict
from histcode.evaluation.classification_plots import plot_roc_pr
from histcode.mil import report
from histcode.mil.bags import BagCache, bag_shape, usable_bags
from histcode.mil.config import MilConfig
from histcode.mil.cv import PRED_COLUMNS, FoldResult, final_epochs, run_fold
from histcode.mil.decision import TAG, cv_calibration
from histcode.mil.external import read_manifest
from histcode.mil.final import StageContext, final_model
from histcode.mil.model import INDEX_FILE
from histcode.paths import Paths
from histcode.seeding import seed_everything

log = logging.getLogger(__name__)
ENCODER_NAME = "histcode-encoder"


def encoder_name(params: dict[str, Any], cfg: MilConfig) -> str:
    if cfg.encoder:
        return cfg.encoder
    encoders = (params.get("extract") or {}).get("encoders") or []
    if not encoders:
        raise ConfigError("params: set mil.encoder or extract.encoders (the feature set MIL trains on)")
    return str(encoders[0])


def encoder_version(encoder_dir: Path) -> str:
    """``histcode-encoder/<version>`` of the encoder saved in ``encoder_dir`` (see ``registry.lineage``)."""
    from histcode.registry.lineage import encoder_dir_version

    return encoder_dir_version(encoder_dir)


def _fold_run(ctx: StageContext, splits: pd.DataFrame, fold: int, pooling: str) -> FoldResult:
    """One CV fold in a nested MLflow run: per-epoch losses (one batch write) and held-out metrics."""
    import mlflow
    from mlflow.entities import Metric

    with tracking.start_run(
        "mil",
        run_name=f"{pooling}/fold{fold}",
        stage="train_mil",
        nested=True,
        cohort=ctx.cohort,
        tags={**ctx.tags, "pooling": pooling, "fold": str(fold)},
    ) as run:
        res = run_fold(
            ctx.manifest, ctx.bags, splits, fold, pooling, ctx.cfg, in_dim=ctx.in_dim, seed=ctx.seed
        )
        now = int(time.time() * 1000)
        history = [
            Metric(k, float(v), now, int(row["epoch"]))
            for row in res.history
            for k, v in row.items()
            if k != "epoch"
        ]
        for i in range(0, len(history), 1000):
            mlflow.MlflowClient().log_batch(run.info.run_id, metrics=history[i : i + 1000])
        tracking.log_metrics({k: v for k, v in res.metrics.items() if k != "threshold"})
    return res


def prepare(params: dict[str, Any]) -> tuple[StageContext, pd.DataFrame, Path]:
    """Configs, manifest, usable feature files (bad ones recorded), saved splits → (context, splits, dir)."""
    bcfg, cfg = base(params), section(MilConfig, "mil", params)
    paths, cohort = Paths.from_base(bcfg), bcfg.train_cohort
    encoder = encoder_name(params, cfg)
    manifest = read_manifest(paths.slides_csv(cohort))
    fdir = paths.features(cohort, encoder)
    fpaths, failures = usable_bags(fdir, list(manifest["slide_id"]), cohort=cohort, who="train_mil")
    usable = manifest[manifest["slide_id"].isin(fpaths)]
    splits = make_patient_splits(usable, cfg.n_folds, cfg.val_frac, cfg.test_frac, bcfg.seed)
    save_splits(
        splits,
        paths.splits(cohort),
        meta={"seed": bcfg.seed, "val_frac": cfg.val_frac, "cohort": cohort, "made_by": "train_mil"},
    )
    from histcode.features.store import feature_set_identity
    from histcode.registry.lineage import features_lineage

    # lineage from the features themselves: which encoder (registered version or baseline) and which weights
    # produced them, and the DVC hash of the inputs (features + manifest)
    ident = feature_set_identity(fdir)
    tags = {"encoder": encoder, **features_lineage(list(fpaths.values())),
            **{k: v for k, v in ident.items() if k in ("encoder_uri", "encoder_fingerprint")},
            "dvc_data_hash": tracking.dvc_hash([fdir, paths.slides_csv(cohort)])}
    ctx = StageContext(
        usable,
        BagCache(fpaths, cfg.cache_mb),
        cfg,
        paths,
        cohort,
        bag_shape(next(iter(fpaths.values())))[1],
        bcfg.seed,
        tags,
        failures,
    )
    return ctx, splits, fdir


def run_train_mil(params_path: str | Path = "params.yaml") -> dict[str, Any]:
    """Run the whole stage from a params file; returns the metrics dict of reports/metrics/mil.json."""
    params = load_params(params_path)
    seed_everything(base(params).seed)
    ctx, splits, fdir = prepare(params)
    cfg, paths = ctx.cfg, ctx.paths
    torch.set_num_threads(max(1, cfg.threads))
    all_preds, fold_metrics, final_info = [], {}, {}
    with tracking.start_run(
        "mil",
        run_name=f"train_mil/{ctx.cohort}",
        stage="train_mil",
        cohort=ctx.cohort,
        params={**to_dict(cfg), "encoder": ctx.tags["encoder"]},
        tags=ctx.tags,
        inputs=[fdir, paths.slides_csv(ctx.cohort)],
    ):
        import mlflow

        for pooling in cfg.poolings():
            folds = [_fold_run(ctx, splits, k, pooling) for k in range(cfg.n_folds)]
            held_out = pd.concat([f.predictions for f in folds], ignore_index=True)
            all_preds.append(held_out)
            fold_metrics[pooling] = [f.metrics for f in folds]
            final_info[pooling] = final_model(
                ctx, pooling, epochs=final_epochs(folds, cfg), held_out=held_out
            )
        metrics = write_reports(
            pd.concat(all_preds, ignore_index=True), fold_metrics, cfg, paths, ctx.cohort, seed=ctx.seed
        )
        preds = pd.concat(all_preds, ignore_index=True)
        reliability = paths.figures("mil") / "reliability.png"
        metrics.update(
            cv_calibration(
                preds, {p: i[TAG] for p, i in final_info.items()}, cfg, reliability,
                title=f"{ctx.cohort}: held-out slides, {cfg.n_folds}-fold CV (out-of-fold P)",
            )
        )
        mlflow.log_artifact(str(reliability))
        metrics.update(
            {
                "n_slides": float(len(ctx.feature_files)),
                "n_failed": float(len(ctx.failures)),
                "n_patients": float(ctx.manifest["patient_id"].nunique()),
            }
        )
        tracking.log_metrics(metrics, paths.metrics("mil"))
        mlflow.log_artifact(str(paths.figures("mil") / "roc_pr.png"))
    write_json(
        paths.models("mil") / INDEX_FILE,
        {"primary": cfg.pooling, "cohort": ctx.cohort, **ctx.tags, "models": final_info},
    )
    write_csv(
        paths.models("mil") / "failures.csv",
        pd.DataFrame(sorted(ctx.failures.items()), columns=["slide_id", "reason"]),
    )
    return metrics


def write_reports(
    preds: pd.DataFrame,
    fold_metrics: dict[str, list[dict[str, float]]],
    cfg: MilConfig,
    paths: Paths,
    cohort: str,
    *,
    seed: int,
) -> dict[str, Any]:
    """Held-out predictions CSV, the flat metrics dict, ROC/PR CSVs and the ROC+PR figure."""
    write_csv(paths.mil_predictions(cohort), preds[PRED_COLUMNS])
    overall = report.pooled_metrics(preds, n_boot=cfg.bootstrap, seed=seed)
    metrics: dict[str, Any] = {"primary_pooling": cfg.pooling, "cohort": cohort}
    metrics.update(report.flat_metrics(overall, fold_metrics))
    metrics.update(report.comparisons(preds, cfg.pooling, n_boot=cfg.bootstrap, seed=seed))
    roc, pr = report.curves(preds)
    for pooling, sub in roc.groupby("pooling", sort=False):  # one file per line of DVC's ROC/PR plots
        write_csv(paths.plots("mil_roc") / f"{pooling}.csv", sub.drop(columns="pooling"))
    for pooling, sub in pr.groupby("pooling", sort=False):
        write_csv(paths.plots("mil_pr") / f"{pooling}.csv", sub.drop(columns="pooling"))
    plot_roc_pr(
        roc,
        pr,
        paths.figures("mil") / "roc_pr.png",
        summary=report.summary_for_plot(overall),
        title=f"{cohort}: held-out slides, patient-level {cfg.n_folds}-fold CV",
    )
    return metrics
