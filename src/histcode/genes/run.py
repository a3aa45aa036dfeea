"""Stage ``train_de``: DE inputs → CV per-gene heads → per-gene MIL heatmaps → predictions and models.

Outputs (DESIGN §4): ``predictions/de/<cohort>.parquet`` and ``<cohort>_per_gene.csv``; beside them the
slide-choice record ``<cohort>_inputs.csv``, the per-gene MIL held-out predictions
``<cohort>_gene_mil.parquet`` and the fold of each patient ``<cohort>_folds.csv``; ``models/de/`` holds the
final (all-patient) linear model and one MIL regressor per heatmap gene; per-gene attention goes to
``attention_genes/<cohort>/<gene>/``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from histcode.atomic import atomic_path, write_csv, write_parquet
from histcode.config import BaseConfig, to_dict
from histcode.genes.config import DEConfig
from histcode.genes.folds import load_split_table, patient_folds
from histcode.genes.gene_mil_cv import GeneMILSettings, gene_mil_cv
from histcode.genes.heads import DEModel
from histcode.genes.inputs import DEInputs, build_de_inputs, read_bag
from histcode.genes.metrics import per_gene_metrics, summarise
from histcode.genes.targets import Targets, read_targets
from histcode.genes.train import cross_validate, fit_de_model
from histcode.paths import Paths

log = logging.getLogger(__name__)


@dataclass
class TrainDEResult:
    model: DEModel
    inputs: DEInputs
    predictions: pd.DataFrame
    per_gene: pd.DataFrame
    gene_mil: pd.DataFrame
    metrics: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, Path] = field(default_factory=dict)


def _save_torch(path: Path, obj: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


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


def load_de_data(cfg: DEConfig, base_cfg: BaseConfig, *, cohort: str | None = None) -> DEData:
    """Targets, top/bottom-l attention embeddings and patient folds of ``cohort`` (train_de and Optuna)."""
    cohort = cohort or base_cfg.train_cohort
    paths = Paths.from_base(base_cfg)
    targets = read_targets(paths.expression(cohort))
    manifest_path = paths.slides_csv(cohort)
    if not manifest_path.exists():
        raise FileNotFoundError(f"{manifest_path}: missing; run `dvc repro ingest@{cohort}` first")
    manifest = pd.read_csv(manifest_path, dtype={"slide_id": str, "patient_id": str})
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
                  feats_dir=feats_dir, attn_dir=attn_dir)


def train_de(cfg: DEConfig, base_cfg: BaseConfig, *, cohort: str | None = None) -> TrainDEResult:
    """Run the whole stage for ``cohort`` (default ``base.train_cohort``) and write its outputs."""
    torch.set_num_threads(cfg.threads)
    data = load_de_data(cfg, base_cfg, cohort=cohort)
    cohort, targets, inputs, folds, fold_info = data.cohort, data.targets, data.inputs, data.folds, data.fold_info
    y_reg, y_cls, feats_dir = data.y_reg, data.y_cls, data.feats_dir
    paths = Paths.from_base(base_cfg)
    n_ok = len(inputs.patient_ids)
    hp = {"lr": cfg.lr, "weight_decay": cfg.weight_decay, "epochs": cfg.epochs, "seed": base_cfg.seed}
    predictions, _ = cross_validate(inputs.x, y_reg, y_cls, inputs.patient_ids, targets.genes, folds,
                                    progress=cfg.progress, **hp)
    per_gene = per_gene_metrics(predictions)
    model = fit_de_model(inputs.x, y_reg, y_cls, targets.genes, **hp)

    slides = inputs.slide_ids
    mil_genes = [g for g in cfg.heatmap_genes if g in set(targets.genes)]
    for g in cfg.heatmap_genes:
        if g not in set(targets.genes):
            log.warning("heatmap gene %s has no targets in %s; no per-gene MIL for it", g, paths.expression(cohort))
    settings = GeneMILSettings(hidden=cfg.mil_hidden, attn_hidden=cfg.mil_attn_hidden, lr=cfg.mil_lr,
                               weight_decay=cfg.mil_weight_decay, epochs=cfg.mil_epochs,
                               max_tiles=cfg.mil_max_tiles, readout=cfg.mil_readout, pca_dim=cfg.mil_pca_dim)
    gene_mil, finals = gene_mil_cv(
        mil_genes, targets.log10_fc, slides, folds, lambda sid: read_bag(feats_dir / f"{sid}.h5"),
        lambda gene: paths.gene_attention(cohort, gene), settings=settings, seed=base_cfg.seed,
        progress=cfg.progress,
    )
    if len(gene_mil):
        mil_metrics = per_gene_metrics(gene_mil.assign(y_true_label=pd.NA, p_label=np.nan))
        per_gene = per_gene.merge(
            mil_metrics[["gene", "pearson_r", "spearman_r"]].rename(
                columns={"pearson_r": "mil_pearson_r", "spearman_r": "mil_spearman_r"}), on="gene", how="left")

    metrics = summarise(per_gene)
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
        "model": paths.models("de") / "de_model.pt",
    }
    write_parquet(out["predictions"], predictions, index=False)
    write_csv(out["per_gene"], per_gene)
    write_csv(out["inputs"], inputs.table)
    write_csv(out["folds"], pd.DataFrame({"patient_id": list(folds), "fold": list(folds.values())}))
    write_parquet(out["gene_mil"], gene_mil, index=False)
    _save_torch(out["model"], {"state_dict": model.state_dict(), "genes": model.genes, "in_dim": model.in_dim,
                               "config": to_dict(cfg), "cohort": cohort, "seed": base_cfg.seed})
    for gene, m in finals.items():
        _save_torch(paths.models("de") / "gene_mil" / f"{gene}.pt",
                    {"state_dict": m.state_dict(), "gene": gene, "in_dim": int(m.x_mean.numel()),
                     "hidden": cfg.mil_hidden, "attn_hidden": cfg.mil_attn_hidden, "readout": m.readout,
                     "pca_dim": m.pca_dim, "cohort": cohort})
    return TrainDEResult(model=model, inputs=inputs, predictions=predictions, per_gene=per_gene,
                         gene_mil=gene_mil, metrics=metrics, outputs=out)
