"""``generate(cfg, out_dir)``: write both synthetic cohorts and their ground truth (layout in
docs/synthetic_cohort.md and :mod:`histcode.io.truth`).

Slides render in a process pool (``cfg.workers``); sheets, RNA-seq files and truth tables are cheap
and written by the parent. Every file is written atomically; ``ground_truth/manifest.json`` is written
last and marks a complete cohort.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from histcode.atomic import write_csv, write_json
from histcode.config import to_dict
from histcode.console import tqdm
from histcode.io.truth import region_table
from histcode.synth.config import SynthConfig
from histcode.synth.plan import COHORTS, SlidePlan, plan_cohorts
from histcode.synth.rnaseq import PROJECT, simulate_rnaseq, write_rnaseq
from histcode.synth.sites import site
from histcode.synth.slidejob import SlideJob, job_cost, run_slide
from histcode.synth.star import sample_sheet

log = logging.getLogger(__name__)
TCGA, CPTAC = COHORTS
MANIFEST = "manifest.json"
STARTED = ".synth_started"  # marks a generation in progress, so a rerun may clear what it left
RUNTIME_KEYS = ("workers", "progress", "out_dir")


def _prepare(out_dir: Path) -> None:
    """Remove a previous generated cohort (recognised by its manifest); refuse to mix with other files."""
    parts = [out_dir / TCGA, out_dir / CPTAC, out_dir / "ground_truth"]
    ours = out_dir / "ground_truth" / MANIFEST
    if ours.exists() or (out_dir / STARTED).exists():  # a previous (possibly interrupted) run of ours
        for p in parts:
            shutil.rmtree(p, ignore_errors=True)
    elif any(p.exists() and any(p.iterdir()) for p in parts):
        raise FileExistsError(
            f"{out_dir}: holds cohort folders without a synth manifest; choose an empty "
            "out_dir or remove them."
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / STARTED).touch()


def _slide_sheets(slides: list[SlidePlan], out_dir: Path) -> None:
    tcga = [s for s in slides if s.cohort == TCGA]
    rows = [
        {
            "File ID": s.file_id,
            "File Name": s.file_name,
            "Data Category": "Biospecimen",
            "Data Type": "Slide Image",
            "Project ID": PROJECT,
            "Case ID": s.patient_id,
            "Sample ID": s.sample_id,
            "Sample Type": s.sample_type,
        }
        for s in tcga
    ]
    write_csv(out_dir / TCGA / "gdc_sample_sheet.slides.tsv", sample_sheet(rows), sep="\t")
    cptac = pd.DataFrame(
        [
            {
                "slide_id": s.slide_id,
                "file_name": s.file_name,
                "patient_id": s.patient_id,
                "label": "tumor" if s.label else "normal",
            }
            for s in slides
            if s.cohort == CPTAC
        ]
    )
    write_csv(out_dir / CPTAC / "cptac_brca_manifest.csv", cptac)


def _run_jobs(jobs: list[SlideJob], workers: int, progress: bool) -> list[dict[str, Any]]:
    order = sorted(range(len(jobs)), key=lambda i: -job_cost(jobs[i]))
    results: dict[int, dict[str, Any]] = {}
    bar = tqdm(total=len(jobs), desc="synth slides", unit="slide", disable=not progress)
    if workers <= 1:
        for i in order:
            results[i] = run_slide(jobs[i])
            bar.update()
    else:
        ctx = multiprocessing.get_context("fork")
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = {pool.submit(run_slide, jobs[i]): i for i in order}
            for fut in cf.as_completed(futures):
                results[futures[fut]] = fut.result()
                bar.update()
    bar.close()
    return [results[i] for i in range(len(jobs))]


def generate(cfg: SynthConfig, out_dir: Path) -> None:
    """Write the TCGA-like and CPTAC-like cohorts and the ground truth under ``out_dir``."""
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    _prepare(out_dir)
    gt = out_dir / "ground_truth"
    patients, slides = plan_cohorts(cfg)
    by_id = {(p.cohort, p.patient_id): p for p in patients}
    cell_um = cfg.mask_downsample * 0.5
    jobs = [
        SlideJob(
            slide=s,
            patient=by_id[(s.cohort, s.patient_id)],
            slide_dir=out_dir / s.cohort / "slides",
            gt_dir=gt,
            cell_um=cell_um,
            tissue_fill=cfg.tissue_fill,
            stain_jitter=cfg.stain_jitter,
            jpeg_quality=cfg.jpeg_quality,
            tile_px=cfg.tile_px,
            adipose_fraction=cfg.adipose_fraction if s.cohort == TCGA else site(cfg.external_profile).adipose_normal,
            adipose_tumour=site(cfg.train_profile if s.cohort == TCGA else cfg.external_profile).adipose_tumour,
            pen_rings=cfg.pen_rings,
        )
        for s in slides
    ]
    write_rnaseq(simulate_rnaseq(cfg.seed, cfg.n_genes_background, patients), out_dir / TCGA, gt)
    rows = _run_jobs(jobs, cfg.workers, cfg.progress)
    _slide_sheets(slides, out_dir)
    write_csv(gt / "slides.csv", pd.DataFrame(rows))
    write_csv(gt / "patients.csv", pd.DataFrame([asdict(p) for p in patients]))
    write_csv(gt / "region_codes.csv", region_table())
    seconds = time.perf_counter() - t0
    # Only settings that shape the bytes (not workers/progress/out_dir), so the manifest is reproducible too.
    shaping = {k: v for k, v in to_dict(cfg).items() if k not in RUNTIME_KEYS}
    write_json(gt / MANIFEST, {"config": shaping, "n_slides": len(slides), "n_patients": len(patients)})
    (out_dir / STARTED).unlink(missing_ok=True)
    log.info("synth: %d slides, %d patients in %.1f s → %s", len(slides), len(patients), seconds, out_dir)
