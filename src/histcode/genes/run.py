"""Stage ``train_de``: DE inputs → CV of every DE method on the same folds → per-gene MIL heatmaps → outputs.

Outputs (DESIGN §4): ``predictions/de/<cohort>.parquet`` and ``<cohort>_per_gene.csv`` (the registered
method ``de.method``); beside them every method's held-out predictions ``<cohort>_methods.parquet`` (column
``method``) and their summary ``<cohort>_methods.csv`` (median/mean r, chosen penalties; no timings, so the
same inputs give the same file: each method's seconds are the metric ``method.<name>.seconds``), the
slide-choice record ``<cohort>_inputs.csv``, the per-gene MIL held-out predictions
``<cohort>_gene_mil.parquet``, the fold of each patient ``<cohort>_folds.csv`` and, with ``de.null_shuffles``,
the held-out correlations of ``de.method`` re-cross-validated on shuffled targets ``<cohort>_cv_null.parquet``
(``histcode.genes.null``); ``models/de/`` holds the
final (all-patient) model of ``de.method`` (``de_model.pt``; with ``summary_transform.joblib``, the fitted
slide summariser, for a ``summaries`` method) and one MIL regressor per heatmap gene; per-gene attention goes
to ``attention_genes/<cohort>/<gene>/``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits

from histcode.atomic import atomic_path, save_torch, write_csv, write_parquet
from histcode.config import DEFAULT_LOG2_THRESHOLD, BaseConfig, ConfigError, to_dict
from histcode.cpus import torch_threads
from histcode.genes.config import DEConfig
from histcode.genes.folds import load_split_table, patient_folds
from histcode.genes.gene_mil_cv import GeneMilCV, GeneMILSettings
from histcode.genes.heads import DEModel, LinearDEModel
from histcode.genes.inputs import DEInputs, build_de_inputs, read_bag
from histcode.genes.linear import LinearFit
from histcode.genes.methods import MethodSettings, Representations, cross_validate_method, fit_final
from histcode.genes.metrics import per_gene_metrics, summarise
from histcode.genes.null import empty_null, shuffled_cv_null
from histcode.genes.summaries import SlideSummaries, SummarySettings, summaries_from_bags
from histcode.genes.targets import Targets, read_targets
from histcode.io.manifest import read_manifest
from histcode.paths import Paths

log = logging.getLogger(__name__)


@dataclass
class TrainDEResult:
    model: DEModel | LinearDEModel
    inputs: DEInputs
    design: np.ndarray
    methods: pd.DataFrame
    predictions: pd.DataFrame
    per_gene: pd.DataFrame
    gene_mil: pd.DataFrame
    cv_null: pd.DataFrame = field(default_factory=empty_null)
    metrics: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, Path] = field(default_factory=dict)


def _save_torch(path: Path, obj: dict) -> None:
    save_torch(path, obj)


@dataclass
class DEData:
    """train_de's inputs: DE inputs (P, 2D), targets y_reg/y_cls (P, G), each patient's fold, where they came from."""

    cohort: str
    targets: Targets
    inputs: DEInputs
    folds: dict[str, int]
    fold_info: dict[str, Any]
    y_reg: np.ndarray
    y_cls: np.ndarray
    feats_dir: Path
    attn_dir: Path
    summaries: SlideSummaries | None = None


def summary_settings(cfg: DEConfig) -> SummarySettings:
    """The ``summaries`` representation's settings from the ``de`` section."""
    return SummarySettings(pca_dim=cfg.summary_pca_dim, quantiles=tuple(cfg.summary_quantiles),
                           n_prototypes=cfg.n_prototypes, max_tiles=cfg.summary_max_tiles,
                           center_slides=cfg.summary_center_slides)


def method_settings(cfg: DEConfig, seed: int, log2_threshold: float) -> MethodSettings:
    """The DE models' training settings from the ``de`` section (heads: lr/weight_decay/epochs; linear: inner
    folds)."""
    return MethodSettings(lr=cfg.lr, weight_decay=cfg.weight_decay, epochs=cfg.epochs, inner_folds=cfg.inner_folds,
                          log2_threshold=log2_threshold, seed=seed)


def load_summaries(cfg: DEConfig, inputs: DEInputs, feats_dir: Path, seed: int) -> SlideSummaries:
    """All-tile summaries of each patient's DE slide (the same slide the paper inputs came from)."""
    slides = inputs.slide_ids
    bags = [read_bag(feats_dir / f"{slides[p]}.h5")[0] for p in inputs.patient_ids]
    return summaries_from_bags(inputs.patient_ids, bags, summary_settings(cfg), seed)


