"""External validation, one workflow and one metrics file (`make eval-cptac`, `histcode evaluate-external`).

By default the promoted pair is evaluated: ``histcode-encoder@<alias>`` and ``histcode-mil@<alias>`` are pulled
from the registry (a pair whose MIL was trained on other features is refused), the cohort is ingested when its
manifest is missing and tiled unless its tiles match the current settings and tiling code (both resume), and its
DVC features are reused when that very encoder version made them, else extracted with it and its registered
stain reference into ``data/external/<cohort>/features/encoder-v<N>/`` (resumable, outside DVC-owned outputs).
With ``model`` (a registry URI or a model directory) that MIL model is applied to the cohort's existing features
instead (``data/features/<cohort>/<encoder>``, or ``features_dir``).

Every slide is classified at **the model's own decision threshold** (registered-version tag / the model
directory's ``decision_threshold.json``, chosen on its CV held-out predictions; 0.5 only for models without
one, flagged as ``threshold_source: default``). Reported: AUC, accuracy and balanced accuracy at that threshold
(and at 0.5 for comparison) with bootstrap CIs, Brier score, ECE (equal-width bins) and a reliability diagram.
Given a labelled **calibration subset** (CSV of slide_id or patient_id with label), Platt or isotonic
recalibration is fitted on those patients' slides only and accuracy/Brier/ECE are reported on the remaining
(test) slides, next to the uncalibrated numbers on the same test slides.

Slides the model has seen are left out of the metrics and listed (``seen_in_training``): the same slide id or
file as a slide of the cohort the model was trained on, or a slide of one of its patients (unless
``keep_training_patients``, for a study of other slides of the same patients, e.g. frozen → FFPE); a cohort that
is nothing but such slides is refused (``histcode.cohort.overlap``).

Outputs: ``reports/metrics/eval_<cohort>.json``, ``data/predictions/mil/<cohort>.csv``,
``reports/figures/external/<cohort>_roc_pr.png`` and ``<cohort>_reliability.png``, an MLflow run in
experiment ``external``.
"""

from __future__ import annotations

import copy
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from histcode import tracking
from histcode.atomic import write_csv
from histcode.config import ProjectConfig, section
from histcode.cpus import torch_threads
from histcode.evaluation.result_lines import as_markdown, external_lines
from histcode.paths import Paths
from histcode.prologue import open_stage
from histcode.registry.models import CHAMPION, RegistryError, get_version, model_uri, parse_model_uri, version_of
from histcode.registry.names import ENCODER, MIL

log = logging.getLogger(__name__)

THRESHOLD_TAG = "decision_threshold"


def _ingest_if_needed(params: dict[str, Any], cohort: str, paths: Paths) -> None:
    """Ingest ``cohort`` unless a previous run (DVC or this command) left its manifest."""
    if not paths.slides_csv(cohort).exists():
        from histcode.cohort.stage import run_ingest

        log.info("ingesting %s", cohort)
        run_ingest(cohort, params)


def _tile(params: dict[str, Any], cohort: str) -> None:
    """Bring ``cohort``'s tiles up to date. ``run_tile`` resumes: slides tiled with the current settings and tiling
    code are skipped (on a complete cohort it returns at once), any other slide is tiled again, and extraction then
    redoes exactly those slides (features record the tiles they embedded). Reusing any existing tiles, as before,
    scored an external cohort on tiles of an older tissue model after the settings or the tiling code changed."""
    from histcode.slides.stage import run_tile

    run_tile(cohort, params)


def _reusable_features(params: dict[str, Any], cohort: str, paths: Paths, enc_ref: str) -> Path | None:
    """A DVC-extracted feature set of ``cohort`` made by this very encoder version from the cohort's current
    tiles (extract once). After tiles were made again (other settings or tiling code) the DVC features
    describe the old tiles until ``dvc repro`` runs: then they are not reused."""
    from histcode.features.config import ExtractConfig
    from histcode.registry.lineage import features_lineage

    for name in section(ExtractConfig, "extract", params).encoders:
        fdir = paths.features(cohort, name)
        files = sorted(fdir.glob("*.h5")) if fdir.is_dir() else []
        if not files or features_lineage(files)["encoder_version"] != enc_ref:
            continue
        if _of_current_tiles(fdir, paths.tiles(cohort)):
            return fdir
        log.info("%s: %s describes older tiles (run `dvc repro` to refresh it); extracting instead", cohort, fdir)
    return None


