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
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from histcode import tracking
from histcode.atomic import write_csv, write_json, write_text
from histcode.cohort.splits import make_patient_splits, save_splits, site_groups, split_groups_meta
from histcode.config import ProjectConfig, to_dict
from histcode.cpus import torch_threads
from histcode.io.manifest import LABELLED_COLUMNS, read_manifest
from histcode.metrics.classification_plots import plot_roc_pr
from histcode.mil import report
from histcode.mil.bags import BagCache, bag_shape, usable_bags
from histcode.mil.config import MilConfig
from histcode.mil.cv import PRED_COLUMNS, FoldResult, final_epochs, new_model
from histcode.mil.decision import TAG, cv_calibration
from histcode.mil.final import StageContext, file_meta, final_model
from histcode.mil.model import INDEX_FILE
from histcode.mil.parallel import FoldRunner
from histcode.paths import Paths
from histcode.prologue import Stage, open_stage
from histcode.tables import CV_NAMES

log = logging.getLogger(__name__)


def encoder_version(encoder_dir: Path) -> str:
    """``histcode-encoder/<version>`` of the encoder saved in ``encoder_dir`` (see ``registry.lineage``)."""
    from histcode.registry.lineage import encoder_dir_version

    return encoder_dir_version(encoder_dir)


def method_params(ctx: StageContext, method: str) -> dict[str, Any]:
    """What a (method, encoder) run is: its architecture spec plus the training settings, as MLflow params."""
    cfg = ctx.cfg
    spec = new_model(method, ctx.in_dim, cfg, seed=0).spec()
    train = {k: getattr(cfg, k) for k in ("lr", "weight_decay", "max_epochs", "min_epochs", "patience",
                                          "max_train_tiles", "n_folds", "val_frac")}
    return {**spec, **train, "encoder": ctx.tags["encoder"], "cohort": ctx.cohort}


def _log_fold(ctx: StageContext, res: FoldResult, params: dict[str, Any]) -> None:
    """One CV fold as a nested MLflow run: params, per-epoch losses (one batch write), held-out metrics."""
    with tracking.start_run(
        "mil",
        run_name=f"{res.pooling}/{ctx.tags['encoder']}/fold{res.fold}",
        stage="train_mil",
        nested=True,
        cohort=ctx.cohort,
        params={**params, "fold": res.fold},
        tags={**ctx.tags, "pooling": res.pooling, "fold": str(res.fold)},
    ) as run:
        tracking.log_history(run.info.run_id, res.history, step_key="epoch")
        tracking.log_metrics({k: v for k, v in res.metrics.items() if k != "threshold"})


def method_context(ctx: StageContext, method: str) -> StageContext:
    """The context a method trains in: baselines (not the primary method) get ``baseline_max_epochs`` /
    ``baseline_patience`` when set, HistCode and the encoder comparison the full schedule."""
    cfg = ctx.cfg
    if method == cfg.pooling:
        return ctx
    changes = {}
    if cfg.baseline_max_epochs:
        changes["max_epochs"] = min(cfg.max_epochs, cfg.baseline_max_epochs)
        changes["min_epochs"] = min(cfg.min_epochs, changes["max_epochs"])
    if cfg.baseline_patience:
        changes["patience"] = min(cfg.patience, cfg.baseline_patience)
    return replace(ctx, cfg=replace(cfg, **changes)) if changes else ctx


def submit_method(runner: FoldRunner, ctx: StageContext, splits: pd.DataFrame, method: str) -> list[Any]:
    """Queue every CV fold of one (method, encoder); returns their futures in fold order."""
    mctx = method_context(ctx, method)
    return [
        runner.submit(mctx.bags, mctx.manifest, splits, k, method, mctx.cfg, in_dim=mctx.in_dim, seed=mctx.seed)
        for k in range(mctx.cfg.n_folds)
    ]


