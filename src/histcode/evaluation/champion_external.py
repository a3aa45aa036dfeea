"""External validation of the promoted models (``make eval-cptac``).

Pulls ``histcode-encoder@champion`` and ``histcode-mil@champion`` from the registry, ingests and tiles the
external cohort when its manifests/tiles are missing (both resume), extracts its features with the champion
encoder into ``data/external/<cohort>/features/encoder-v<N>/`` (resumable, outside DVC-owned outputs), and
reports accuracy/AUC with bootstrap CIs, ROC/PR curves and predictions to MLflow and
``reports/metrics/eval_<cohort>.json``.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

from histcode import tracking
from histcode.atomic import write_csv
from histcode.config import base, load_params, section
from histcode.paths import Paths
from histcode.registry.models import CHAMPION, RegistryError, get_version, model_uri

log = logging.getLogger(__name__)

ENCODER = "histcode-encoder"
MIL = "histcode-mil"


def _ensure_inputs(params: dict[str, Any], cohort: str, paths: Paths) -> None:
    """Ingest and tile ``cohort`` unless a previous run (DVC or this command) left complete outputs."""
    if not paths.slides_csv(cohort).exists():
        from histcode.cohort.stage import run_ingest

        log.info("ingesting %s", cohort)
        run_ingest(cohort, params)
    if not paths.process_list(cohort).exists():
        from histcode.slides.stage import run_tile

        log.info("tiling %s", cohort)
        run_tile(cohort, params)


def evaluate_champions(
    params_path: str | Path, cohort: str, *, alias: str = CHAMPION, progress: bool = True
) -> dict[str, Any]:
    """Run the ``alias`` encoder + MIL model on ``cohort``; returns the metrics dict (also written to disk)."""
    import torch

    from histcode.evaluation.classification import roc_pr_curves
    from histcode.evaluation.classification_plots import plot_roc_pr
    from histcode.features.stage import run_extract
    from histcode.mil.config import MilConfig
    from histcode.mil.external import evaluate_cohort
    from histcode.mil.model import load_mil

    params = load_params(params_path)
    bcfg = base(params)
    bcfg.cohort(cohort)  # unknown cohort → clear error
    paths = Paths.from_base(bcfg)
    enc_mv, mil_mv = get_version(ENCODER, alias), get_version(MIL, alias)
    expected = str(mil_mv.tags.get("encoder_version", ""))
    if expected and expected != f"{ENCODER}/{enc_mv.version}":
        log.warning("%s@%s (v%s) was trained on %s features, but %s@%s is v%s: features of the latter are used",
                    MIL, alias, mil_mv.version, expected, ENCODER, alias, enc_mv.version)
    _ensure_inputs(params, cohort, paths)

    feature_set = f"encoder-v{enc_mv.version}"
    run_params = copy.deepcopy(params)
    run_params["extract"] = {**run_params.get("extract", {}), "progress": progress,
                             "sources": {feature_set: model_uri(ENCODER, alias)}}
    run_extract(run_params, cohort=cohort, encoders=[feature_set], progress=progress,
                out_root=paths.external_features(cohort))
    features_dir = paths.external_features(cohort) / feature_set

    mil_cfg = section(MilConfig, "mil", params)
    torch.set_num_threads(max(1, mil_cfg.threads))
    model = load_mil(model_uri(MIL, alias))
    with tracking.start_run(
        "external", run_name=f"eval-{cohort}", stage="eval_external", cohort=cohort,
        inputs=[features_dir, paths.slides_csv(cohort)],
        params={"alias": alias, "encoder_version": enc_mv.version, "mil_version": mil_mv.version},
        tags={"encoder_uri": f"models:/{ENCODER}/{enc_mv.version}", "mil_uri": f"models:/{MIL}/{mil_mv.version}",
              "pooling": str(model.meta.get("pooling", model.pooling.name))},
    ):
        preds, metrics = evaluate_cohort(features_dir, paths.slides_csv(cohort), model,
                                         n_boot=mil_cfg.bootstrap, seed=bcfg.seed, chunk_tiles=mil_cfg.chunk_tiles,
                                         progress=progress)
        if preds.empty:
            raise RegistryError(f"no slide of {cohort} could be scored; see {features_dir}"
                                "/failures.csv and data/tiles/{cohort}/process_list.csv")
        metrics.update(encoder_version=float(enc_mv.version), mil_version=float(mil_mv.version))
        write_csv(paths.mil_predictions(cohort), preds)
        tracking.log_metrics(metrics, paths.metrics(f"eval_{cohort}"))
        if preds["label"].nunique() == 2:
            import mlflow

            roc, pr = roc_pr_curves(preds["label"].to_numpy(), preds["prob_tumor"].to_numpy(), label=cohort)
            png = plot_roc_pr(roc, pr, paths.figures("external") / f"{cohort}_roc_pr.png",
                              summary={cohort: metrics}, title=f"{cohort}: {MIL}@{alias} on {ENCODER}@{alias}")
            write_csv(paths.plots(f"eval_{cohort}_roc.csv"), roc)
            mlflow.log_artifact(str(png), artifact_path="figures")
        import mlflow

        mlflow.log_artifact(str(paths.mil_predictions(cohort)), artifact_path="predictions")
    return metrics