def load_de_data(cfg: DEConfig, base_cfg: BaseConfig, *, cohort: str | None = None) -> DEData:
    """Targets, top/bottom-l attention embeddings and patient folds of ``cohort`` (train_de and Optuna)."""
    if cfg.attention_model is None:
        raise ConfigError("de.attention_model: null (= mil.pooling) is resolved by histcode.genes.config.de_config; "
                          "read the de section with it")
    cohort = cohort or base_cfg.train_cohort
    paths = Paths.from_base(base_cfg)
    targets = read_targets(paths.expression(cohort))
    manifest = read_manifest(paths.slides_csv(cohort))
    feats_dir = paths.features(cohort, cfg.encoder)
    attn_dir = paths.attention(cohort, cfg.attention_model)
    inputs = build_de_inputs(manifest, list(targets.log10_fc.index), feats_dir, attn_dir,
                             top_l=cfg.top_l, bottom_l=cfg.bottom_l, progress=cfg.progress)
    n_ok = len(inputs.patient_ids)
    if n_ok < 4:
        reasons = "; ".join(inputs.table.loc[inputs.table["status"] != "ok", "reason"].astype(str).head(3))
        raise ValueError(f"{cohort}: only {n_ok} patients have DE inputs (need >= 4); check {feats_dir} and "
                         f"{attn_dir} (run `dvc repro train_mil`). First reasons: {reasons}")
    folds, fold_info = patient_folds(inputs.patient_ids, load_split_table(paths.splits(cohort)),
                                     n_folds=cfg.n_folds, seed=base_cfg.seed, where=str(paths.splits(cohort)))
    ids = inputs.patient_ids
    return DEData(cohort=cohort, targets=targets, inputs=inputs, folds=folds, fold_info=fold_info,
                  y_reg=targets.log10_fc.loc[ids].to_numpy(dtype=np.float64),
                  y_cls=targets.labels.loc[ids].to_numpy(dtype=np.float64, na_value=np.nan),
                  feats_dir=feats_dir, attn_dir=attn_dir,
                  summaries=load_summaries(cfg, inputs, feats_dir, base_cfg.seed)
                  if any(m.startswith("summaries/") for m in cfg.all_methods) else None)


def linear_module(fit: LinearFit, genes: list[str], log2_threshold: float) -> LinearDEModel:
    """The registered torch form of a fitted linear model."""
    t = {k: torch.from_numpy(np.asarray(getattr(fit, k), dtype=np.float32))
         for k in ("coef", "intercept", "x_mean", "x_scale", "y_mean", "y_scale")}
    return LinearDEModel(genes=genes, log2_threshold=log2_threshold, **t).eval()


