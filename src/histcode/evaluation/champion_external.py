"""External validation of the promoted models (``make eval-cptac``).

Pulls ``histcode-encoder@champion`` and ``histcode-mil@champion`` from the registry, ingests and tiles the
external cohort when its manifests/tiles are missing (both resume), refuses an encoder/MIL pair whose MIL was
trained on other features, reuses the DVC features of the cohort when that very encoder version made them or
else extracts them with the champion encoder and its registered stain reference into
``data/external/<cohort>/features/encoder-v<N>/`` (resumable, outside DVC-owned outputs), and reports
accuracy/AUC with bootstrap CIs, ROC/PR curves and predictions to MLflow and ``reports/metrics/eval_<cohort>.json``.
"""

from __future__ import annotations

import copy
import logging
import tempfile
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


def _reusable_features(params: dict[str, Any], cohort: str, paths: Paths, enc_ref: str) -> Path | None:
    """A DVC-extracted feature set of ``cohort`` made by this very encoder version (extract once)."""
    from histcode.features.config import ExtractConfig
    from histcode.registry.lineage import features_lineage

    for name in section(ExtractConfig, "extract", params).encoders:
        fdir = paths.features(cohort, name)
        files = sorted(fdir.glob("*.h5")) if fdir.is_dir() else []
        if files and features_lineage(files)["encoder_version"] == enc_ref:
            return fdir
    return None


def _features_for(params: dict[str, Any], cohort: str, paths: Paths, enc_mv: Any, alias: str,
                  progress: bool) -> Path:
    """Features of ``cohort`` by the ``alias`` encoder under its own registered stain reference."""
    from histcode.features.stage import run_extract
    from histcode.registry.models import download_verified

    reuse = _reusable_features(params, cohort, paths, f"{ENCODER}/{enc_mv.version}")
    if reuse is not None:
        log.info("%s: reusing %s (extracted by %s v%s)", cohort, reuse, ENCODER, enc_mv.version)
        return reuse
    feature_set = f"encoder-v{enc_mv.version}"
    run_params = copy.deepcopy(params)
    run_params["extract"] = {**run_params.get("extract", {}), "progress": progress,
                             "sources": {feature_set: model_uri(ENCODER, alias)}}
    stain_tag = str(enc_mv.tags.get("stain_reference", ""))
    with tempfile.TemporaryDirectory() as tmp:
        stain = None
        if stain_tag.startswith("extra/"):
            stain = download_verified(ENCODER, enc_mv.version, tmp)[stain_tag]
        elif run_params["extract"].get("stain", True) and stain_tag != "none":
            raise RegistryError(f"{ENCODER} v{enc_mv.version} carries no stain reference (registered before it "
                                "travelled with the model); retrain it with `dvc repro pretrain`")
        else:
            run_params["extract"]["stain"] = False
        run_extract(run_params, cohort=cohort, encoders=[feature_set], progress=progress,
                    out_root=paths.external_features(cohort), stain_reference=stain)
    return paths.external_features(cohort) / feature_set


def evaluate_champions(
    params_path: str | Path, cohort: str, *, alias: str = CHAMPION, progress: bool = True
) -> dict[str, Any]:
    """Run the ``alias`` encoder + MIL model on ``cohort``; returns the metrics dict (also written to disk)."""
    import torch

    from histcode.evaluation.classification import roc_pr_curves
    from histcode.evaluation.classification_plots import plot_roc_pr
    from histcode.mil.config import MilConfig
    from histcode.mil.external import evaluate_cohort
    from histcode.mil.model import load_mil

    params = load_params(params_path)
    bcfg = base(params)
    bcfg.cohort(cohort)  # unknown cohort → clear error
    paths = Paths.from_base(bcfg)
    enc_mv, mil_mv = get_version(ENCODER, alias), get_version(MIL, alias)
    expected = str(mil_mv.tags.get("encoder_version", ""))
    if expected != f"{ENCODER}/{enc_mv.version}":
        raise RegistryError(f"{MIL}@{alias} (v{mil_mv.version}) was trained on {expected or 'unknown'} features but "
                            f"{ENCODER}@{alias} is v{enc_mv.version}: not a consistent pair; run `make promote` "
                            "(it moves encoder and MIL together) or pass an alias naming a matching pair")
    _ensure_inputs(params, cohort, paths)
    features_dir = _features_for(params, cohort, paths, enc_mv, alias, progress)

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

