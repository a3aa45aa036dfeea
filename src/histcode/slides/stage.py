"""The ``tile`` and ``stain_ref`` stages: params → library calls → outs, MLflow run and DVC metrics JSON.

Shared by ``pipelines/tile.py``, ``pipelines/stain_ref.py`` and the ``histcode tile``/``stain-ref`` commands.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from histcode.config import DEFAULT_PARAMS, to_dict
from histcode.prologue import open_stage
from histcode.slides.config import StainConfig, TileConfig
from histcode.slides.process_list import cohort_metrics, damaged_slides, read_process_list, upsampled_slides

log = logging.getLogger(__name__)


def run_tile(cohort: str, params: str | Path | dict[str, Any] = DEFAULT_PARAMS, *, workers: int | None = None,
             shard: tuple[int, int] = (0, 1), progress: bool = True) -> dict[str, float]:
    """Tile ``cohort`` into ``data/tiles/<cohort>``; MLflow experiment ``tile`` run with counts, failures and
    contact sheets of every slide's mask (``masks/contact_sheet_pNN.jpg``, fewest tiles first); metrics also
    to ``reports/metrics/tile/<cohort>.json``."""
    from histcode.slides.contact_sheet import write_contact_sheets
    from histcode.slides.tiling import nothing_to_do, tile_cohort

    stage = open_stage("tile", params, TileConfig)
    cfg, paths = stage.cfg, stage.paths
    cohort_cfg = stage.base.cohort(cohort)
    slides_csv = paths.slides_csv(cohort)
    recorded = paths.metrics(f"tile/{cohort}")
    if shard == (0, 1) and recorded.is_file() and nothing_to_do(slides_csv, paths.tiles(cohort), cfg):
        metrics = cohort_metrics(paths.process_list(cohort), cfg.tile_px)
        if json.loads(recorded.read_text()) == metrics:  # complete and already reported: nothing to redo
            log.info("tile %s: all %d slides already tiled with these settings; nothing to do", cohort,
                     metrics["n_slides"])
            return metrics
    from histcode import tracking

    run_params = {"tile": to_dict(cfg), "shard": f"{shard[0]}/{shard[1]}",
                  "default_mpp": cohort_cfg.default_mpp}
    with stage.run("tile", run_name=f"tile-{cohort}", metrics=f"tile/{cohort}", cohort=cohort, params=run_params,
                   inputs=[slides_csv], defer=True) as run:  # no mlflow import on tiling's path (issue 18)
        results = tile_cohort(slides_csv, paths.tiles(cohort), cfg, workers=workers, shard=shard,
                              progress=progress, default_mpp=cohort_cfg.default_mpp)
        plist = paths.process_list(cohort)
        metrics = cohort_metrics(plist, cfg.tile_px)
        warn_upsampled(plist, cfg, cohort)
        damaged = warn_damaged(plist, cohort)
        tracking.log_artifact(plist, artifact_path="tiles")
        failures = {r.slide: r.reason for r in results if r.status != "done"}
        if failures:
            tracking.log_dict(failures, "tiles/failures.json")
        if damaged:
            tracking.log_dict(damaged, "tiles/damaged.json")
        with tempfile.TemporaryDirectory() as tmp:  # the spool keeps its own copy of each page
            sharded = shard != (0, 1)  # a job-array shard shows its own slides, not the whole cohort again
            title = f"{cohort} (shard {shard[0]}/{shard[1]}): tissue masks" if sharded else f"{cohort}: tissue masks"
            for page in write_contact_sheets(plist, paths.masks(cohort), Path(tmp), title,
                                             only={r.slide for r in results} if sharded else None,
                                             tile_px=cfg.tile_px):
                tracking.log_artifact(page, artifact_path="masks")
        run.metrics = metrics
    return metrics


def warn_upsampled(plist: Path, cfg: TileConfig, cohort: str) -> None:
    """One warning per slide scanned coarser than ``tile.target_mpp`` (its tiles are enlarged, so blurred): kept,
    as CLAM or TRIDENT would tile it, but said, so a 5x scan in a 20x cohort is not found only by its results."""
    rows = {r["slide"]: r for r in read_process_list(plist)}
    for slide, factor in sorted(upsampled_slides(rows.values(), cfg.tile_px).items()):
        log.warning("tile %s: %s was scanned at %s µm/px, coarser than tile.target_mpp %g: its %d px tiles are "
                    "enlarged %.1fx from %s level-0 px (blurred); rescan it at target resolution or drop it from "
                    "the cohort", cohort, slide, rows[slide]["mpp"], cfg.target_mpp, cfg.tile_px, factor,
                    rows[slide]["tile_size_level0"])


def warn_damaged(plist: Path, cohort: str) -> dict[str, str]:
    """One warning per slide kept with regions no pyramid level could decode (e.g. a corrupt JPEG tile): its tiles
    there are gone, which a re-download may recover; returns {slide: note}."""
    damaged = damaged_slides(read_process_list(plist))
    for slide, note in sorted(damaged.items()):
        log.warning("tile %s: %s %s", cohort, slide, note)
    return damaged


def run_stain_ref(params: str | Path | dict[str, Any] = DEFAULT_PARAMS) -> dict[str, float]:
    """Fit ``stain.method`` on ``stain.fit_tiles`` train-cohort tiles → ``data/stain/reference.json``."""
    from histcode import tracking
    from histcode.slides.reference import fit_reference
    from histcode.slides.stain import save_normalizer

    stage = open_stage("stain_ref", params, StainConfig, "stain")
    cfg, paths = stage.cfg, stage.paths
    cohort = stage.base.train_cohort
    with stage.run("stain", run_name=f"stain_ref-{cohort}", cohort=cohort,
                   params={"stain": to_dict(cfg), "seed": stage.seed}, inputs=[paths.process_list(cohort)],
                   defer=True) as run:  # logged by a detached process: no mlflow import here
        norm, tiles = fit_reference(cfg.method, paths.tiles(cohort), paths.slides_csv(cohort), cfg.fit_tiles,
                                    stage.seed)
        save_normalizer(norm, paths.stain_reference)
        tracking.log_artifact(paths.stain_reference, artifact_path="stain")
        if len(tiles):
            tracking.log_image(preview(norm, tiles), "stain/preview.png")
        run.metrics = metrics = {"n_fit_tiles": len(tiles)}
    return metrics


def preview(norm: Any, tiles: np.ndarray, n: int = 8) -> np.ndarray:
    """Up to ``n`` fit tiles (top row) above their normalised versions (bottom row): (2H, nW, 3) uint8."""
    sel = tiles[:n]
    return np.concatenate([np.concatenate(list(sel), axis=1),
                           np.concatenate([norm.transform(t) for t in sel], axis=1)], axis=0)
