"""``histcode eval-external``: the registered MIL model on an external cohort (``make eval-cptac``).

Writes data/predictions/mil/<cohort>.csv (every slide, fold -1, split "external") and
reports/metrics/mil_external_<cohort>.json, and logs an MLflow run (experiment "mil") tagged with the model
URI, so the UI lists external results beside the CV runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from histcode import tracking
from histcode.atomic import write_csv
from histcode.config import base, load_params, section
from histcode.mil.config import MilConfig
from histcode.mil.external import evaluate_cohort
from histcode.mil.model import load_mil
from histcode.mil.stage import encoder_name
from histcode.paths import Paths


def run_external(
    params_path: str | Path, cohort: str, *, model_uri: str = "models:/histcode-mil@champion"
) -> dict[str, Any]:
    """Evaluate ``model_uri`` (registry URI or model dir) on ``cohort``; returns the metrics dict."""
    params = load_params(params_path)
    bcfg, cfg = base(params), section(MilConfig, "mil", params)
    bcfg.cohort(cohort)  # clear error for an unknown cohort
    paths = Paths.from_base(bcfg)
    torch.set_num_threads(max(1, cfg.threads))
    model = load_mil(model_uri)
    encoder = str(model.meta.get("encoder") or encoder_name(params, cfg))
    fdir = paths.features(cohort, encoder)
    with tracking.start_run(
        "mil",
        run_name=f"external/{cohort}",
        stage="eval_external",
        cohort=cohort,
        inputs=[fdir, paths.slides_csv(cohort)],
        tags={
            "model_uri": model_uri,
            "encoder": encoder,
            "pooling": str(model.meta.get("pooling", model.pooling.name)),
        },
    ):
        preds, metrics = evaluate_cohort(
            fdir,
            paths.slides_csv(cohort),
            model,
            n_boot=cfg.bootstrap,
            seed=bcfg.seed,
            chunk_tiles=cfg.chunk_tiles,
            progress=cfg.progress,
        )
        write_csv(paths.mil_predictions(cohort), preds)
        tracking.log_metrics(metrics, paths.metrics(f"mil_external_{cohort}"))
    return metrics
