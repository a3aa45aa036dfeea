"""The ``heatmaps`` stage: figures for the configured slides; attention-vs-truth for synthetic cohorts.

Outputs under reports/figures/heatmaps/: <slide_id>/{heatmap.png, top_tiles.png, bottom_tiles.png,
tiles.geojson}, index.csv (slide, status, reason); reports/metrics/mil_attention.json (counts, and for
synthetic cohorts top-k precision and IoU against the tumour bed, and against tumour cells as ``*_cells``, per
pooling; per slide in attention_truth_<pooling>.csv).
A slide that fails is listed with its reason; the others are rendered.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from histcode import tracking
from histcode.atomic import write_csv, write_json
from histcode.config import ProjectConfig
from histcode.console import tqdm
from histcode.heatmaps.config import HeatmapConfig
from histcode.heatmaps.slide import render_slide
from histcode.io.manifest import read_manifest
from histcode.paths import Paths
from histcode.prologue import open_stage
from histcode.worker_pool import process_pool, submit

log = logging.getLogger(__name__)


def primary_pooling(params: dict[str, Any], paths: Paths) -> str:
    """Whose attention is drawn: ``heatmaps.pooling``, null = the trained MIL's primary, else ``mil.pooling``."""
    project = ProjectConfig.load(params)
    index = paths.models("mil") / "mil.json"  # mil.model.INDEX_FILE (no torch import here)
    trained = str(json.loads(index.read_text())["primary"]) if not project.heatmaps_pooling and index.exists() else None
    return project.heatmap_pooling(trained)


def choose_slides(preds: pd.DataFrame, manifest: pd.DataFrame, cfg: HeatmapConfig, pooling: str) -> list[str]:
    """Listed slide ids, or the N tumour slides with the highest held-out P(tumour) of ``pooling``."""
    if isinstance(cfg.slides, list):
        unknown = sorted(set(cfg.slides) - set(manifest["slide_id"]))
        if unknown:
            raise ValueError(f"heatmaps.slides: {unknown} not in the cohort manifest")
        return list(cfg.slides)
    p = preds[(preds["pooling"] == pooling) & (preds["label"] == 1)]
    return list(p.sort_values(["prob_tumor", "slide_id"], ascending=[False, True])["slide_id"][: cfg.slides])


def run_heatmaps(params_path: str | Path = "params.yaml", *, progress: bool = True) -> dict[str, Any]:
    stage = open_stage("heatmaps", params_path, HeatmapConfig)
    bcfg, cfg, paths = stage.base, stage.cfg, stage.paths
    cohort = bcfg.train_cohort
    pooling = primary_pooling(stage.params, paths)
    manifest = read_manifest(paths.slides_csv(cohort))
    preds = pd.read_csv(paths.mil_predictions(cohort), dtype={"slide_id": str, "patient_id": str})
    out_root = paths.figures("heatmaps")
    slide_path = manifest.set_index("slide_id")["path"]
    rows = []
    with stage.run(
        "mil",
        run_name=f"heatmaps/{cohort}",
        metrics="mil_attention",
        cohort=cohort,
        params={"heatmaps": {k: str(v) for k, v in vars(cfg).items()}},
        tags={"pooling": pooling},
        defer=True,  # logged by a detached process: no mlflow import here
    ) as run:
        sids = choose_slides(preds, manifest, cfg, pooling)
        # the slides' figures render in worker processes while this one checks attention against the truth
        pool = process_pool(min(cfg.workers, len(sids)))
        try:
            jobs = {sid: submit(
                pool, render_slide, slide_path[sid], paths.attention_h5(cohort, pooling, sid),
                paths.coords_h5(cohort, sid), out_root / sid, cfg, title=f"{sid} ({pooling})") for sid in sids}
            synthetic = bcfg.cohort(cohort).synthetic
            truth = _truth(manifest, paths, cohort, cfg, out_root) if synthetic and pool is not None else None
            for sid, job in tqdm(jobs.items(), desc="heatmaps", disable=not progress):
                try:
                    out = job.result()
                    for artifact in out.values():  # heatmap, top/bottom galleries, QuPath GeoJSON
                        tracking.log_artifact(artifact, artifact_path=f"heatmaps/{sid}")
                    rows.append({"slide_id": sid, "status": "ok", "reason": ""})
                except Exception as exc:  # one bad slide never stops the others
                    log.warning("heatmap of %s failed: %s", sid, exc)
                    rows.append({"slide_id": sid, "status": "failed", "reason": f"{type(exc).__name__}: {exc}"})
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        write_csv(out_root / "index.csv", pd.DataFrame(rows, columns=["slide_id", "status", "reason"]))
        metrics: dict[str, Any] = {
            "n_rendered": sum(r["status"] == "ok" for r in rows),
            "n_failed": sum(r["status"] != "ok" for r in rows),
        }
        metrics["truth_evaluated"] = int(synthetic)  # real cohorts have no masks: the file says so
        if synthetic:
            metrics.update(truth if truth is not None else _truth(manifest, paths, cohort, cfg, out_root))
        run.metrics = metrics
    return metrics


def _truth(
    manifest: pd.DataFrame, paths: Paths, cohort: str, cfg: HeatmapConfig, out_root: Path
) -> dict[str, float]:
    """Attention vs the generator's tumour bed (and tumour cells) for every tumour slide and exported pooling."""
    from histcode.heatmaps.attention_truth import evaluate_attention_truth
    from histcode.io.coords import read_coords

    tumour = sorted(manifest.loc[manifest["label"] == 1, "slide_id"])
    patch = {}
    for sid in tumour:
        try:
            patch[sid] = float(read_coords(paths.coords_h5(cohort, sid))[1]["patch_size"])
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning("no patch size for %s: %s", sid, exc)
    out: dict[str, float] = {}
    root = paths.data_dir / "attention" / cohort
    for pdir in sorted(d for d in root.iterdir() if d.is_dir()) if root.is_dir() else []:
        sids = [s for s in tumour if s in patch and (pdir / f"{s}.h5").exists()]
        df, summary = evaluate_attention_truth(
            pdir,
            paths.ground_truth,
            cohort,
            sids,
            patch,
            top_k=cfg.truth_top_k,
            threshold=cfg.truth_threshold,
            scale=cfg.scale,
            smooth_tiles=cfg.smooth_tiles,
            close_tiles=cfg.close_tiles,
            fill_holes=cfg.fill_holes,
        )
        write_csv(out_root / f"attention_truth_{pdir.name}.csv", df)
        out.update({f"{pdir.name}.{k}": v for k, v in summary.items()})
    write_json(
        out_root / "attention_truth_settings.json",
        {
            "top_k": cfg.truth_top_k,
            "threshold": cfg.truth_threshold,
            "scale": cfg.scale,
            "smooth_tiles": cfg.smooth_tiles,
            "close_tiles": cfg.close_tiles,
            "fill_holes": cfg.fill_holes,
            "top_k_ranks": "raw attention (unsmoothed)",
            "truth": "tumour bed (overlay bit 16)",
            "truth_cells": "tumour-cell region code (metrics *_cells)",
        },
    )
    return out