def train_de(cfg: DEConfig, base_cfg: BaseConfig, *, cohort: str | None = None,
             log2_threshold: float = DEFAULT_LOG2_THRESHOLD) -> TrainDEResult:
    """Run the whole stage for ``cohort`` (default ``base.train_cohort``) and write its outputs.

    ``log2_threshold`` is ``expression.log2_threshold`` (the binary label), used by the linear models' P(DE).
    """
    torch.set_num_threads(torch_threads(cfg.threads, "train_de"))
    data = load_de_data(cfg, base_cfg, cohort=cohort)
    cohort, targets, inputs, folds, fold_info = data.cohort, data.targets, data.inputs, data.folds, data.fold_info
    y_reg, y_cls, feats_dir = data.y_reg, data.y_cls, data.feats_dir
    paths = Paths.from_base(base_cfg)
    n_ok = len(inputs.patient_ids)
    settings = method_settings(cfg, base_cfg.seed, log2_threshold)
    reps = Representations(inputs.patient_ids, inputs.x, data.summaries)
    mil_genes = [g for g in cfg.heatmap_genes if g in set(targets.genes)]
    for g in cfg.heatmap_genes:
        if g not in set(targets.genes):
            log.warning("heatmap gene %s has no targets in %s; no per-gene MIL for it", g, paths.expression(cohort))
    mil_settings = GeneMILSettings(hidden=cfg.mil_hidden, attn_hidden=cfg.mil_attn_hidden, lr=cfg.mil_lr,
                                   weight_decay=cfg.mil_weight_decay, epochs=cfg.mil_epochs,
                                   max_tiles=cfg.mil_max_tiles, readout=cfg.mil_readout, pca_dim=cfg.mil_pca_dim)
    # the per-gene MIL fits start first, in the worker processes; the methods' CV runs beside them at ``threads``
    # BLAS threads (numpy's default, every core, spun against the workers): train_de 26 -> 22 s on the demo
    with GeneMilCV(mil_genes, targets.log10_fc, inputs.slide_ids, folds,
                   lambda sid: read_bag(feats_dir / f"{sid}.h5"), lambda gene: paths.gene_attention(cohort, gene),
                   settings=mil_settings, seed=base_cfg.seed, progress=cfg.progress, workers=cfg.mil_workers,
                   threads=cfg.threads) as gene_cv, threadpool_limits(cfg.threads):
        frames, records = [], []
        for method in cfg.all_methods:
            pred_m, rec = cross_validate_method(method, reps, y_reg, y_cls, targets.genes, folds, settings)
            summary = summarise(per_gene_metrics(pred_m.drop(columns="method")))
            rec.update({k: summary[k] for k in ("pearson_r_median", "pearson_r_mean", "balanced_accuracy_mean")
                        if k in summary})
            log.info("DE method %s: median held-out r %.3f (%.1f s)", method, rec["pearson_r_median"],
                     rec["seconds"])
            frames.append(pred_m)
            records.append(rec)
        all_predictions = pd.concat(frames, ignore_index=True)
        methods = pd.DataFrame.from_records(records).drop(columns="seconds")  # timings: metrics only, not data
        predictions = frames[0].drop(columns="method")
        per_gene = per_gene_metrics(predictions)
        cv_null = shuffled_cv_null(cfg.method, reps, y_reg, y_cls, targets.genes, folds, settings,
                                   n_shuffles=cfg.null_shuffles, seed=base_cfg.seed, progress=cfg.progress)
        fitted, transform, design = fit_final(cfg.method, reps, y_reg, y_cls, targets.genes, settings)
        model = fitted if isinstance(fitted, DEModel) else linear_module(fitted, targets.genes, log2_threshold)
        gene_mil, finals = gene_cv.collect()
    if len(gene_mil):
        mil_metrics = per_gene_metrics(gene_mil.assign(y_true_label=pd.NA, p_label=np.nan))
        per_gene = per_gene.merge(
            mil_metrics[["gene", "pearson_r", "spearman_r"]].rename(
                columns={"pearson_r": "mil_pearson_r", "spearman_r": "mil_spearman_r"}), on="gene", how="left")

    metrics = summarise(per_gene)
    for rec in records:
        metrics[f"method.{rec['method']}.pearson_r_median"] = float(rec["pearson_r_median"])
        metrics[f"method.{rec['method']}.seconds"] = float(rec["seconds"])
    metrics.update({"n_patients": float(n_ok), "n_patients_excluded": float(len(inputs.table) - n_ok),
                    "n_folds": float(fold_info["n_folds"]), "n_patients_fold_assigned": float(fold_info["assigned"]),
                    "n_short_bags": float(inputs.table.get("short_bag", pd.Series(dtype=bool)).fillna(False)
                                          .astype(bool).sum())})
    for gene in mil_genes:
        row = per_gene.loc[per_gene["gene"] == gene, "mil_pearson_r"]
        metrics[f"mil_pearson_r.{gene}"] = float(row.iloc[0]) if len(row) else float("nan")

    pred_dir = paths.de_predictions(cohort).parent
    out = {
        "predictions": paths.de_predictions(cohort),
        "per_gene": paths.de_per_gene(cohort),
        "inputs": pred_dir / f"{cohort}_inputs.csv",
        "folds": pred_dir / f"{cohort}_folds.csv",
        "gene_mil": pred_dir / f"{cohort}_gene_mil.parquet",
        "methods": pred_dir / f"{cohort}_methods.parquet",
        "methods_table": pred_dir / f"{cohort}_methods.csv",
        "cv_null": pred_dir / f"{cohort}_cv_null.parquet",
        "model": paths.models("de") / "de_model.pt",
    }
    write_parquet(out["predictions"], predictions, index=False)
    write_csv(out["per_gene"], per_gene)
    write_csv(out["inputs"], inputs.table)
    write_csv(out["folds"], pd.DataFrame({"patient_id": list(folds), "fold": list(folds.values())}))
    write_parquet(out["gene_mil"], gene_mil, index=False)
    write_parquet(out["methods"], all_predictions, index=False)
    write_csv(out["methods_table"], methods)
    write_parquet(out["cv_null"], cv_null, index=False)
    _save_torch(out["model"], {"state_dict": model.state_dict(), "genes": model.genes, "in_dim": model.in_dim,
                               "method": cfg.method, "model_class": type(model).__name__,
                               "log2_threshold": log2_threshold, "config": to_dict(cfg), "cohort": cohort,
                               "seed": base_cfg.seed})
    transform_path = paths.models("de") / "summary_transform.joblib"
    if transform is not None:
        import joblib

        out["summary_transform"] = transform_path
        with atomic_path(transform_path) as tmp:
            joblib.dump(transform, tmp)
    elif transform_path.exists():
        transform_path.unlink()
    for gene, m in finals.items():
        _save_torch(paths.models("de") / "gene_mil" / f"{gene}.pt",
                    {"state_dict": m.state_dict(), "gene": gene, "in_dim": int(m.x_mean.numel()),
                     "hidden": cfg.mil_hidden, "attn_hidden": cfg.mil_attn_hidden, "readout": m.readout,
                     "pca_dim": m.pca_dim, "cohort": cohort})
    return TrainDEResult(model=model, inputs=inputs, design=design, methods=methods, predictions=predictions,
                         per_gene=per_gene,
                         gene_mil=gene_mil, cv_null=cv_null, metrics=metrics, outputs=out)
