"""The cohort plan: patients with their planted latent biology, and every slide's identity and format.

Planning is cheap and happens in the parent process; each slide then renders from its own seed
(derived from the base seed, the cohort and the slide index), so worker scheduling never changes
the output.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from histcode.synth import sites
from histcode.synth.config import SynthConfig
from histcode.synth.sites import SiteProfile

TCGA_TSS = (
    "A2",
    "A7",
    "A8",
    "AC",
    "AN",
    "AO",
    "AR",
    "B6",
    "BH",
    "C8",
    "D8",
    "E2",
    "E9",
    "EW",
    "GM",
    "LL",
    "OL",
)
COHORTS = ("tcga_synth", "cptac_synth")
_B36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"




@dataclass(frozen=True)
class PatientPlan:
    """One patient. ``z_lymph``/``z_cell``/``z_tumour``/``z_necrosis`` are the standardised latent factors
    that drive both the tumour slide's morphology and the planted expression effects."""

    cohort: str
    patient_id: str
    index: int
    z_lymph: float
    z_cell: float
    z_tumour: float
    z_necrosis: float
    tumour_fraction: float
    necrosis_fraction: float
    til_per_mm2: float
    inflamed_fraction: float
    normal_inflamed_fraction: float
    lymph_clusters_per_mm2: float
    cellularity: float
    has_normal_rna: bool
    site: str = "tcga"
    # nuisance morphology (independent of the latents; ranges from the site profile)
    architecture: str = "solid"
    nuclear_scale: float = 1.0
    pleomorphism: float = 0.14
    fibre_amp: float = 1.0
    fibre_wave: float = 6.0
    fibroblast_keep: float = 0.45
    infiltrate_sigma_um: float = 120.0
    aggregate_radius_um: float = 35.0
    fat_propensity: float = 0.5


@dataclass(frozen=True)
class SlidePlan:
    """One slide file: identity (GDC/CPTAC names), label, file format and resolution, render seed."""

    cohort: str
    index: int
    slide_id: str
    file_name: str
    file_id: str
    patient_id: str
    sample_id: str
    label: int
    fmt: str  # "tiff" | "svs"
    mpp: float
    width: int
    height: int
    style: str  # site profile name (stain, scanner, artefact rates): histcode.synth.sites
    pen: bool
    blank: bool
    seed: tuple[int, ...]
    fold: bool = False
    bubble: bool = False
    out_of_focus: bool = False

    @property
    def sample_type(self) -> str:
        return "Primary Tumor" if self.label == 1 else "Solid Tissue Normal"


def make_uuid(rng: np.random.Generator) -> str:
    """A random (version 4) UUID drawn from ``rng``, so names are reproducible."""
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def slide_seed(seed: int, cohort: str, index: int) -> tuple[int, ...]:
    """Entropy for one slide's generator: independent of processing order."""
    return (seed, COHORTS.index(cohort), index)


def _nuisance(site: SiteProfile, rng: np.random.Generator) -> dict[str, object]:
    """Per-patient morphology that does not touch the expression (domain randomisation)."""
    names = list(site.architecture)
    w = np.array([site.architecture[k] for k in names], float)
    return {
        "architecture": names[int(rng.choice(len(names), p=w / w.sum()))],
        "nuclear_scale": round(float(rng.uniform(*site.nuclear_scale)), 2),
        "pleomorphism": round(float(rng.uniform(*site.pleomorphism)), 2),
        "fibre_amp": float(rng.uniform(*site.fibre_amp)),
        "fibre_wave": float(rng.uniform(*site.fibre_wave)),
        "fibroblast_keep": float(rng.uniform(*site.fibroblast_keep)),
        "til_per_mm2": float(np.exp(rng.uniform(*np.log(site.til_per_mm2)))),
        "infiltrate_sigma_um": float(rng.uniform(*site.infiltrate_sigma_um)),
        "aggregate_radius_um": float(rng.uniform(*site.aggregate_radius_um)),
        "fat_propensity": float(rng.uniform()),
    }


