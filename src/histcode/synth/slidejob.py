"""One slide, end to end: layout → render → slide file (+ 20x twin) → region mask → truth row.

Runs in worker processes; everything it needs arrives in the picklable :class:`SlideJob`, and its
random generator comes from the slide's own seed, so results do not depend on scheduling.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from histcode.io.truth import (
    ARTEFACT_BITS,
    OVERLAY_BITS,
    REGION_CODES,
    twin_path,
    write_lymphocyte_map,
    write_overlay_map,
    write_region_mask,
    write_tumour_nuclei_map,
)
from histcode.synth import sites
from histcode.synth.adipose import add_adipose, membrane_lattice
from histcode.synth.cells import Biology
from histcode.synth.layout import (
    TISSUE_CODES,
    Architecture,
    Artefacts,
    make_layout,
)
from histcode.synth.plan import COHORTS, PatientPlan, SlidePlan
from histcode.synth.render import render_slide
from histcode.synth.slidefile import ScannerStyle, write_aperio_svs, write_generic_tiff
from histcode.synth.stain import sample_style

NORMAL_STROMA_TIL = 30.0  # lymphocytes per mm² of normal tissue
NORMAL_CLUSTERS = 0.25  # aggregates per mm² of normal tissue
ADIPOSE_STREAM = 8  # extra seed word of the fat stream (fat never shifts the rest of a slide's randomness)


@dataclass(frozen=True)
class SlideJob:
    slide: SlidePlan
    patient: PatientPlan
    slide_dir: Path
    gt_dir: Path
    cell_um: float
    tissue_fill: float
    stain_jitter: float
    jpeg_quality: int
    tile_px: int
    adipose_fraction: tuple[float, float] = (0.0, 0.0)  # range of the fat share of a normal slide's tissue
    adipose_tumour: tuple[float, float] = (0.0, 0.0)  # the same for tumour slides
    pen_rings: int = 0  # closed ink rings over the tissue of a pen slide (SynthConfig.pen_rings)


def _biology(p: PatientPlan, tumour: bool) -> Biology:
    common = dict(
        cellularity=p.cellularity,
        fibroblast_keep=p.fibroblast_keep,
        fibre_amp=p.fibre_amp,
        nuclear_scale=p.nuclear_scale,
        pleomorphism=p.pleomorphism,
    )
    if tumour:
        return Biology(til_per_mm2=p.til_per_mm2, stroma_til_per_mm2=0.3 * p.til_per_mm2, **common)
    return Biology(til_per_mm2=0.0, stroma_til_per_mm2=NORMAL_STROMA_TIL, **common)


def run_slide(job: SlideJob) -> dict[str, Any]:
    """Render and write one slide; return its ground-truth row.

    OpenCV runs single-threaded here: the blocks are small and parallelism comes from the process
    pool (OpenCV's own threads on a contended CPU made rendering several times slower).
    """
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        return _run_slide(job)
    finally:
        cv2.setNumThreads(threads)


def _run_slide(job: SlideJob) -> dict[str, Any]:
    s, p = job.slide, job.patient
    rng = np.random.default_rng(np.random.SeedSequence(list(s.seed)))
    tumour = s.label == 1
    cell_px = round(job.cell_um / s.mpp)
    shape = (-(-s.height // cell_px), -(-s.width // cell_px))
    layout = make_layout(
        rng,
        shape,
        tumour=tumour,
        tumour_fraction=p.tumour_fraction,
        necrosis_fraction=p.necrosis_fraction,
        lymph_clusters_per_mm2=p.lymph_clusters_per_mm2 if tumour else NORMAL_CLUSTERS,
        cell_um=job.cell_um,
        tissue_fill=job.tissue_fill,
        pen=s.pen,
        blank=s.blank,
        inflamed_fraction=p.inflamed_fraction if tumour else p.normal_inflamed_fraction,
        arch=Architecture(
            pattern=p.architecture,
            infiltrate_sigma_um=p.infiltrate_sigma_um,
            aggregate_radius_um=(0.6 * p.aggregate_radius_um, 1.4 * p.aggregate_radius_um),
            fibre_wave=p.fibre_wave,
        ),
        artefacts=Artefacts(s.pen, s.blank, s.fold, s.bubble, s.out_of_focus),
        pen_rings=job.pen_rings,
    )
    fat_rng = np.random.default_rng(np.random.SeedSequence([*s.seed, ADIPOSE_STREAM]))
    lo, hi = job.adipose_tumour if tumour else job.adipose_fraction
    fat_fraction = lo + (hi - lo) * p.fat_propensity  # the patient's fat share, within the site's range
    layout = add_adipose(fat_rng, layout, fat_fraction, job.cell_um)
    membranes = membrane_lattice(
        fat_rng, layout.under == REGION_CODES["adipose"], cell_px=cell_px, mpp=s.mpp, width=s.width, height=s.height
    )
    site = sites.site(s.style)
    style = sample_style(rng, site, job.stain_jitter)
    bio = _biology(p, tumour)
    image, stats = render_slide(
        layout,
        width=s.width,
        height=s.height,
        mpp=s.mpp,
        cell_px=cell_px,
        style=style,
        bio=bio,
        rng=rng,
        ink_density=float(rng.uniform(0.5, 0.9)),
        membranes=membranes,
    )
    train_site = s.cohort == COHORTS[0]
    quality = int(rng.integers(site.jpeg_quality[0], site.jpeg_quality[1] + 1))
    scanner = ScannerStyle(
        job.tile_px if train_site else site.tile_px,
        min(quality, job.jpeg_quality) if train_site else quality,
        site.scanner_id,
    )
    path = job.slide_dir / s.file_name
    if s.fmt == "svs":
        levels = write_aperio_svs(
            path,
            image,
            s.mpp,
            scanner,
            label_text=s.slide_id,
            date="06/17/14",
            image_id=int(rng.integers(10_000, 99_999)),
        )
    else:
        levels = write_generic_tiff(path, image, s.mpp, scanner)
    twin = ""
    if s.mpp < 0.5:  # the same tissue at 20x, for µm²-level comparisons of tiling
        f = round(0.5 / s.mpp)
        small = cv2.resize(image, (s.width // f, s.height // f), interpolation=cv2.INTER_AREA)
        tp = twin_path(job.gt_dir, s.cohort, s.slide_id)
        write_generic_tiff(tp, small, 0.5, scanner)
        twin = str(tp.relative_to(job.gt_dir))
    write_region_mask(job.gt_dir, s.cohort, s.slide_id, layout.codes)
    write_lymphocyte_map(job.gt_dir, s.cohort, s.slide_id, stats.lymphocyte_counts)
    write_tumour_nuclei_map(job.gt_dir, s.cohort, s.slide_id, stats.tumour_counts)
    bits = layout.artefacts.copy() if layout.artefacts is not None else np.zeros_like(layout.codes)
    lumen = layout.lumen if layout.lumen is not None else np.zeros(layout.codes.shape, bool)
    bits[lumen] |= OVERLAY_BITS["lumen"]
    bed = layout.bed if layout.bed is not None else np.zeros(layout.codes.shape, bool)
    bits[bed] |= OVERLAY_BITS["tumour_bed"]
    write_overlay_map(job.gt_dir, s.cohort, s.slide_id, bits)
    row = _truth_row(s, p, layout.codes, cell_px, style, stats, levels, twin, tumour, bio)
    solid = (layout.codes == REGION_CODES["tumour"]) & ~lumen  # tumour cells that can hold nuclei
    mm2 = (cell_px * s.mpp / 1000.0) ** 2
    row.update(
        {
            "tumour_nuclei_density": float(stats.tumour_counts[solid].sum() / (solid.sum() * mm2))
            if tumour and solid.any()
            else 0.0,
            "lumen_fraction": float(lumen.sum() / max((layout.codes == REGION_CODES["tumour"]).sum(), 1)),
            "tumour_share_of_bed": float((layout.codes[bed] == REGION_CODES["tumour"]).mean()) if bed.any() else 0.0,
            "planted_adipose_fraction": fat_fraction,
            "site": site.name,
            "architecture": p.architecture if tumour else "",
            "nuclear_scale": p.nuclear_scale,
            "pleomorphism": p.pleomorphism,
            "jpeg_quality": scanner.jpeg_quality,
            "tile_px": scanner.tile_px,
            **{f"has_{k}": bool((bits & b).any()) for k, b in ARTEFACT_BITS.items()},
        }
    )
    return row


def _truth_row(
    s: SlidePlan,
    p: PatientPlan,
    codes: np.ndarray,
    cell_px: int,
    style: Any,
    stats: Any,
    levels: list[tuple[int, int]],
    twin: str,
    tumour: bool,
    bio: Biology,
) -> dict[str, Any]:
    counts = np.bincount(codes.ravel(), minlength=len(REGION_CODES))
    mm2 = (cell_px * s.mpp / 1000.0) ** 2
    tissue = int(np.isin(codes, TISSUE_CODES).sum())
    tum_area = counts[REGION_CODES["tumour"]] + counts[REGION_CODES["lymphocyte_dense"]] * tumour
    h, e = style.matrix()
    row: dict[str, Any] = {
        "cohort": s.cohort,
        "slide_id": s.slide_id,
        "file_name": s.file_name,
        "patient_id": s.patient_id,
        "label": s.label,
        "sample_type": s.sample_type,
        "format": s.fmt,
        "mpp": s.mpp,
        "magnification": round(10 / s.mpp),
        "width": s.width,
        "height": s.height,
        "n_levels": len(levels),
        "mask_downsample": cell_px,
        "tissue_mm2": tissue * mm2,
        "tumour_fraction": counts[REGION_CODES["tumour"]] / max(tissue, 1),
        "necrosis_fraction": counts[REGION_CODES["necrosis"]] / max(tissue, 1),
        "lymphocyte_density": stats.n_lymphocytes_in_tumour / (tum_area * mm2)
        if tumour and tum_area
        else 0.0,
        "tumour_nuclei_density": stats.n_tumour_nuclei / (counts[REGION_CODES["tumour"]] * mm2)
        if tumour and counts[REGION_CODES["tumour"]]
        else 0.0,
        "planted_til_per_mm2": bio.til_per_mm2,
        "planted_inflamed_fraction": p.inflamed_fraction if tumour else p.normal_inflamed_fraction,
        "planted_cellularity": bio.cellularity if tumour else 0.0,
        "n_lymphocytes": stats.n_lymphocytes,
        "n_glands": stats.n_glands,
        "has_pen": bool(counts[REGION_CODES["pen_mark"]]),
        "has_blank": bool(counts[REGION_CODES["blank"]]),
        "stain_h_r": h[0],
        "stain_h_g": h[1],
        "stain_h_b": h[2],
        "stain_e_r": e[0],
        "stain_e_g": e[1],
        "stain_e_b": e[2],
        "h_amount": style.h_amount,
        "e_amount": style.e_amount,
        "i0_r": style.i0[0],
        "i0_g": style.i0[1],
        "i0_b": style.i0[2],
        "blur_um": style.blur_um,
        "style": s.style,
        "twin_file": twin,
        "seed": "-".join(map(str, s.seed)),
    }
    row.update({f"frac_{k}": counts[c] / codes.size for k, c in REGION_CODES.items()})
    return row


def job_cost(job: SlideJob) -> float:
    """Relative render cost (pixels), to start the big slides first."""
    return float(job.slide.width * job.slide.height)
