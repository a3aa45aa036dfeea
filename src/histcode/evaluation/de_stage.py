"""MLflow wrapper of ``evaluate_de``: one run in experiment ``histcode/de``; the metrics dict goes to MLflow
and reports/metrics/de.json, the figures folder becomes the run's ``figures/de`` artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from histcode import tracking
from histcode.config import to_dict
from histcode.evaluation.de_config import EvaluateDEConfig
from histcode.evaluation.de_report import DEEvaluation, evaluate_de
from histcode.evaluation.result_lines import as_markdown, de_lines
from histcode.prologue import open_stage


def run_evaluate_de(params: dict[str, Any] | str | Path = "params.yaml", *, cohort: str | None = None
                    ) -> DEEvaluation:
    stage = open_stage("evaluate_de", params, EvaluateDEConfig)
    base_cfg, cfg, paths = stage.base, stage.cfg, stage.paths
    cohort = cohort or base_cfg.train_cohort
    with stage.run("de", run_name=f"evaluate_de-{cohort}", metrics="de", cohort=cohort,
                   inputs=[paths.de_predictions(cohort), paths.data_dir / "attention_genes" / cohort],
                   params={"evaluate_de": to_dict(cfg), "base.seed": base_cfg.seed},
                   defer=True) as run:  # logged by a detached process: no mlflow import here
        result = evaluate_de(cfg, base_cfg, cohort=cohort)
        run.metrics = result.metrics
        tracking.set_description(as_markdown(de_lines(result.metrics)))  # the run page opens on the result
        fig_dir = paths.figures("de")
        if fig_dir.is_dir():
            tracking.log_artifacts(fig_dir, artifact_path="figures/de")
        tracking.log_artifact(paths.plots("de_pearson_hist.csv"), artifact_path="plots")
    return result
