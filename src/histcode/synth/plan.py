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

from histcode.synth.config import SynthConfig

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


TUMOUR_TIL_PER_MM2 = 200.0  # scattered TILs in tumour (stroma: 30 % of it), the same for every patient


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
    style: str  # stain/scanner style: "tcga" | "cptac"
    pen: bool
    blank: bool
    seed: tuple[int, ...]

    @property
    def sample_type(self) -> str:
        return "Primary Tumor" if self.label == 1 else "Solid Tissue Normal"


def make_uuid(rng: np.random.Generator) -> str:
    """A random (version 4) UUID drawn from ``rng``, so names are reproducible."""
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def slide_seed(seed: int, cohort: str, index: int) -> tuple[int, ...]:
    """Entropy for one slide's generator: independent of processing order."""
    return (seed, COHORTS.index(cohort), index)


def _patients(
    cfg: SynthConfig, cohort: str, n: int, rng: np.random.Generator, ids: list[str]
) -> list[PatientPlan]:
    z = rng.standard_normal((n, 3))
    no_normal = (
        set(rng.choice(n, size=cfg.n_without_normal, replace=False)) if cohort == COHORTS[0] else set()
    )
    out = []
    for i in range(n):
        zl, zc, zt = (float(v) for v in z[i])
        zn = float(ndtri(rng.uniform(1e-6, 1 - 1e-6)))
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
                til_per_mm2=TUMOUR_TIL_PER_MM2,
                inflamed_fraction=float(np.clip(0.05 * np.exp(0.9 * zl), 0.005, 0.3)),
                normal_inflamed_fraction=float(rng.uniform(0.005, 0.05)),
                lymph_clusters_per_mm2=float(1.6 * np.exp(0.8 * zl)),
                cellularity=float(np.clip(0.62 + 0.13 * zc, 0.35, 0.9)),
                has_normal_rna=i not in no_normal,
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
        pen = set(order[-1:].tolist()) | {i for i in range(n_slides) if rng.uniform() < 0.3}
        blank = set(order[-2:-1].tolist()) | {i for i in range(n_slides) if rng.uniform() < 0.3}
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
                    style="tcga" if tcga else "cptac",
                    pen=k in pen,
                    blank=k in blank,
                    seed=slide_seed(cfg.seed, cohort, k),
                )
            )
    return patients, slides
