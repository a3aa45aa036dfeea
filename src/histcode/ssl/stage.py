"""The ``pretrain`` stage: train-cohort tiles → AdCo (or SimCLR) encoder, tracked and registered.

Writes ``data/models/encoder/`` (``encoder.pt`` + ``encoder.json``, loadable by ``load_encoder``),
``reports/metrics/pretrain.json`` and ``reports/plots/pretrain_loss.csv`` (step, loss); logs an MLflow run
in experiment ``histcode/pretrain`` and registers the AdCo encoder as ``histcode-encoder@challenger``.
Under ``torchrun`` every rank trains; only rank 0 writes files and talks to MLflow.
"""

from __future__ import annotations

import dataclasses
import logging
import os
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
from histcode.ssl.data import epoch_batches, sample_epoch

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


def encoder_meta(cfg: PretrainConfig, seed: int, run_id: str, cohort: str) -> dict[str, Any]:
    """``encoder.json``'s provenance: ``run_id`` is the MLflow run that finished training the weights."""
    return {"method": cfg.method, "input_px": cfg.input_px, "seed": seed, "run_id": run_id, "cohort": cohort,
            "config": to_dict(cfg)}


def replay_finished(cfg: PretrainConfig, ckpt: Path, out: Path, key: str, seed: int, cohort: str,
                    paths: Paths) -> PretrainResult | None:
    """The stage's outputs rebuilt from a *finished* checkpoint of this config and data that recorded the run
    which trained it, with no new MLflow run; None when there is training (or registering) to do.

    A DVC rerun after a code edit deletes the outputs and used to resume the finished checkpoint under a new run:
    same weights, but a new ``run_id`` in encoder.json, so DVC reran every later stage. Files whose content is
    already right are left untouched (their stamps stay valid)."""
    import json

    import pandas as pd

    from histcode import tracking
    from histcode.atomic import write_csv
    from histcode.ssl.backbone import ENCODER_META, ENCODER_WEIGHTS, create_encoder, save_encoder
    from histcode.ssl.checkpoint import check_compatible, load_checkpoint
    from histcode.ssl.methods import build_method

    if not ckpt.is_file():
        return None
    try:
        state = load_checkpoint(ckpt)
        final = state.get("final")
        if final is None or state.get("epoch", 0) < cfg.epochs or state.get("data_key") != key:
            return None
        check_compatible(ckpt, state["config"], to_dict(cfg))
        tracking.client().get_run(final["run_id"])  # the run (and its registered version) must still exist
    except Exception as exc:  # anything unexpected (a wiped store, another config): do the work
        log.info("pretrain: not replaying %s (%s)", ckpt, exc)
        return None
    method = build_method(create_encoder(cfg.backbone), cfg)
    method.load_state_dict(state["method"])
    encoder = method.encoder.to(device="cpu", memory_format=torch.contiguous_format).eval()
    meta = {**encoder_meta(cfg, seed, final["run_id"], cohort), "backbone": encoder.name, "dim": encoder.dim}
    try:
        saved = torch.load(out / ENCODER_WEIGHTS, map_location="cpu", weights_only=True)
        trained = encoder.state_dict()
        same = (json.loads((out / ENCODER_META).read_text()) == meta and saved.keys() == trained.keys()
                and all(torch.equal(saved[k], trained[k]) for k in saved))
    except (OSError, ValueError, RuntimeError):
        same = False
    if not same:
        save_encoder(encoder, out, encoder_meta(cfg, seed, final["run_id"], cohort))
    metrics = {k: float(v) for k, v in final["metrics"].items()}
    metrics_path = paths.metrics("pretrain")
    if not metrics_path.is_file() or json.loads(metrics_path.read_text()) != metrics:
        tracking.write_metrics(metrics, metrics_path)
    loss_csv = paths.plots("pretrain_loss.csv")
    loss = pd.DataFrame([{"step": int(h["step"]), "loss": h["loss"]} for h in state["history"]])
    if not loss_csv.is_file() or not pd.read_csv(loss_csv).equals(loss):
        write_csv(loss_csv, loss)
    log.info("pretrain: the checkpoint %s finished training in run %s (same config and data): outputs %s, "
             "no new run", ckpt, final["run_id"], "unchanged" if same else "rewritten from it")
    return PretrainResult(out, metrics, final.get("version"))


def record_final(ckpt: Path, run_id: str, version: str | None, metrics: dict[str, float]) -> None:
    """Write into a finished checkpoint the run that trained it, its registered version and metrics, which
    :func:`replay_finished` reuses (the checkpoint's other contents, its RNG state included, are unchanged)."""
    from histcode.atomic import save_torch
    from histcode.ssl.checkpoint import load_checkpoint

    state = load_checkpoint(ckpt)
    save_torch(ckpt, {**state, "final": {"run_id": run_id, "version": version, "metrics": dict(metrics)}})


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
    from histcode.precision import describe, resolve_bf16

    overrides["bf16"] = resolve_bf16(cfg.bf16)  # as resolved here: the run, checkpoint and replay key record it
    log.info("pretrain: %s", describe(cfg.bf16, overrides["bf16"]))
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
    world = int(os.environ.get("WORLD_SIZE", "1"))  # torchrun's ranks (the process group is not up yet)
    # a pilot cohort too small for one batch fails here, in one line, before a model or an MLflow run exists
    epoch_batches(sample_epoch(dataset.n_tiles, fraction=cfg.tiles_per_slide, max_per_slide=cfg.max_tiles_per_slide,
                               seed=bcfg.seed, epoch=0), batch_size=cfg.batch_size, rank=0, world_size=world)
    ckpt = paths.checkpoints("pretrain") / f"{cfg.method}.pt"
    if resume == "auto" and out == paths.models("encoder") and world == 1:
        done = replay_finished(cfg, ckpt, out, data_key(dataset, cfg, paths), bcfg.seed, cohort, paths)
        if done is not None:
            return done
    normalize = load_stain(cfg, paths)
    info = D.init_distributed("auto")
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
        save_encoder(encoder, out, encoder_meta(cfg, seed, run.info.run_id, cohort))
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
        if ckpt.is_file() and metrics["epochs_done"] >= cfg.epochs:
            record_final(ckpt, run.info.run_id, version, metrics)
    log.info("pretrain %s: %s → %s", cfg.method, {k: round(v, 4) for k, v in metrics.items()}, out)
    return PretrainResult(out, metrics, version)
