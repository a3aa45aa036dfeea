"""The ``extract`` stage: one cohort's tiles × every configured encoder → features ``.h5`` per slide.

Output ``data/features/<cohort>/<encoder>/`` holds ``<slide_id>.h5`` and ``failures.csv`` (slides that
failed or lost tiles, with the reason); metrics go to ``reports/metrics/extract/<cohort>.json`` and an
MLflow run in ``histcode/extract``. Under ``torchrun`` slides are sharded over ranks. A cohort whose every slide
is already finished for the current encoders, settings and tiles (``histcode.features.resume``) returns before
torch is imported, with no MLflow run: nothing was done, so nothing is logged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from histcode.config import ConfigError, to_dict
from histcode.cpus import torch_threads
from histcode.features import resume, throughput
from histcode.features.config import BASELINES, ExtractConfig
from histcode.paths import Paths
from histcode.prologue import Stage, open_stage

if TYPE_CHECKING:  # torch-importing modules load only when there is work (see run_extract)
    from histcode import distributed as D
    from histcode.features.extract import SlideOutcome
    from histcode.slides.cohort_tiles import SlideTiles

log = logging.getLogger(__name__)


def tile_side_um(slides: list[SlideTiles]) -> float | None:
    """Median physical side of the cohort's tiles in µm (level-0 patch size × level-0 µm/px); None if no slide
    records its pixel size. Encoders that measure in µm (``histomics``) size their kernels from it."""
    import numpy as np

    sides = []
    for s in slides:
        mpp = s.attrs.get("slide_mpp") or s.mpp or s.default_mpp
        if mpp and float(mpp) > 0:
            sides.append(float(s.patch_size) * float(mpp))
    return float(np.median(sides)) if sides else None


def _write_failures(out_dir: Path, outcomes: list[SlideOutcome], info: D.DistInfo) -> None:
    """Each rank writes its part; rank 0 merges them into ``failures.csv``."""
    import pandas as pd

    from histcode import distributed as D
    from histcode.atomic import write_csv
    from histcode.features.extract import outcomes_frame

    bad = [o for o in outcomes if o.status in ("failed", "partial")]
    part = out_dir / (f".failures.rank{info.rank}.csv" if info.world_size > 1 else "failures.csv")
    write_csv(part, outcomes_frame(bad))
    if info.world_size > 1:
        D.barrier()
        if info.is_main:
            parts = [out_dir / f".failures.rank{r}.csv" for r in range(info.world_size)]
            merged = pd.concat([pd.read_csv(p, dtype={"slide_id": str}) for p in parts], ignore_index=True)
            write_csv(out_dir / "failures.csv", merged.sort_values("slide_id"))
            for p in parts:
                p.unlink(missing_ok=True)


def _gather_outcomes(outcomes: list[SlideOutcome]) -> list[SlideOutcome]:
    from histcode import distributed as D

    if not D.is_distributed():
        return outcomes
    import torch.distributed as dist

    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, outcomes)
    return [o for p in parts for o in p]


def _import(name: str, folder: Path, paths: Paths, cohort: str, out_dir: Path, cfg: ExtractConfig,
            info: D.DistInfo) -> dict[str, int]:
    """Convert a TRIDENT/CLAM folder into feature set ``name`` (``histcode.features.imported``)."""
    import pandas as pd

    from histcode.features.imported import import_feature_set
    from histcode.io.manifest import read_manifest

    manifest = read_manifest(paths.slides_csv(cohort))
    outcomes = import_feature_set(name, folder, manifest, out_dir, cohort=cohort, dtype=cfg.dtype)
    _write_failures(out_dir, outcomes, dataclasses.replace(info, world_size=1))
    counts = pd.Series([o.status for o in outcomes]).value_counts().to_dict()
    return {f"slides_{k}": int(counts.get(k, 0)) for k in ("done", "failed")}


def run_extract(params: str | Path | dict[str, Any] = "params.yaml", *, cohort: str,
                encoders: list[str] | None = None, progress: bool | None = None,
                out_root: Path | None = None, stain_reference: Path | None = None) -> dict[str, Any]:
    """Extract features of ``cohort`` for ``encoders`` (default ``extract.encoders``); returns metrics.

    ``out_root``: write ``<out_root>/<encoder>/`` instead of the DVC-owned ``features/<cohort>/<encoder>/``
    (external validation with registry encoders must not modify a stage's outputs). ``stain_reference``:
    the reference that travels with a registered encoder, instead of ``data/stain/reference.json``.
    """
    stage = open_stage("extract", params, ExtractConfig)
    cfg = stage.cfg
    if progress is not None:
        cfg = dataclasses.replace(cfg, progress=progress)
    names = encoders or cfg.encoders
    if not encoders and not cfg.baselines_external and stage.base.cohort(cohort).role == "external":
        skipped = [n for n in names if n in BASELINES]
        names = [n for n in names if n not in BASELINES]
        if skipped:
            log.info("extract %s: baselines %s are for the training cohort's comparisons; not embedded on this "
                     "external cohort (extract.baselines_external: true embeds them)", cohort, ", ".join(skipped))
        if not names:
            raise ConfigError(f"extract.encoders: {cfg.encoders} holds only baselines, which are not embedded on "
                              f"external cohort {cohort!r}; add the encoder to validate (e.g. adco) or set "
                              "extract.baselines_external: true.")
    if out_root is None and stain_reference is None:
        done = _nothing_to_do(stage, cfg, cohort, names)
        if done is not None:
            return done
    return _extract(stage, cfg, cohort, names, out_root, stain_reference)


def _nothing_to_do(stage: Stage, cfg: ExtractConfig, cohort: str, names: list[str]) -> dict[str, Any] | None:
    """The metrics of a cohort already complete for these encoders, settings and tiles (every slide skipped),
    else None. Its metrics files are rewritten only when they do not describe these outputs (e.g. removed by
    ``dvc repro --force``); no MLflow run: a run that did nothing would only bury the one that did the work."""
    from histcode import tables, tracking

    t0 = time.perf_counter()
    paths = stage.paths
    metrics = resume.complete_metrics(cohort, names, cfg, paths, seed=stage.seed,
                                      default_mpp=stage.base.cohort(cohort).default_mpp)
    if metrics is None:
        return None
    metrics["seconds_this_call"] = time.perf_counter() - t0
    recorded = paths.metrics(f"extract/{cohort}")
    declared = tables.table_path(recorded)
    try:
        current = recorded.is_file() and (declared is None or declared[1].is_file()) and resume.same_report(
            json.loads(recorded.read_text()), metrics, names)
    except ValueError:
        current = False
    if not current:
        tracking.write_metrics(metrics, recorded)
    log.info("extract %s: all %d slides already extracted by %s with these settings; nothing to do", cohort,
             metrics["n_slides"], ", ".join(names))
    return metrics


def _extract(stage: Stage, cfg: ExtractConfig, cohort: str, names: list[str], out_root: Path | None,
             stain_reference: Path | None) -> dict[str, Any]:
    import pandas as pd
    import torch

    from histcode import distributed as D
    from histcode import tracking
    from histcode.features.encoders import EncoderUnavailable, resolve_encoder
    from histcode.features.extract import EncoderJob, SlideOutcome, extract_slides, shard
    from histcode.features.imported import is_feature_folder
    from histcode.precision import describe, resolve_bf16
    from histcode.preflight import ensure_writable, require_items
    from histcode.slides.cohort_tiles import collect_slides

    t_call = time.perf_counter()
    bcfg, paths = stage.base, stage.paths
    info = D.init_distributed("auto")
    setting = cfg.bf16
    cfg = dataclasses.replace(cfg, bf16=resolve_bf16(setting, info.device.type))  # runs and files record it
    log.info("extract %s: %s", cohort, describe(setting, cfg.bf16, info.device.type))
    torch.set_num_threads(torch_threads(cfg.threads, "extract"))
    slides, coord_failures = collect_slides(cohort, paths=paths, default_mpp=bcfg.cohort(cohort).default_mpp)
    require_items(len(slides) + len(coord_failures), what=f"slide of cohort {cohort!r} to extract",
                  where=paths.tiles(cohort), fix=f"run `dvc repro tile@{cohort}` (and ingest) first")
    for name in names:
        ensure_writable(Path(out_root) / name if out_root is not None else paths.features(cohort, name),
                        what="features")
    mine = shard(slides, info.rank, info.world_size)
    normalize = None
    if cfg.stain:
        from histcode.slides.stain import load_normalizer

        normalize = load_normalizer(stain_reference or paths.stain_reference).transform_batch
    from histcode.features.foundation import FOUNDATION, locate_weights

    for name in names:  # fail fast, before any MLflow run or pixel read: one line naming the model and its source
        if name in FOUNDATION:
            locate_weights(FOUNDATION[name], cfg.sources.get(name))
    metrics: dict[str, Any] = {"n_slides": len(slides) + len(coord_failures), "world_size": info.world_size}
    # the stage's DVC metrics file only for the stage itself, not for out_root (external) runs
    run_ctx = (stage.run("extract", run_name=f"extract-{cohort}", cohort=cohort, inputs=[paths.tiles(cohort)],
                         params={**to_dict(cfg), "encoders": names},
                         metrics=f"extract/{cohort}" if out_root is None else None,
                         defer=True)  # logged by a detached process: no mlflow import on extraction's path
               if info.is_main else contextlib.nullcontext())
    try:
        with run_ctx as run:
            jobs = []
            identity: dict[str, str] = {}
            keys: dict[str, str | None] = {}
            for name in names:
                out_dir = Path(out_root) / name if out_root is not None else paths.features(cohort, name)
                source = cfg.sources.get(name, "")
                if source and is_feature_folder(source):  # TRIDENT/CLAM features: converted, not re-embedded
                    if info.is_main:
                        done = _import(name, Path(source), paths, cohort, out_dir, cfg, info)
                        metrics.update({f"{name}/{k}": v for k, v in done.items()})
                        identity[f"encoder.{name}.uri"] = f"import:{Path(source).resolve()}"
                    continue
                key = resume.source_key(name, cfg, paths, seed=bcfg.seed)  # before the files are loaded
                try:
                    enc = resolve_encoder(name, cfg, paths, seed=bcfg.seed, tile_um=tile_side_um(slides),
                                          stain_reference=stain_reference or paths.stain_reference)
                except EncoderUnavailable as exc:
                    log.warning("%s", exc)
                    metrics[f"{name}/skipped"] = 1
                    continue
                sub = cfg.baseline_max_tiles if name in BASELINES else 0
                settings = resume.settings_digest(cfg, enc.input_px, stain_reference or paths.stain_reference)
                jobs.append(EncoderJob(enc.name, enc.module, enc.uri, enc.dim, out_dir, enc.fingerprint,
                                       input_px=enc.input_px, max_tiles=sub, seed=bcfg.seed, settings=settings))
                keys[name] = key
                identity.update({f"encoder.{name}.uri": enc.uri, f"encoder.{name}.fingerprint": jobs[-1].identity})
            if info.is_main and identity:
                tracking.log_params(identity)
            outcomes, stats = extract_slides(mine, jobs, cfg=cfg, device=info.device, normalize=normalize,
                                             extra_attrs={"cohort": cohort, "stain": "reference" if cfg.stain
                                                          else "none"})
            if out_root is None:  # the DVC-owned features: a run that embedded nothing reports the run that did
                metrics.update(throughput.speed_metrics(cohort, {j.name: j.identity for j in jobs}, stats,
                                                        time.perf_counter() - t_call,
                                                        root=throughput.record_root(paths)))
            else:
                metrics.update({k: stats[k] for k in throughput.SPEED_KEYS}, tiles_this_call=stats["tiles"],
                               seconds_this_call=stats["seconds"])
            for job in jobs:
                mine_out = outcomes[job.name]
                if info.is_main:
                    mine_out += [SlideOutcome(f.slide_id, "failed", 0, 0, f"{f.stage}: {f.reason}")
                                 for f in coord_failures]
                _write_failures(job.out_dir, mine_out, info)
                counts = pd.Series([o.status for o in _gather_outcomes(mine_out)]).value_counts().to_dict()
                for status in ("done", "skipped", "partial", "failed"):
                    metrics[f"{job.name}/slides_{status}"] = int(counts.get(status, 0))
                metrics[f"{job.name}/dim"] = job.dim
                key = keys[job.name]
                if info.is_main and key not in (None, resume.UNAVAILABLE):  # lets the next run decide without torch
                    resume.write_key(job.out_dir, key, job.identity, job.input_px)
            if info.is_main:
                run.metrics = metrics
    finally:
        D.cleanup()
    return metrics