def _of_current_tiles(fdir: Path, tiles_dir: Path) -> bool:
    """Every tiled slide has a features file recording its coords' tile digest and tile count."""
    from histcode.features.resume import expected_attrs, finished
    from histcode.io.coords import read_coords

    for h5 in sorted(tiles_dir.glob("*.h5")):
        coords, attrs = read_coords(h5)
        want = {k: v for k, v in expected_attrs("", "", attrs, len(coords)).items()
                if k in ("tile_config_digest", "n_tiles_slide")}
        if finished(fdir / h5.name, want) is None:
            return False
    return True


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


def model_threshold(ref: str, model: Any, version: Any | None = None) -> tuple[float, str]:
    """(threshold, source): the registered-version tag, else the model dir's JSON, else the model's meta,
    else 0.5 (``default``: a model trained before thresholds were stored)."""
    tags = getattr(version, "tags", None) or {}
    if tags.get(THRESHOLD_TAG) not in (None, ""):
        return float(tags[THRESHOLD_TAG]), "registry_tag"
    if not ref.startswith("models:/"):
        from histcode.mil.decision import read_threshold

        t = read_threshold(ref)
        if t is not None:
            return t, "model_dir"
    meta = getattr(model, "meta", {}) or {}
    if meta.get(THRESHOLD_TAG) is not None:
        return float(meta[THRESHOLD_TAG]), "model_meta"
    log.warning("%s has no stored decision threshold (trained before thresholds were stored): using 0.5", ref)
    return 0.5, "default"