def run_method(
    ctx: StageContext, method: str, futures: list[Any], *, final: bool
) -> tuple[pd.DataFrame, list[dict[str, float]], dict[str, Any]]:
    """Collect the CV of one (method, encoder) into its own MLflow run (params + plain held-out metrics,
    the compare view's row), fold runs under it, and with ``final`` the final model
    (``<method>/<encoder>/final``). Returns (held-out predictions, fold metrics, info incl. ``time_s``)."""
    ctx = method_context(ctx, method)
    cfg, encoder = ctx.cfg, ctx.tags["encoder"]
    params = method_params(ctx, method)
    with tracking.start_run(
        "mil",
        run_name=f"{method}/{encoder}",
        stage="train_mil",
        nested=True,
        cohort=ctx.cohort,
        params=params,
        tags={**ctx.tags, "pooling": method, "fold": "cv"},
    ):
        folds = [f.result() for f in futures]
        for res in folds:
            _log_fold(ctx, res, params)
        held_out = pd.concat([f.predictions for f in folds], ignore_index=True)
        cv = report.pooled_metrics(held_out, n_boot=cfg.bootstrap, seed=ctx.seed)[method]
        cv_metrics = {k: v for k, v in cv.items() if k.split("_ci_")[0] in report.SUMMARY_KEYS}
        tracking.log_metrics(cv_metrics)
        info: dict[str, Any] = {"epochs": final_epochs(folds, cfg)}
        t_final = time.perf_counter()
        if final:
            info.update(final_model(ctx, method, epochs=info["epochs"], held_out=held_out,
                                    params=params, cv_metrics=cv_metrics))
        # the method's own compute: its folds (wherever they ran) + final model, attention export, registry
        info["time_s"] = sum(f.metrics.get("fit_s", 0.0) for f in folds) + time.perf_counter() - t_final
        tracking.log_metrics({"time_s": info["time_s"]})
    log.info("train_mil: %s/%s AUC %.3f (%.0f s)", method, encoder, cv.get("auc", float("nan")), info["time_s"])
    return held_out, [f.metrics for f in folds], info


def other_encoder_context(ctx: StageContext, encoder: str) -> StageContext | None:
    """The stage context on another feature set of the same slides (same splits); None when it has none."""
    fdir = ctx.paths.features(ctx.cohort, encoder)
    try:
        fpaths, failures = usable_bags(fdir, list(ctx.manifest["slide_id"]), cohort=ctx.cohort,
                                       who=f"train_mil ({encoder})")
    except FileNotFoundError as exc:
        log.warning("train_mil: encoder %s skipped: %s", encoder, exc)
        return None
    ctx.failures.update({sid: f"{encoder} features: {why}" for sid, why in failures.items()})
    return replace(ctx, bags=BagCache(fpaths, ctx.cfg.cache_mb), in_dim=bag_shape(next(iter(fpaths.values())))[1],
                   tags={"encoder": encoder}, failures={})


