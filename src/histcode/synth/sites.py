"""Site profiles: what a cohort's hospital does to its slides (stain, scanner, artefacts) and who its
patients are (case mix and morphology ranges).

A cohort is one site. Its profile sets the ranges that every patient and slide draws from (domain
randomisation): a model must learn the biology that is the same everywhere (large pleomorphic crowded
nuclei in tumour, infiltrates, necrosis) and ignore what varies (stain, scanner, nuclear size, architecture,
fat, fibre texture, artefacts). The external site is shifted in stain, scanner and case mix, as CPTAC
differs from TCGA. The planted morphology → expression links (histcode.synth.expression) are identical at
every site; a site only shifts the distribution of the latent factors (case mix).

Profiles are chosen by name in params (``synth.train_profile``, ``synth.external_profile``); their values
are documented in docs/synthetic_cohort.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Range = tuple[float, float]
ARCHITECTURES = ("solid", "nests", "glands", "cords", "single_files")


@dataclass(frozen=True)
class SiteProfile:
    """Ranges one site's patients and slides draw from (uniform unless noted)."""

    name: str
    # --- stain (Beer-Lambert): reference OD vectors, per-slide spreads (see histcode.synth.stain)
    h_ref: tuple[float, float, float]
    e_ref: tuple[float, float, float]
    stain_vector_sd: tuple[float, float]  # Gaussian jitter of the H and E vectors before renormalising
    stain_amount_sd: float  # lognormal sd of H and E amounts (on top of section thickness)
    thickness_sd: float  # lognormal sd of section thickness (scales both stains)
    eosin_bias: float  # site mean log E/H amount ratio (pinker > 0, bluer < 0)
    # --- scanner
    white_point: tuple[float, float, float]  # mean illumination I0 (RGB)
    white_point_sd: float  # per-channel tint sd (grey levels)
    blur_um: Range  # point-spread sigma
    jpeg_quality: tuple[int, int]  # per slide, capped by synth.jpeg_quality at the training site
    tile_px: int
    scanner_id: str
    # --- case mix: mean shift of the standard-normal latents (z_lymph, z_cell, z_tumour, z_necrosis)
    z_shift: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    # --- morphology, per patient (nuisance: independent of the latents)
    nuclear_scale: Range = (0.85, 1.2)  # tumour nucleus radius multiplier
    pleomorphism: Range = (0.06, 0.24)  # boundary irregularity (harmonic amplitude) of tumour nuclei
    architecture: dict[str, float] = field(
        default_factory=lambda: {"solid": 0.3, "nests": 0.3, "glands": 0.2, "cords": 0.12, "single_files": 0.08}
    )
    fibre_amp: Range = (0.6, 1.5)  # collagen fibre contrast multiplier
    fibre_wave: Range = (3.0, 10.0)  # correlation length of fibre orientation (grid cells): wavy ↔ straight
    fibroblast_keep: Range = (0.25, 0.7)  # share of the fibroblast point process kept in stroma
    til_per_mm2: Range = (100.0, 350.0)  # scattered TILs in tumour (stroma 30 % of it)
    infiltrate_sigma_um: Range = (70.0, 180.0)  # correlation length of dense infiltrates (clustering)
    aggregate_radius_um: Range = (15.0, 55.0)
    adipose_normal: Range = (0.0, 0.7)  # fat share of a normal slide's tissue (overridden at the training site)
    adipose_tumour: Range = (0.0, 0.25)  # fat share of a tumour slide's tissue
    # --- artefacts, per slide probability
    p_pen: float = 0.3
    p_tear: float = 0.3
    p_fold: float = 0.25
    p_bubble: float = 0.15
    p_out_of_focus: float = 0.25


SITES: dict[str, SiteProfile] = {
    # The training site: TCGA-like (many hospitals, moderate spread around Macenko's TCGA vectors).
    "tcga": SiteProfile(
        name="tcga",
        h_ref=(0.5626, 0.7201, 0.4062),
        e_ref=(0.2159, 0.8012, 0.5581),
        stain_vector_sd=(0.07, 0.09),
        stain_amount_sd=0.42,
        thickness_sd=0.3,
        eosin_bias=0.0,
        white_point=(242.0, 240.0, 244.0),
        white_point_sd=4.0,
        blur_um=(0.24, 0.5),
        jpeg_quality=(70, 90),
        tile_px=256,
        scanner_id="SS1302",
    ),
    # The shifted external site: CPTAC-like. Bluer haematoxylin and more magenta eosin, brighter and cooler
    # white point, softer optics, stronger JPEG, 512 px tiles; case mix with denser, more necrotic,
    # less inflamed tumours; more solid growth, larger nuclei, more fat.
    "cptac": SiteProfile(
        name="cptac",
        h_ref=(0.50, 0.74, 0.46),
        e_ref=(0.13, 0.86, 0.49),
        stain_vector_sd=(0.06, 0.08),
        stain_amount_sd=0.35,
        thickness_sd=0.25,
        eosin_bias=0.15,
        white_point=(248.0, 246.0, 252.0),
        white_point_sd=3.0,
        blur_um=(0.35, 0.7),
        jpeg_quality=(62, 82),
        tile_px=512,
        scanner_id="SS7391",
        z_shift=(-0.3, 0.5, 0.2, 0.5),
        nuclear_scale=(0.95, 1.3),
        pleomorphism=(0.1, 0.28),
        architecture={"solid": 0.45, "nests": 0.25, "glands": 0.1, "cords": 0.12, "single_files": 0.08},
        fibre_amp=(0.5, 1.2),
        til_per_mm2=(80.0, 300.0),
        adipose_normal=(0.2, 0.8),
        adipose_tumour=(0.05, 0.35),
        p_fold=0.3,
        p_bubble=0.2,
        p_out_of_focus=0.35,
    ),
    # A third site for transfer checks on unseen ranges: yellowish older scanner, dark and pink stain,
    # heavy JPEG; case mix with more cords and single files, smaller nuclei, fat-rich tissue. The hardest of
    # the three (hand-made texture features transfer at 0.75-0.8 AUC here vs 0.92 to cptac).
    "site_c": SiteProfile(
        name="site_c",
        h_ref=(0.60, 0.72, 0.35),
        e_ref=(0.25, 0.78, 0.57),
        stain_vector_sd=(0.07, 0.09),
        stain_amount_sd=0.4,
        thickness_sd=0.35,
        eosin_bias=0.25,
        white_point=(246.0, 238.0, 222.0),
        white_point_sd=5.0,
        blur_um=(0.3, 0.65),
        jpeg_quality=(55, 75),
        tile_px=256,
        scanner_id="SS2047",
        z_shift=(0.3, -0.3, -0.2, -0.3),
        nuclear_scale=(0.8, 1.1),
        pleomorphism=(0.06, 0.2),
        architecture={"solid": 0.2, "nests": 0.25, "glands": 0.2, "cords": 0.2, "single_files": 0.15},
        fibre_amp=(0.8, 1.8),
        adipose_normal=(0.3, 0.85),
        adipose_tumour=(0.05, 0.4),
        p_fold=0.35,
        p_bubble=0.25,
        p_out_of_focus=0.3,
    ),
}


def site(name: str) -> SiteProfile:
    """The profile called ``name`` (a clear error lists the known ones)."""
    if name not in SITES:
        raise KeyError(f"unknown synth site profile {name!r}; known: {sorted(SITES)}")
    return SITES[name]