def external_metrics(
    preds: pd.DataFrame,
    threshold: float,
    *,
    n_boot: int,
    seed: int,
    n_bins: int,
    calibration: pd.DataFrame | None = None,
    recalibration: str = "platt",
) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Metrics dict (flat, ``*_ci_low/high``) and the reliability curves {label: (y, prob)} of ``preds``."""
    from histcode.metrics.calibration import calibration_metrics, recalibrated_metrics, split_calibration
    from histcode.metrics.classification import classification_metrics

    y, p = preds["label"].to_numpy(), preds["prob_tumor"].to_numpy()
    out: dict[str, Any] = dict(classification_metrics(y, p, n_boot=n_boot, seed=seed, threshold=threshold))
    called = p >= threshold  # which way a drifted threshold errs: tumour and normal recall, for each class present
    if (y == 1).any():
        out["sensitivity"] = float(called[y == 1].mean())
    if (y == 0).any():
        out["specificity"] = float((~called[y == 0]).mean())
    at_half = classification_metrics(y, p, n_boot=0, threshold=0.5)
    out.update(accuracy_at_0_5=at_half["accuracy"], balanced_accuracy_at_0_5=at_half["balanced_accuracy"])
    out.update(calibration_metrics(y, p, n_bins))
    curves = {"model P(tumour)": (y, p)}
    if calibration is not None:
        cal, test = split_calibration(preds, calibration)
        if cal.empty:
            raise ValueError("no slide of the calibration subset is among the scored external slides; check its ids")
        rec, p_rec = recalibrated_metrics(cal, test, method=recalibration, n_bins=n_bins)
        yt, pt = test["label"].to_numpy(), test["prob_tumor"].to_numpy()
        out.update(rec)
        out["recalibration"] = recalibration
        out["test_accuracy_at_threshold"] = float(((pt >= threshold).astype(int) == yt).mean())
        out.update({f"test_{k}": v for k, v in calibration_metrics(yt, pt, n_bins).items()})
        curves = {"model P(tumour), test slides": (yt, pt), f"{recalibration}-recalibrated, test slides": (yt, p_rec)}
    return out, curves


def unseen_slides(paths: Paths, cohort: str, training: str, *, keep_training_patients: bool = False,
                  ) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """(``cohort``'s labelled manifest without the slides the model saw, those slides as {slide_id, reason} rows);
    refused when every slide was seen. Evaluating the training cohort itself is allowed, and said to give training
    scores."""
    from histcode.cohort.overlap import overlap_summary, seen_in_training
    from histcode.io.manifest import LABELLED_COLUMNS, read_manifest

    manifest = read_manifest(paths.slides_csv(cohort), columns=LABELLED_COLUMNS, labelled=True)
    if cohort == training:
        log.warning("%s is the cohort the model was trained on: its scores are training scores, not an external "
                    "validation", cohort)
        return manifest, []
    if not paths.slides_csv(training).is_file():
        log.warning("%s: cannot check that the model never saw these slides: no manifest of its training cohort "
                    "%s (%s)", cohort, training, paths.slides_csv(training))
        return manifest, []
    seen = seen_in_training(paths.manifests(cohort), paths.manifests(training), patients=not keep_training_patients)
    if seen and len(seen) == len(manifest):
        raise RegistryError(f"every slide of {cohort} ({len(seen)}) was seen in training cohort {training}, e.g. "
                            f"{next(iter(seen.values()))[1]}: its evaluation would be a training score; check "
                            f"base.cohorts.{cohort} (slide_dir, sheet)")
    if seen:
        log.warning(overlap_summary(seen, len(manifest), cohort=cohort, training=training))
    rows = [{"slide_id": sid, "reason": why} for sid, (_, why) in sorted(seen.items())]
    return manifest[~manifest["slide_id"].astype(str).isin(seen)], rows


def evaluate_external(
    params_path: str | Path,
    cohort: str,
    *,
    alias: str = CHAMPION,
    model: str | None = None,
    features_dir: str | Path | None = None,
    calibration: str | Path | None = None,
    recalibration: str = "platt",
    progress: bool | None = None,
    keep_training_patients: bool = False,
) -> dict[str, Any]:
    """Evaluate on ``cohort`` (see module doc); returns the metrics dict written to eval_<cohort>.json.
    ``progress`` None follows ``mil.progress``."""
    import torch

    from histcode.metrics.calibration import plot_reliability, read_calibration_subset
    from histcode.mil.config import MilConfig
    from histcode.mil.external import evaluate_cohort
    from histcode.mil.model import load_mil

    stage = open_stage("eval_external", params_path)
    params, bcfg, paths = stage.params, stage.base, stage.paths
    bcfg.cohort(cohort)  # unknown cohort → clear error
    if model is None:  # the promoted pair, checked before any work: its MIL must be trained on its encoder
        enc_mv, mil_mv = get_version(ENCODER, alias), get_version(MIL, alias)
        expected = str(mil_mv.tags.get("encoder_version", ""))
        if expected != f"{ENCODER}/{enc_mv.version}":
            raise RegistryError(f"{MIL}@{alias} (v{mil_mv.version}) was trained on {expected or 'unknown'} features "
                                f"but {ENCODER}@{alias} is v{enc_mv.version}: not a consistent pair; run "
                                "`make promote` (it moves encoder and MIL together) or pass an alias naming a "
                                "matching pair")
    mil_cfg = section(MilConfig, "mil", params)
    progress = mil_cfg.progress if progress is None else progress
    subset = read_calibration_subset(calibration) if calibration else None
    torch.set_num_threads(torch_threads(mil_cfg.threads, "evaluate-external"))
    run_params: dict[str, Any] = {"alias": alias, "recalibration": recalibration if subset is not None else "none"}
    if model is None:
        _ingest_if_needed(params, cohort, paths)
        # before any tiling or extraction: a cohort of training slides is refused at once
        training = str(mil_mv.tags.get("cohort") or bcfg.train_cohort)
        manifest, seen = unseen_slides(paths, cohort, training, keep_training_patients=keep_training_patients)
        _tile(params, cohort)
        fdir = _features_for(params, cohort, paths, enc_mv, alias, progress)
        ref, version = model_uri(MIL, alias), mil_mv
        mil = load_mil(ref)
        run_params.update(encoder_version=enc_mv.version, mil_version=mil_mv.version)
        tags = {"encoder_uri": f"models:/{ENCODER}/{enc_mv.version}", "mil_uri": f"models:/{MIL}/{mil_mv.version}"}
    else:
        ref = str(model)
        parsed = parse_model_uri(ref)
        version = version_of(parsed) if parsed is not None else None
        mil = load_mil(ref)
        training = str(mil.meta.get("cohort") or bcfg.train_cohort)
        manifest, seen = unseen_slides(paths, cohort, training, keep_training_patients=keep_training_patients)
        encoder = str(mil.meta.get("encoder") or ProjectConfig.load(params).require_mil_encoder())
        fdir = Path(features_dir) if features_dir else paths.features(cohort, encoder)
        run_params.update(model=ref, encoder=encoder)
        tags = {"mil_uri": ref}
    threshold, source = model_threshold(ref, mil, version)
    pooling = str(mil.meta.get("pooling", mil.pooling.name))
    with stage.run(
        "external", run_name=f"eval-{cohort}", metrics=f"eval_{cohort}", cohort=cohort,
        inputs=[fdir, paths.slides_csv(cohort)], params={**run_params, THRESHOLD_TAG: threshold},
        tags={**tags, "pooling": pooling, "threshold_source": source, "training_cohort": training,
              **({"seen_in_training": f"{len(seen)} left out (seen_in_training.json)"}
                 if seen else {})},
    ) as run:
        if seen:  # where a user of the UI finds which slides and why
            tracking.log_dict({"training_cohort": training, "slides": seen}, "seen_in_training.json")
        # attention for `histcode heatmap --cohort <external>`; never into the training cohort's DVC-owned folder
        own = bcfg.cohort(cohort).role == "external" and cohort != bcfg.train_cohort
        preds, scored = evaluate_cohort(fdir, manifest, mil, n_boot=0, seed=bcfg.seed,
                                        chunk_tiles=mil_cfg.chunk_tiles, progress=progress,
                                        attention_dir=paths.attention(cohort, pooling) if own else None,
                                        attention_attrs={"pooling": pooling, "model": (
                                            f"{MIL} v{mil_mv.version} (@{alias})" if model is None else ref)})
        if preds.empty:
            raise RegistryError(f"no slide of {cohort} could be scored; see {fdir}/failures.csv "
                                f"and data/tiles/{cohort}/process_list.csv")
        metrics, curves = external_metrics(preds, threshold, n_boot=mil_cfg.bootstrap, seed=bcfg.seed,
                                           n_bins=mil_cfg.ece_bins, calibration=subset, recalibration=recalibration)
        metrics.update(n_failed=scored["n_failed"], failures=scored["failures"], threshold_source=source,
                       model=ref, pooling=pooling, training_cohort=training, n_seen_in_training=float(len(seen)),
                       seen_in_training=seen)
        for key in ("encoder_version", "mil_version"):
            if key in run_params:
                metrics[key] = float(run_params[key])
        write_csv(paths.mil_predictions(cohort), preds)
        tracking.log_artifact(paths.mil_predictions(cohort), artifact_path="predictions")
        figures = paths.figures("external")
        title = f"{cohort}: {ref}"
        png = plot_reliability(curves, figures / f"{cohort}_reliability.png", n_bins=mil_cfg.ece_bins,
                               title=f"{title}\nreliability (threshold {threshold:.3g} from {source})")
        tracking.log_artifact(png, artifact_path="figures")
        if preds["label"].nunique() == 2:
            from histcode.metrics.classification import roc_pr_curves
            from histcode.metrics.classification_plots import plot_roc_pr

            roc, pr = roc_pr_curves(preds["label"].to_numpy(), preds["prob_tumor"].to_numpy(), label=cohort)
            png = plot_roc_pr(roc, pr, figures / f"{cohort}_roc_pr.png", summary={cohort: metrics}, title=title)
            write_csv(paths.plots(f"eval_{cohort}_roc.csv"), roc)
            tracking.log_artifact(png, artifact_path="figures")
        tracking.set_description(as_markdown(external_lines(cohort, metrics)))  # what the command printed
        run.metrics = metrics
    return metrics
