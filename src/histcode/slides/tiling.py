"""Tiling a cohort: manifest → process pool over slides → coords .h5 + mask PNG each + process_list.csv.

Resumable (slides whose complete outputs match the current config are skipped), shardable for job arrays
(``shard=(i, n)``: every n-th slide by sorted slide_id, starting at i, 0-based), and robust (a bad slide,
even one that crashes its worker process, is recorded as failed with its reason; the rest completes).
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from histcode.console import tqdm
from histcode.cpus import available_cpus
from histcode.io.manifest import ManifestRow, read_manifest_rows, valid_mpp
from histcode.memory_reuse import reuse_freed_memory
from histcode.preflight import ensure_writable, exclusive, require_items
from histcode.process_exit import skip_exit_collection
from histcode.slides.config import TileConfig
from histcode.slides.job import (
    SlideResult,
    completed,
    config_digest,
    level0_per_target_px,
    run_slide,
    seg_read_downsample,
)
from histcode.slides.process_list import update_process_list

# Cost model that decides whether a process pool pays (measured on the 2-core dev machine, 1f1d905):
SPAWN_COST_S = 1.5  # a spawned worker's start-up: interpreter plus OpenCV/OpenSlide/h5py imports
SLIDE_COST_S = 0.12  # per slide besides decoding: open, mask, tile grid, coords + QC PNG writes
DECODE_PX_PER_S = 40e6  # segmentation-level pixels decoded per second on one core (JPEG tiles)
POOL_GAIN = 0.8  # use a pool only when it is expected to take at most this share of the in-process time


@dataclass(frozen=True)
class SlideJob:
    path: str
    slide_id: str
    out_dir: str
    cfg: TileConfig
    mpp_override: float | None
    default_mpp: float | None

    def run(self) -> SlideResult:
        return run_slide(self.path, self.slide_id, self.out_dir, self.cfg, self.mpp_override, self.default_mpp)


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` → (i, n), 0 <= i < n (e.g. ``$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT``)."""
    try:
        i_s, n_s = text.split("/")
        i, n = int(i_s), int(n_s)
    except ValueError as exc:
        raise ValueError(f"--shard {text!r}: expected 'i/n' with integers, e.g. 0/4") from exc
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {text!r}: need 0 <= i < n (shards are 0-based)")
    return i, n


def _init_worker() -> None:
    """A spawned tiling process: glibc keeps its freed segmentation images; no exit collection."""
    reuse_freed_memory()
    skip_exit_collection()


def _run_pool(jobs: list[SlideJob], workers: int, on_result: Callable[[SlideResult], None]) -> list[SlideJob]:
    """Run jobs in a spawn pool; return those whose worker died (their results are unknown)."""
    broken: list[SlideJob] = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                             initializer=_init_worker) as pool:
        futures = {pool.submit(job.run): job for job in jobs}
        for fut in as_completed(futures):
            try:
                on_result(fut.result())
            except BrokenProcessPool:
                broken.append(futures[fut])
    return broken


def job_seconds(job: SlideJob) -> float:
    """Expected in-process seconds of one slide: fixed cost plus decoding the level its mask is read from
    (the slide's header only is opened; an unreadable slide counts the fixed cost, it fails fast)."""
    from histcode.slides.reader import SlideReader

    try:
        with SlideReader(job.path, mpp_override=job.mpp_override, default_mpp=job.default_mpp) as slide:
            level = slide.best_level(seg_read_downsample(slide, job.cfg, level0_per_target_px(slide, job.cfg)[1]))
            lw, lh = slide.level_dimensions[level]
    except Exception:  # the job itself reports the error
        return SLIDE_COST_S
    return SLIDE_COST_S + lw * lh / DECODE_PX_PER_S


def plan_workers(jobs: list[SlideJob], max_workers: int) -> int:
    """Processes that pay for this work: 0 (in-process, on threads) unless ``SPAWN_COST_S + total / n`` beats
    the in-process total by ``POOL_GAIN``; never more than ``max_workers``, the CPUs this process may use
    (``histcode.cpus``: a batch job's share of a node, not the node) or the slides. A process pool also isolates
    a slide whose decoder crashes, which matters most in the large cohorts that use it."""
    limit = min(max_workers, available_cpus(), len(jobs))
    if limit < 2:
        return 0
    total = sum(job_seconds(j) for j in jobs)
    return limit if SPAWN_COST_S + total / limit <= POOL_GAIN * total else 0


def run_jobs(jobs: list[SlideJob], workers: int, on_result: Callable[[SlideResult], None], *,
             threads: int = 1) -> None:
    """Run every job: in-process when workers == 0 (on ``threads`` threads: OpenSlide and OpenCV release the
    GIL, so slides overlap without a process's start-up), else in a process pool, where a slide that kills its
    worker is isolated and failed."""
    if workers <= 0:
        if threads <= 1 or len(jobs) < 2:
            for job in jobs:
                on_result(job.run())
            return
        with ThreadPoolExecutor(max_workers=min(threads, len(jobs))) as pool:
            for fut in as_completed([pool.submit(job.run) for job in jobs]):
                on_result(fut.result())
        return
    broken = _run_pool(jobs, min(workers, max(1, len(jobs))), on_result)
    for job in sorted(broken, key=lambda j: j.slide_id):  # a crash breaks every in-flight job: retry alone
        if _run_pool([job], 1, on_result):
            on_result(SlideResult(slide=job.slide_id, status="failed", n_tiles=0, reason=(
                f"{job.path}: the worker process crashed while tiling this slide (the slide decoder "
                "aborted: the file is probably corrupt); re-download it or remove it from the cohort.")))