def prepare(stage: Stage) -> tuple[StageContext, pd.DataFrame, Path]:
    """Manifest, usable feature files (bad ones recorded), saved splits → (context, splits, dir)."""
    bcfg, cfg, paths = stage.base, stage.cfg, stage.paths
    cohort = bcfg.train_cohort
    encoder = ProjectConfig.load(stage.params).require_mil_encoder()
    manifest = read_manifest(paths.slides_csv(cohort), columns=LABELLED_COLUMNS, labelled=True)
    fdir = paths.features(cohort, encoder)
    fpaths, failures = usable_bags(fdir, list(manifest["slide_id"]), cohort=cohort, who="train_mil")
    usable = manifest[manifest["slide_id"].isin(fpaths)]
    groups = site_groups(usable, cohort) if cfg.cv_groups == "site" else None
    splits = make_patient_splits(usable, cfg.n_folds, cfg.val_frac, cfg.test_frac, bcfg.seed, groups=groups)
    save_splits(
        splits,
        paths.splits(cohort),
        meta={"seed": bcfg.seed, "val_frac": cfg.val_frac, "cohort": cohort, "made_by": "train_mil",
              **(split_groups_meta(splits, groups) if groups is not None else {})},
    )
    from histcode.io.features import feature_set_identity
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
    stage = open_stage("train_mil", params_path, MilConfig, "mil", seed=True)
    params = stage.params
    ctx, splits, fdir = prepare(stage)
    cfg, paths = ctx.cfg, ctx.paths
    torch.set_num_threads(torch_threads(cfg.threads, "train_mil"))
    all_preds, fold_metrics, final_info, times = [], {}, {}, {}
    others = ProjectConfig.load(params).comparison_encoders()
    encoder_preds: dict[str, list[pd.DataFrame]] = {}
    with stage.run(
        "mil",
        run_name=f"train_mil/{ctx.cohort}",
        metrics="mil",
        cohort=ctx.cohort,
        params={**to_dict(cfg), "encoder": ctx.tags["encoder"]},
        tags=ctx.tags,
        inputs=[fdir, paths.slides_csv(ctx.cohort)],
    ) as run:
        with FoldRunner(cfg.workers, threads=1) as runner:
            # queue every fold first (HistCode's, the baselines', the other encoders'), then collect in order
            queued = [(ctx, m, submit_method(runner, ctx, splits, m)) for m in cfg.poolings()]
            for encoder in others:  # the encoder comparison: same folds, CV only
                octx = other_encoder_context(ctx, encoder)
                if octx is not None:
                    queued += [(octx, m, submit_method(runner, octx, splits, m)) for m in cfg.encoder_methods]
            for mctx, method, futures in queued:
                encoder = mctx.tags["encoder"]
                primary = mctx is ctx
                held_out, folds, info = run_method(mctx, method, futures, final=primary)
                if primary:
                    all_preds.append(held_out)
                    fold_metrics[method] = folds
                    times[method] = info.pop("time_s")
                    final_info[method] = info
                else:
                    encoder_preds.setdefault(encoder, []).append(held_out)
                    times[f"{method}/{encoder}"] = info["time_s"]
        metrics, description = write_reports(
            pd.concat(all_preds, ignore_index=True), fold_metrics, cfg, paths, ctx.cohort, seed=ctx.seed,
            times=times, encoder_preds={e: pd.concat(p, ignore_index=True) for e, p in encoder_preds.items()},
            encoder=ctx.tags["encoder"],
        )
        preds = pd.concat(all_preds, ignore_index=True)
        reliability = paths.figures("mil") / "reliability.png"
        metrics.update(
            cv_calibration(
                preds, {p: i[TAG] for p, i in final_info.items()}, cfg, reliability,
                title=f"{ctx.cohort}: held-out slides, {cfg.n_folds}-fold CV (out-of-fold P)",
            )
        )
        tracking.log_artifact(reliability)
        metrics.update(
            {
                "n_slides": float(len(ctx.feature_files)),
                "n_failed": float(len(ctx.failures)),
                "n_patients": float(ctx.manifest["patient_id"].nunique()),
            }
        )
        run.metrics = metrics
        tracking.log_artifact(paths.figures("mil") / "roc_pr.png")
        tracking.log_artifact(table_dir(paths) / "table1.md")
        tracking.set_description(description)
    write_json(
        paths.models("mil") / INDEX_FILE,
        {"primary": cfg.pooling, "cohort": ctx.cohort, **file_meta(ctx.tags), "models": final_info},
    )
    write_csv(
        paths.models("mil") / "failures.csv",
        pd.DataFrame(sorted(ctx.failures.items()), columns=["slide_id", "reason"]),
    )
    return metrics


def table_dir(paths: Paths) -> Path:
    """reports/mil/: Table 1 as Markdown and its full detail (CIs, folds) as JSON (not declared metrics)."""
    return paths.reports_dir / "mil"


