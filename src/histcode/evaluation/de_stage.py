"""MLflow wrapper of ``evaluate_de``: one run in experiment ``histcode/de``; the metrics dict goes to MLflow
and reports/metrics/de.json, the figures folder becomes the run's ``figures/de`` artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from histcode.config import base, load_params, section, to_dict
from histcode.evaluation.de_config import EvaluateDEConfig
from histcode.evaluation.de_report import DEEvaluation, evaluate_de
from histcode.paths import Paths
from histcode.tracking import log_metrics, start_run


def run_evaluate_de(params: dict[str, Any] | str | Path = "params.yaml", *, cohort: str | None = None
                    ) -> DEEvaluation:
    import mlflow

    data = params if isinstance(params, dict) else load_params(params)
    base_cfg = base(data)
    cfg = section(EvaluateDEConfig, "evaluate_de", data)
    cohort = cohort or base_cfg.train_cohort
    paths = Paths.from_base(base_cfg)
    with start_run("de", run_name=f"evaluate_de-{cohort}", stage="evaluate_de", cohort=cohort,
                   inputs=[paths.de_predictions(cohort), paths.data_dir / "attention_genes" / cohort],
                   params={"evaluate_de": to_dict(cfg), "base.seed": base_cfg.seed}):
        result = evaluate_de(cfg, base_cfg, cohort=cohort)
        log_metrics(result.metrics, paths.metrics("de"))
        fig_dir = paths.figures("de")
        if fig_dir.is_dir():
            mlflow.log_artifacts(str(fig_dir), artifact_path="figures/de")
        mlflow.log_artifact(str(paths.plots("de_pearson_hist.csv")), artifact_path="plots")
    return result