def _patients(
    cfg: SynthConfig, cohort: str, n: int, rng: np.random.Generator, ids: list[str]
) -> list[PatientPlan]:
    site = sites.site(cfg.train_profile if cohort == COHORTS[0] else cfg.external_profile)
    nuisance_rng = np.random.default_rng([cfg.seed, 99, COHORTS.index(cohort), 1])
    shift = np.asarray(site.z_shift)
    z = rng.standard_normal((n, 3)) + shift[:3]
    no_normal = (
        set(rng.choice(n, size=cfg.n_without_normal, replace=False)) if cohort == COHORTS[0] else set()
    )
    out = []
    for i in range(n):
        zl, zc, zt = (float(v) for v in z[i])
        zn = float(ndtri(rng.uniform(1e-6, 1 - 1e-6))) + float(shift[3])
        nuisance = _nuisance(site, nuisance_rng)
        out.append(
            PatientPlan(
                cohort=cohort,
                patient_id=ids[i],
                index=i,
                z_lymph=zl,
                z_cell=zc,
                z_tumour=zt,
                z_necrosis=zn,
                tumour_fraction=float(np.clip(0.52 + 0.14 * zt, 0.22, 0.82)),
                necrosis_fraction=float(np.clip(0.06 * np.exp(0.8 * zn), 0.01, 0.3)),
                til_per_mm2=float(nuisance.pop("til_per_mm2")),
                inflamed_fraction=float(np.clip(0.05 * np.exp(0.9 * zl), 0.005, 0.3)),
                normal_inflamed_fraction=float(rng.uniform(0.005, 0.05)),
                lymph_clusters_per_mm2=float(1.6 * np.exp(0.8 * zl)),
                cellularity=float(np.clip(0.62 + 0.13 * zc, 0.35, 0.9)),
                has_normal_rna=i not in no_normal,
                site=site.name,
                **nuisance,  # type: ignore[arg-type]
            )
        )
    return out


def _tcga_ids(rng: np.random.Generator, n: int) -> list[str]:
    ids: list[str] = []
    while len(ids) < n:
        code = "".join(_B36[int(k)] for k in rng.integers(0, 36, 4))
        pid = f"TCGA-{TCGA_TSS[int(rng.integers(len(TCGA_TSS)))]}-{code}"
        if pid not in ids:
            ids.append(pid)
    return ids


def _cptac_ids(rng: np.random.Generator, n: int) -> list[str]:
    nums = rng.choice(np.arange(1, 1000), size=n, replace=False)
    return [f"{int(rng.choice([1, 3, 5, 11, 18])):02d}BR{int(k):03d}" for k in nums]


def plan_cohorts(cfg: SynthConfig) -> tuple[list[PatientPlan], list[SlidePlan]]:
    """Patients and slides of both cohorts (training first), fully determined by ``cfg``."""
    rng = np.random.default_rng([cfg.seed, 99])
    patients: list[PatientPlan] = []
    slides: list[SlidePlan] = []
    cell_px20 = cfg.mask_downsample
    for cohort in COHORTS:
        tcga = cohort == COHORTS[0]
        n = cfg.n_patients if tcga else cfg.n_patients_external
        pats = _patients(cfg, cohort, n, rng, _tcga_ids(rng, n) if tcga else _cptac_ids(rng, n))
        patients += pats
        n_slides = 2 * n
        order = rng.permutation(n_slides)
        n_svs = cfg.n_svs if tcga else min(cfg.n_svs_external, n_slides)
        n_40x = cfg.n_40x if tcga else 0
        svs = set(order[:n_svs].tolist())
        hi_res = set(order[n_svs : n_svs + n_40x].tolist())
        site = sites.site(cfg.train_profile if tcga else cfg.external_profile)
        pen = set(order[-1:].tolist()) | {i for i in range(n_slides) if rng.uniform() < site.p_pen}
        blank = set(order[-2:-1].tolist()) | {i for i in range(n_slides) if rng.uniform() < site.p_tear}
        art_rng = np.random.default_rng([cfg.seed, 99, COHORTS.index(cohort), 2])
        art = art_rng.uniform(size=(n_slides, 3)) < [site.p_fold, site.p_bubble, site.p_out_of_focus]
        scale = 1.0 if tcga else cfg.external_slide_scale
        w20 = max(4 * cfg.tile_px, int(cfg.slide_width * scale) // cell_px20 * cell_px20)
        h20 = max(4 * cfg.tile_px, int(cfg.slide_height * scale) // cell_px20 * cell_px20)
        for k in range(n_slides):
            p, label = pats[k // 2], 1 - k % 2
            ext = "svs" if k in svs else "tiff"
            uid = make_uuid(rng)
            if tcga:
                barcode = f"{p.patient_id}-01Z-00-DX1" if label else f"{p.patient_id}-11A-01-TS1"
                slide_id = f"{barcode}.{uid}"
                sample_id = f"{p.patient_id}-01Z" if label else f"{p.patient_id}-11A"
            else:
                slide_id = f"{p.patient_id}-{uid[:8].upper()}"
                sample_id = slide_id
            mpp = 0.25 if k in hi_res else 0.5
            f = round(0.5 / mpp)
            slides.append(
                SlidePlan(
                    cohort=cohort,
                    index=k,
                    slide_id=slide_id,
                    file_name=f"{slide_id}.{ext}",
                    file_id=make_uuid(rng),
                    patient_id=p.patient_id,
                    sample_id=sample_id,
                    label=label,
                    fmt=ext,
                    mpp=mpp,
                    width=w20 * f,
                    height=h20 * f,
                    style=site.name,
                    pen=k in pen,
                    blank=k in blank,
                    seed=slide_seed(cfg.seed, cohort, k),
                    fold=bool(art[k, 0]),
                    bubble=bool(art[k, 1]),
                    out_of_focus=bool(art[k, 2]),
                )
            )
    return patients, slides