def write_reports(
    preds: pd.DataFrame,
    fold_metrics: dict[str, list[dict[str, float]]],
    cfg: MilConfig,
    paths: Paths,
    cohort: str,
    *,
    seed: int,
    times: dict[str, float] | None = None,
    encoder_preds: dict[str, pd.DataFrame] | None = None,
    encoder: str = "",
) -> tuple[dict[str, Any], str]:
    """Held-out predictions CSV, Table 1 (declared metrics: a few keys per method; reports/mil/: Markdown +
    detail JSON with CIs and folds), ROC/PR CSVs (one per method) and the ROC+PR figure. Returns the metrics and
    the run's description: one sentence (what a collapsed description shows), then Table 1 with its CIs."""
    write_csv(paths.mil_predictions(cohort), preds[PRED_COLUMNS])
    times = times or {}
    table = report.table1(preds, cfg.pooling, n_boot=cfg.bootstrap, seed=seed, times=times)
    metrics: dict[str, Any] = {"primary_pooling": cfg.pooling, "cohort": cohort, "cv_groups": cfg.cv_groups}
    metrics.update(report.declared_metrics(table, cfg.pooling))
    cv = f"{CV_NAMES[cfg.cv_groups]} {cfg.n_folds}-fold CV"
    title = f"Table 1 — {cohort}, {encoder} features: held-out slides of {cv} (n = {int(table['n'].max())})"
    md = report.table_markdown(table, cfg.pooling, title=title,
                               note="95 % percentile-bootstrap CIs over slides; ΔAUC = HistCode − method on the "
                                    f"same slides (paired bootstrap); train time = seconds of the {cfg.n_folds} CV "
                                    "fits + final model, summed (folds run in parallel processes).")
    detail: dict[str, Any] = {
        "table1": table.to_dict("records"),
        "folds": report.flat_metrics(report.pooled_metrics(preds, n_boot=cfg.bootstrap, seed=seed), fold_metrics),
        "comparisons": report.comparisons(preds, cfg.pooling, n_boot=cfg.bootstrap, seed=seed),
    }
    for enc, epreds in (encoder_preds or {}).items():
        # the encoder comparison of the primary encoder's methods on the same folds (paper Fig. 6)
        mine = preds[preds["pooling"].isin(epreds["pooling"].unique())]
        both = pd.concat([mine.assign(pooling=mine["pooling"] + f"/{encoder}"),
                          epreds.assign(pooling=epreds["pooling"] + f"/{enc}")], ignore_index=True)
        ref_method = cfg.pooling if cfg.pooling in set(epreds["pooling"]) else str(epreds["pooling"].iloc[0])
        ref = f"{ref_method}/{encoder}"
        etimes = {**{f"{k}/{encoder}": v for k, v in times.items()}, **times}
        etable = report.table1(both, ref, n_boot=cfg.bootstrap, seed=seed, times=etimes)
        other = etable[etable["method"].str.endswith(f"/{enc}")]
        metrics.update(report.declared_metrics(other, ref))
        detail[f"encoder_{enc}"] = etable.to_dict("records")
        md += "\n" + report.table_markdown(
            etable, ref, title=f"Encoder comparison — {encoder} vs {enc} features, same folds",
            note=f"ΔAUC = {ref} − row (paired bootstrap on the same slides).")
    write_text(table_dir(paths) / "table1.md", md)
    write_json(table_dir(paths) / "table1.json", detail)
    roc, pr = report.curves(preds)
    for pooling, sub in roc.groupby("pooling", sort=False):  # one file per line of DVC's ROC/PR plots
        write_csv(paths.plots("mil_roc") / f"{pooling}.csv", sub.drop(columns="pooling"))
    for pooling, sub in pr.groupby("pooling", sort=False):
        write_csv(paths.plots("mil_pr") / f"{pooling}.csv", sub.drop(columns="pooling"))
    overall = report.pooled_metrics(preds, n_boot=cfg.bootstrap, seed=seed)
    plot_roc_pr(
        roc,
        pr,
        paths.figures("mil") / "roc_pr.png",
        summary=report.summary_for_plot(overall),
        title=f"{cohort}: held-out slides, {cv}",
    )
    return metrics, f"{report.headline(table.to_dict('records'), cfg.pooling)}\n\n{md}"
