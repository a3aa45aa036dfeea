"""MLflow wrapper of ``train_de``: one run in experiment ``histcode/de``, nested runs per CV fold, per-gene
metrics and the per-method table as artifacts, and the final DE model registered as ``histcode-de`` (alias
``challenger``) with its held-out predictions as ``de`` evidence for the promotion gate."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from histcode import tracking
from histcode.config import ProjectConfig, to_dict
from histcode.genes.config import de_config
from histcode.genes.metrics import per_gene_metrics, summarise
from histcode.genes.run import TrainDEResult, train_de
from histcode.prologue import open_stage
from histcode.registry.names import DE

TAGGED_METRICS = ("pearson_r_median", "spearman_r_median", "accuracy_mean", "auc_mean", "n_genes", "n_patients")


def de_evidence(predictions: pd.DataFrame) -> pd.DataFrame:
    """Held-out predictions → registry evidence of kind ``de`` (rows with a missing true value dropped)."""
    df = predictions.dropna(subset=["y_true_log10fc", "y_pred_log10fc"])
    return pd.DataFrame({"id": df["patient_id"].astype(str) + "|" + df["gene"].astype(str),
                         "patient_id": df["patient_id"].astype(str), "gene": df["gene"].astype(str),
                         "fold": df["fold"].astype(int), "y_true": df["y_true_log10fc"],
                         "y_pred": df["y_pred_log10fc"]})


def methods_markdown(methods: pd.DataFrame, registered: str, metrics: dict[str, float]) -> str:
    """The run page's opening: which method is registered and every method's held-out numbers on the same patient
    folds, as a Markdown table (the metrics table lists them as bare values, one key per method and number)."""

    def num(v: Any, fmt: str) -> str:
        return "—" if v is None or v != v else format(float(v), fmt)

    n_genes, n_patients = int(metrics.get("n_genes", 0)), int(metrics.get("n_patients", 0))
    rows = sorted(methods.to_dict("records"), key=lambda r: r["method"] != registered)
    lines = [f"**Registered: {registered}**, median held-out Pearson r "
             f"{num(metrics.get('pearson_r_median'), '.3f')} over {n_genes} genes and {n_patients} patients "
             f"({int(metrics.get('n_folds', 0))} patient folds). Which genes beat random (BH): the evaluate_de run.",
             "", "| method | features | chosen penalty / rank / components | median r | mean r | balanced accuracy "
             "(mean) | seconds |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        chosen = " / ".join(num(r.get(k), "g") for k in ("chosen_alpha", "chosen_rank", "chosen_n_components"))
        name = f"**{r['method']}**" if r["method"] == registered else str(r["method"])
        seconds = metrics.get(f"method.{r['method']}.seconds")
        lines.append(f"| {name} | {int(r['n_features'])} | {chosen} | {num(r['pearson_r_median'], '.3f')} | "
                     f"{num(r['pearson_r_mean'], '.3f')} | {num(r['balanced_accuracy_mean'], '.3f')} | "
                     f"{num(seconds, '.1f')} |")
    return "\n".join(lines)


def run_train_de(params: dict[str, Any] | str | Path = "params.yaml", *, cohort: str | None = None,
                 register: bool = True) -> TrainDEResult:
    """Read ``base`` + ``de`` from params, train, log everything to MLflow and register the model."""
    stage = open_stage("train_de", params)  # the de section is typed by de_config (attention_model resolved)
    data, base_cfg, paths = stage.params, stage.base, stage.paths
    cfg = de_config(data)
    log2_threshold = ProjectConfig.load(data).de_log2_threshold
    cohort = cohort or base_cfg.train_cohort
    inputs = [paths.expression(cohort), paths.features(cohort, cfg.encoder),
              paths.attention(cohort, cfg.attention_model), paths.splits(cohort)]
    with stage.run("de", run_name=f"train_de-{cohort}", cohort=cohort, inputs=inputs, metrics="train_de",
                   params={"de": to_dict(cfg), "base.seed": base_cfg.seed}) as run:
        result = train_de(cfg, base_cfg, cohort=cohort, log2_threshold=log2_threshold)
        run.metrics = result.metrics  # + reports/metrics/train_de.json: the methods' seconds live there, not in data
        tracking.set_description(methods_markdown(result.methods, cfg.method, result.metrics))
        for fold, sub in result.predictions.groupby("fold"):
            with tracking.start_run("de", run_name=f"fold-{fold}", stage="train_de", cohort=cohort, nested=True,
                                    tags={"fold": str(fold)}):
                fold_metrics = summarise(per_gene_metrics(sub))
                fold_metrics["n_patients"] = float(sub["patient_id"].nunique())
                tracking.log_metrics(fold_metrics)
        for key in ("per_gene", "inputs", "folds", "methods_table"):
            tracking.log_artifact(result.outputs[key], artifact_path="de")
        if register:
            from histcode.io.features import feature_set_identity
            from histcode.registry import log_and_register
            from histcode.registry.evidence import attach_evidence

            with tempfile.TemporaryDirectory() as tmp:
                genes_file = Path(tmp) / "genes.txt"
                genes_file.write_text("\n".join(result.model.genes) + "\n")
                tracking.log_artifact(genes_file, artifact_path="de")
            mv = log_and_register(result.model, DE,
                             input_example=np.asarray(result.design[:2], dtype=np.float32),
                             metrics={k: result.metrics[k] for k in TAGGED_METRICS if k in result.metrics},
                             tags={"cohort": cohort, "de.method": cfg.method,
                                   "per_gene_artifact": "de/" + result.outputs["per_gene"].name,
                                   "encoder": cfg.encoder, **{k: v for k, v in feature_set_identity(
                                       paths.features(cohort, cfg.encoder)).items() if k != "encoder"},
                                   "output": "(B, G, 2): [..., 0] log10(fc+1), [..., 1] P(DE); genes in de/genes.txt"})
            attach_evidence(DE, mv.version, de_evidence(result.predictions), kind="de", null=result.cv_null)
    return result
