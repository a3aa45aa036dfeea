"""The synthetic ground truth's files: the generator writes them, evaluation of synthetic cohorts reads them.

Layout under ``<out_dir>/ground_truth/``:
    region_codes.csv                      code, name, description
    masks/<cohort>/<slide_id>.png         uint8 region codes; pixel (i, j) covers level-0 pixels
                                          [j·d, (j+1)·d) × [i·d, (i+1)·d), d = ``mask_downsample``
    lymphocytes/<cohort>/<slide_id>.png   uint16 number of lymphocyte nuclei (aggregates + scattered TILs)
                                          whose centre lies in each mask pixel (same grid as the mask)
    nuclei/<cohort>/<slide_id>.png        uint16 number of tumour nuclei per mask pixel (nuclear density truth)
    overlays/<cohort>/<slide_id>.png      uint8 bit map: 1 fold, 2 air bubble, 4 out of focus, 8 gland lumen,
                                          16 tumour bed (the tumour region a pathologist would outline)
    slides.csv                            per-slide truth (patient, label, tumour fraction, lymphocyte
                                          density, stain matrix, mpp, mask_downsample, twin file, ...)
    patients.csv                          per-patient latent factors and planted morphology knobs
    gene_effects.csv                      per gene: effect kind, latent, coefficient, intercept, noise sd
    planted_log2fc.csv                    patients × genes planted tumour/normal log2 fold change
    rna_samples.csv                       every RNA sample (file id, sample id, library size)
    twins/<cohort>/<slide_id>.tiff        the 20x (0.5 µm/px) twin of each 40x slide
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from histcode.atomic import atomic_path

# Region codes of the ground-truth masks (documented in docs/synthetic_cohort.md).
REGION_CODES: dict[str, int] = {
    "background": 0,
    "stroma": 1,
    "normal_epithelium": 2,
    "tumour": 3,
    "lymphocyte_dense": 4,
    "necrosis": 5,
    "pen_mark": 6,
    "blank": 7,
    "adipose": 8,
}
REGION_DESCRIPTIONS: dict[str, str] = {
    "background": "glass outside the tissue",
    "stroma": "fibrous stroma with sparse elongated fibroblast nuclei (incl. desmoplastic strands in tumour)",
    "normal_epithelium": "normal lobules: glands with lumens lined by small regular epithelial nuclei",
    "tumour": "invasive tumour: sheets of large pleomorphic hyperchromatic nuclei",
    "lymphocyte_dense": "lymphocyte aggregate: dense small dark round nuclei",
    "necrosis": "necrosis: pale granular eosin with nuclear debris and ghost nuclei",
    "pen_mark": "ink of a pen mark (over glass or tissue)",
    "blank": "artefact: tissue tear inside the section, bare glass",
    "adipose": "fat: empty adipocytes (50-150 µm) outlined by thin eosin membranes (normal breast, often at the edge)",
}

# Bits of the ground-truth overlay map: artefacts over the tissue (which stays tissue under them), gland
# lumens inside tumour (region code stays tumour) and the tumour bed (the tumour's envelope: tumour cells
# with the stroma, lumens, necrosis and infiltrates between them, as a pathologist outlines a tumour).
ARTEFACT_BITS: dict[str, int] = {"fold": 1, "bubble": 2, "out_of_focus": 4}
OVERLAY_BITS: dict[str, int] = {**ARTEFACT_BITS, "lumen": 8, "tumour_bed": 16}


def region_codes() -> dict[str, int]:
    """Region name → integer code used in the mask PNGs."""
    return dict(REGION_CODES)


def region_table() -> pd.DataFrame:
    return pd.DataFrame(
        [{"code": c, "name": n, "description": REGION_DESCRIPTIONS[n]} for n, c in REGION_CODES.items()]
    )


def mask_path(gt_dir: Path, cohort: str, slide_id: str) -> Path:
    return Path(gt_dir) / "masks" / cohort / f"{slide_id}.png"


def twin_path(gt_dir: Path, cohort: str, slide_id: str) -> Path:
    return Path(gt_dir) / "twins" / cohort / f"{slide_id}.tiff"


def lymphocyte_map_path(gt_dir: Path, cohort: str, slide_id: str) -> Path:
    return Path(gt_dir) / "lymphocytes" / cohort / f"{slide_id}.png"


def tumour_nuclei_map_path(gt_dir: Path, cohort: str, slide_id: str) -> Path:
    return Path(gt_dir) / "nuclei" / cohort / f"{slide_id}.png"


def overlay_map_path(gt_dir: Path, cohort: str, slide_id: str) -> Path:
    return Path(gt_dir) / "overlays" / cohort / f"{slide_id}.png"


def overlay_bits() -> dict[str, int]:
    """Overlay name (fold, bubble, out_of_focus, lumen, tumour_bed) → bit of the overlay maps."""
    return dict(OVERLAY_BITS)


def _write_png(path: Path, image: np.ndarray, what: str) -> None:
    ok, buf = cv2.imencode(".png", image)
    if not ok:  # pragma: no cover - OpenCV PNG encoding of uint8/uint16 does not fail
        raise RuntimeError(f"could not PNG-encode {what}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())


def write_lymphocyte_map(gt_dir: Path, cohort: str, slide_id: str, counts: np.ndarray) -> None:
    _write_png(lymphocyte_map_path(gt_dir, cohort, slide_id), counts.astype(np.uint16),
               f"the lymphocyte map of {slide_id}")


def write_tumour_nuclei_map(gt_dir: Path, cohort: str, slide_id: str, counts: np.ndarray) -> None:
    _write_png(tumour_nuclei_map_path(gt_dir, cohort, slide_id), counts.astype(np.uint16),
               f"the tumour nuclei map of {slide_id}")


def write_overlay_map(gt_dir: Path, cohort: str, slide_id: str, bits: np.ndarray) -> None:
    _write_png(overlay_map_path(gt_dir, cohort, slide_id), bits.astype(np.uint8), f"the overlay map of {slide_id}")


def read_tumour_nuclei_map(gt_dir: Path, cohort: str, slide_id: str) -> tuple[np.ndarray, float]:
    """(counts, downsample): tumour nuclei per mask pixel and the level-0 pixels per mask pixel."""
    path = _require(tumour_nuclei_map_path(gt_dir, cohort, slide_id))
    _, ds = read_region_mask(gt_dir, cohort, slide_id)
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.int64), ds


def read_overlay_map(gt_dir: Path, cohort: str, slide_id: str) -> np.ndarray:
    """uint8 overlay bits per mask pixel (:func:`overlay_bits`: artefacts, gland lumens, tumour bed)."""
    return cv2.imread(str(_require(overlay_map_path(gt_dir, cohort, slide_id))), cv2.IMREAD_UNCHANGED)


def read_tumour_bed(gt_dir: Path, cohort: str, slide_id: str) -> tuple[np.ndarray, float]:
    """(bed, downsample): boolean tumour bed per mask pixel and the level-0 pixels per mask pixel.

    The bed (overlay bit 16) is the tumour's envelope with its stroma, lumens, necrosis and infiltrates: the
    tumour region as a pathologist outlines it. Score tumour heatmaps against it, not against the mask's
    tumour-cell code: in nests, glands and cords tumour cells fill only 40-60 % of the bed.
    """
    mask, ds = read_region_mask(gt_dir, cohort, slide_id)
    slides = Path(gt_dir) / "slides.csv"
    if "tumour_share_of_bed" not in pd.read_csv(slides, nrows=0).columns:
        raise ValueError(
            f"{slides}: cohort written before the tumour bed was recorded (no tumour_share_of_bed column); "
            "regenerate it with `histcode synth`."
        )
    bits = read_overlay_map(gt_dir, cohort, slide_id)
    if bits is None or bits.shape != mask.shape:
        raise ValueError(
            f"{overlay_map_path(gt_dir, cohort, slide_id)}: overlay map {None if bits is None else bits.shape} "
            f"does not match the region mask {mask.shape}; regenerate the cohort with `histcode synth`."
        )
    return (bits & OVERLAY_BITS["tumour_bed"]) > 0, ds


def read_lymphocyte_map(gt_dir: Path, cohort: str, slide_id: str) -> tuple[np.ndarray, float]:
    """(counts, downsample): lymphocyte nuclei per mask pixel and the level-0 pixels per mask pixel."""
    path = _require(lymphocyte_map_path(gt_dir, cohort, slide_id))
    _, ds = read_region_mask(gt_dir, cohort, slide_id)
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.int64), ds


def write_region_mask(gt_dir: Path, cohort: str, slide_id: str, codes: np.ndarray) -> None:
    _write_png(mask_path(gt_dir, cohort, slide_id), codes.astype(np.uint8), f"the region mask of {slide_id}")


def _require(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: ground-truth file missing; generate the cohort with `histcode synth`."
        )
    return path


def read_slide_truth(gt_dir: Path) -> pd.DataFrame:
    """Per-slide truth table (one row per slide of both cohorts)."""
    path = _require(Path(gt_dir) / "slides.csv")
    st = path.stat()
    return _slide_truth(str(path.resolve()), st.st_mtime_ns, st.st_size).copy()


@functools.lru_cache(maxsize=4)
def _slide_truth(path: str, mtime_ns: int, size: int) -> pd.DataFrame:
    """Parsed once per file version: per-slide readers (masks, beds) look up one row each, 0.03 s per parse."""
    return pd.read_csv(path)


def read_region_mask(gt_dir: Path, cohort: str, slide_id: str) -> tuple[np.ndarray, float]:
    """(mask, downsample): uint8 region codes and the level-0 pixels per mask pixel."""
    path = _require(mask_path(gt_dir, cohort, slide_id))
    truth = read_slide_truth(gt_dir)
    row = truth[(truth["cohort"] == cohort) & (truth["slide_id"] == slide_id)]
    if row.empty:
        raise KeyError(f"{Path(gt_dir) / 'slides.csv'}: no slide {slide_id!r} in cohort {cohort!r}.")
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return mask.astype(np.int64), float(row["mask_downsample"].iloc[0])


def read_gene_effects(gt_dir: Path) -> pd.DataFrame:
    """Per gene: ``gene, gene_id, effect (lymphocyte|nuclear_density|tumour|necrosis|null), latent, coefficient,
    intercept, noise_sd, in_panel``."""
    return pd.read_csv(
        _require(Path(gt_dir) / "gene_effects.csv"), keep_default_na=False, dtype={"latent": str}
    )


def read_patient_truth(gt_dir: Path) -> pd.DataFrame:
    """Per patient latent factors (``z_lymph, z_cell, z_tumour, z_necrosis``), planted morphology knobs and
    the nuisance morphology (site, architecture, nuclear scale, ...)."""
    return pd.read_csv(_require(Path(gt_dir) / "patients.csv"))


def read_planted_log2fc(gt_dir: Path) -> pd.DataFrame:
    """Patients × genes planted log2 fold change (before counting noise), index ``patient_id``."""
    return pd.read_csv(_require(Path(gt_dir) / "planted_log2fc.csv"), index_col="patient_id")


def tile_region_fractions(
    mask: np.ndarray, downsample: float, coords: np.ndarray, patch_size: int
) -> np.ndarray:
    """(N, n_codes) fraction of each region code inside each level-0 tile ``(x, y, patch_size)``.

    Uses the mask cells whose centres fall inside the tile (exact when tiles align with mask cells).
    """
    n_codes = max(REGION_CODES.values()) + 1
    out = np.zeros((len(coords), n_codes))
    for i, (x, y) in enumerate(np.asarray(coords, dtype=np.int64)):
        j0, j1 = int(np.ceil(x / downsample - 0.5)), int(np.ceil((x + patch_size) / downsample - 0.5))
        i0, i1 = int(np.ceil(y / downsample - 0.5)), int(np.ceil((y + patch_size) / downsample - 0.5))
        sub = mask[max(i0, 0) : max(i1, 0), max(j0, 0) : max(j1, 0)]
        if sub.size:
            out[i] = np.bincount(sub.ravel(), minlength=n_codes)[:n_codes] / sub.size
    return out