def tile_cohort(slides_csv: str | Path, out_dir: str | Path, cfg: TileConfig, *, workers: int | None = None,
                shard: tuple[int, int] = (0, 1), progress: bool = True,
                default_mpp: float | None = None) -> list[SlideResult]:
    """Tile every slide of a manifest (or one shard of it) into ``out_dir``; return this run's results.

    Writes ``<out_dir>/<slide_id>.h5``, ``<out_dir>/masks/<slide_id>.png`` and merges the rows into
    ``<out_dir>/process_list.csv``. workers: the most slides at once (default ``cfg.workers``; 0 = one by one):
    threads in this process, or a process pool when the work pays for its start-up (:func:`plan_workers`).
    """
    out = Path(out_dir)
    manifest = read_manifest_rows(slides_csv, sort=True)
    require_items(len(manifest), what="slides in the manifest", where=slides_csv,
                  fix="check the cohort's slide sheet/folder and rerun ingest")
    i, n = shard
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard {shard}: need 0 <= i < n")
    ensure_writable(out, what="tiles")  # before any slide: a read-only folder fails in one line, not at the end
    with exclusive(out.parent / f"{out.name}.shard{i}of{n}", who=f"histcode tile (shard {i}/{n})"):
        return _tile_rows(manifest, manifest[i::n], out, cfg, workers=workers, shard=shard, progress=progress,
                          default_mpp=default_mpp)


def nothing_to_do(slides_csv: str | Path, out_dir: str | Path, cfg: TileConfig,
                  shard: tuple[int, int] = (0, 1)) -> bool:
    """True when every slide of the shard already has a complete output for this config: a rerun would only
    redo bookkeeping, so the stage can return at once (no pool, no MLflow run)."""
    out = Path(out_dir)
    if not (out / "process_list.csv").is_file() or not Path(slides_csv).is_file():
        return False
    manifest = read_manifest_rows(slides_csv, sort=True)
    digest = config_digest(cfg)
    i, n = shard
    ids = [r.slide_id for r in manifest[i::n]]
    return len(ids) > 0 and all(completed(out, sid, digest) is not None for sid in ids)


def _tile_rows(manifest: list[ManifestRow], rows: list[ManifestRow], out: Path, cfg: TileConfig, *, workers: int | None,
               shard: tuple[int, int], progress: bool, default_mpp: float | None) -> list[SlideResult]:
    """Tile ``rows`` (one shard of ``manifest``) under the shard's lock."""
    _, n = shard
    workers = cfg.workers if workers is None else workers
    digest = config_digest(cfg)
    results: dict[str, SlideResult] = {}
    jobs: list[SlideJob] = []
    for rec in rows:
        prev = completed(out, rec.slide_id, digest)
        if prev is not None:
            results[rec.slide_id] = prev
        else:
            jobs.append(SlideJob(rec.path, rec.slide_id, str(out), cfg, valid_mpp(rec.mpp), default_mpp))
    out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(rows), initial=len(results), desc=f"tile {out.name}", unit="slide",
               disable=not progress)

    def on_result(res: SlideResult) -> None:
        results[res.slide] = res
        bar.update(1)
        bar.set_postfix(failed=sum(r.status != "done" for r in results.values()))

    try:
        procs = plan_workers(jobs, workers) if workers > 0 else 0
        run_jobs(jobs, procs, on_result, threads=0 if procs else min(workers, available_cpus()))
    finally:
        bar.close()
    ordered = [results[r.slide_id] for r in rows if r.slide_id in results]
    update_process_list(out / "process_list.csv", [r.row() for r in ordered], {r.slide_id for r in manifest},
                        shared=n > 1)
    return ordered


def summarise(results: list[SlideResult]) -> dict[str, Any]:
    """Cohort metrics for MLflow and the DVC metrics JSON."""
    done = [r for r in results if r.status == "done"]
    tiles = [r.n_tiles for r in done]
    return {
        "n_slides": len(results),
        "n_done": len(done),
        "n_failed": len(results) - len(done),
        "n_tiles": int(sum(tiles)),
        "tiles_per_slide_mean": float(sum(tiles) / len(tiles)) if tiles else 0.0,
        "tiles_per_slide_min": int(min(tiles)) if tiles else 0,
        "tiles_per_slide_max": int(max(tiles)) if tiles else 0,
        "tissue_area_mm2": float(sum(r.tissue_area_mm2 or 0.0 for r in done)),
        "failures": {r.slide: r.reason for r in results if r.status != "done"},
    }
