"""The ``pretrain`` stage: train-cohort tiles → AdCo (or SimCLR) encoder, tracked and registered.

Writes ``data/models/encoder/`` (``encoder.pt`` + ``encoder.json``, loadable by ``load_encoder``),
``reports/metrics/pretrain.json`` and ``reports/plots/pretrain_loss.csv`` (step, loss); logs an MLflow run
in experiment ``histcode/pretrain`` and registers the AdCo encoder as ``histcode-encoder@challenger``.
Under ``torchrun`` every rank trains; only rank 0 writes files and talks to MLflow.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from histcode import distributed as D
from histcode.config import to_dict
from histcode.paths import Paths
from histcode.preflight import EmptyCohortError, ensure_writable
from histcode.prologue import Stage, open_stage
from histcode.registry.names import ENCODER
from histcode.slides.cohort_tiles import collect_slides
from histcode.slides.tile_dataset import SlideTileDataset
from histcode.ssl.config import PretrainConfig

log = logging.getLogger(__name__)



@dataclass
class PretrainResult:
    out_dir: Path
    metrics: dict[str, float]
    model_version: str | None = None


def load_stain(cfg: PretrainConfig, paths: Paths) -> Any:
    """The fitted normaliser's batch transform (B, 3, H, W) [0, 1] → same, or None when disabled."""
    if not cfg.stain:
        return None
    from histcode.slides.stain import load_normalizer

    return load_normalizer(paths.stain_reference).transform_batch


def data_key(dataset: SlideTileDataset, cfg: PretrainConfig, paths: Paths) -> str:
    """What a resumable checkpoint must have been trained on: slides, their tile counts, the stain reference."""
    import hashlib

    h = hashlib.sha1()
    for slide, n in zip(dataset.slides, dataset.n_tiles, strict=True):
        h.update(f"{slide.slide_id}:{int(n)};".encode())
    if cfg.stain and paths.stain_reference.is_file():
        h.update(paths.stain_reference.read_bytes())
    return h.hexdigest()


def run_pretrain(params: str | Path | dict[str, Any] = "params.yaml", *, resume: bool | str = False,
                 method: str | None = None, out_dir: str | Path | None = None, progress: bool | None = None,
                 register: bool | None = None) -> PretrainResult:
    """Run the stage; ``method``/``out_dir`` override params (e.g. the SimCLR baseline next to AdCo)."""
    stage = open_stage("pretrain", params, PretrainConfig)
    bcfg, cfg, paths = stage.base, stage.cfg, stage.paths
    overrides: dict[str, Any] = {}
    if method is not None:
        overrides["method"] = method
    if progress is not None:
        overrides["progress"] = progress
    cfg = dataclasses.replace(cfg, **overrides)
    cohort = bcfg.train_cohort
    out = Path(out_dir) if out_dir else paths.models("encoder")
    slides, failures = collect_slides(cohort, paths=paths, default_mpp=bcfg.cohort(cohort).default_mpp)
    if not slides:
        raise EmptyCohortError(f"{paths.tiles(cohort)}: no slide of cohort {cohort!r} has tiles; run `dvc repro "
                           f"tile@{cohort}` first ({len(failures)} slides failed: {failures[:3]}).")
    ensure_writable(out, what="the encoder")
    ensure_writable(paths.checkpoints("pretrain"), what="pretraining checkpoints")
    for f in failures:
        log.warning("pretrain: skipping slide %s (%s): %s", f.slide_id, f.stage, f.reason)
    dataset = SlideTileDataset(slides, out_px=cfg.read_px)
    normalize = load_stain(cfg, paths)
    info = D.init_distributed("auto")
    ckpt = paths.checkpoints("pretrain") / f"{cfg.method}.pt"
    try:
        if info.is_main:
            return _tracked(stage, cfg, dataset, normalize, info, ckpt, resume, out, cohort,
                            failures, register if register is not None else cfg.method == "adco")
        from histcode.ssl.trainer import fit

        fit(cfg, dataset, dataset.n_tiles, seed=bcfg.seed, checkpoint=ckpt, resume=resume, normalize=normalize,
            dist_info=info, data_key=data_key(dataset, cfg, paths))
        return PretrainResult(out, {})
    finally:
        D.cleanup()


def _tracked(stage: Stage, cfg: PretrainConfig, dataset: SlideTileDataset, normalize: Any, info: D.DistInfo,
             ckpt: Path, resume: bool | str, out: Path, cohort: str, failures: list[Any],
             register: bool) -> PretrainResult:
    import pandas as pd

    from histcode import tracking
    from histcode.atomic import write_csv
    from histcode.ssl.backbone import save_encoder
    from histcode.ssl.trainer import fit

    def on_log(metrics: dict[str, float], step: int) -> None:
        tracking.log_step({f"train/{k}": v for k, v in metrics.items()}, step=step)

    seed, paths = stage.seed, stage.paths
    inputs = [paths.tiles(cohort)] + ([paths.stain_reference] if cfg.stain else [])
    with stage.run("pretrain", run_name=f"{cfg.method}-{cfg.backbone}", metrics="pretrain",
                   params={**to_dict(cfg), "seed": seed, "world_size": info.world_size},
                   cohort=cohort, inputs=inputs) as stage_run:
        run = stage_run.run
        result = fit(cfg, dataset, dataset.n_tiles, seed=seed, checkpoint=ckpt, resume=resume,
                     normalize=normalize, on_log=on_log, dist_info=info, data_key=data_key(dataset, cfg, paths))
        encoder = result.encoder.to(device="cpu", memory_format=torch.contiguous_format).eval()
        metrics = {**result.metrics, "n_slides": float(len(dataset.slides)), "n_tiles": float(len(dataset)),
                   "slides_failed": float(len(failures)), "world_size": float(info.world_size)}
        save_encoder(encoder, out, {"method": cfg.method, "input_px": cfg.input_px, "seed": seed,
                                    "run_id": run.info.run_id, "cohort": cohort, "config": to_dict(cfg)})
        loss_csv = paths.plots("pretrain_loss.csv")
        write_csv(loss_csv, pd.DataFrame([{"step": int(h["step"]), "loss": h["loss"]} for h in result.history]))
        stage_run.metrics = metrics
        tracking.log_artifact(loss_csv)
        version = None
        if register:
            from histcode.registry import log_and_register

            example = np.random.default_rng(seed).random((2, 3, cfg.input_px, cfg.input_px), dtype=np.float32)
            # the stain reference is part of the model: features are only comparable under the same one
            extra = {"stain": paths.stain_reference} if cfg.stain else {}
            mv = log_and_register(encoder, ENCODER, input_example=example,
                                  metrics={"final_loss": metrics["final_loss"]},
                                  tags={"method": cfg.method, "backbone": cfg.backbone,
                                        "stain_reference": "extra/stain/" + paths.stain_reference.name
                                        if cfg.stain else "none"},
                                  extra_artifacts=extra)
            version = str(mv.version)
        else:
            tracking.log_artifacts(out, artifact_path=f"encoder_{cfg.method}")
    log.info("pretrain %s: %s → %s", cfg.method, {k: round(v, 4) for k, v in metrics.items()}, out)
    return PretrainResult(out, metrics, version)
