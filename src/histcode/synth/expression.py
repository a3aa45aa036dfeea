"""Planted expression effects and simulated bulk RNA-seq counts per sample.

Tumour-vs-normal log2 fold change of gene g in patient p is ``intercept_g + coefficient_g * z_p + noise``
where ``z_p`` is the patient latent factor named by the gene's effect (lymphocyte → ``z_lymph``,
cellularity → ``z_cell``, tumour → ``z_tumour``) — the same factors that drive the tumour slide's
morphology — and null genes have coefficient 0. A shared patient baseline and negative-binomial
counting noise sit on top, so no gene is a deterministic function of the image.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from histcode.synth.genes import LYMPHOCYTE_GENES, PROLIFERATION_CANDIDATES
from histcode.synth.plan import PatientPlan

# effect kind → (latent, coefficient, intercept, noise sd); log2 units, coefficient per SD of the latent.
EFFECTS: dict[str, tuple[str, float, float, float]] = {
    "lymphocyte": ("z_lymph", 1.0, 0.4, 0.55),
    "cellularity": ("z_cell", 0.7, 0.9, 0.55),
    "tumour": ("z_tumour", -0.5, -1.8, 0.45),
}
N_PROLIFERATION = 3
NULL_DE_FRACTION = 0.15  # null genes with a constant (image-independent) tumour shift
PATIENT_SD = 0.35  # patient baseline shared by both samples (cancels in the fold change)
SAMPLE_SD = 0.15  # sample-level biological noise
DISPERSION = 0.03  # negative-binomial dispersion of the counts


def gene_effects(genes: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Per gene: ``gene, gene_id, effect, latent, coefficient, intercept, noise_sd, in_panel, is_marker``."""
    panel = set(genes.loc[genes["in_panel"], "gene_name"])
    prolif = [g for g in PROLIFERATION_CANDIDATES if g in panel][:N_PROLIFERATION]
    rows = []
    for name, gid, in_panel, marker in zip(
        genes["gene_name"], genes["gene_id"], genes["in_panel"], genes["is_marker"], strict=True
    ):
        if name in LYMPHOCYTE_GENES:
            kind = "lymphocyte"
        elif name in prolif:
            kind = "cellularity"
        elif name == "PTEN":
            kind = "tumour"
        else:
            kind = "null"
        if kind == "null":
            shift = rng.choice([-1, 1]) * rng.normal(1.9, 0.4) if rng.uniform() < NULL_DE_FRACTION else 0.0
            latent, coef, icpt, sd = "", 0.0, float(shift), float(rng.uniform(0.35, 0.7))
        else:
            latent, coef, icpt, sd = EFFECTS[kind]
            if name == "CD19":  # B cells: a weaker, noisier link than the T-cell CD3 complex
                coef, sd = coef * 0.75, sd * 1.3
        rows.append(
            {
                "gene": name,
                "gene_id": gid,
                "effect": kind,
                "latent": latent,
                "coefficient": coef,
                "intercept": icpt,
                "noise_sd": sd,
                "in_panel": bool(in_panel),
                "is_marker": bool(marker),
            }
        )
    return pd.DataFrame(rows)


def planted_log2fc(
    patients: list[PatientPlan], effects: pd.DataFrame, rng: np.random.Generator
) -> pd.DataFrame:
    """Patients × genes planted tumour/normal log2 fold change (intercept + coefficient·z + noise)."""
    z = {k: np.array([getattr(p, k) for p in patients]) for k in ("z_lymph", "z_cell", "z_tumour")}
    lat = np.stack([z[k] if k else np.zeros(len(patients)) for k in effects["latent"]], axis=1)
    noise = rng.standard_normal(lat.shape) * effects["noise_sd"].to_numpy()[None, :]
    fc = effects["intercept"].to_numpy()[None, :] + effects["coefficient"].to_numpy()[None, :] * lat + noise
    return pd.DataFrame(
        fc,
        index=pd.Index([p.patient_id for p in patients], name="patient_id"),
        columns=effects["gene"].tolist(),
    )


def simulate_counts(
    log2_expr: np.ndarray, length_bp: np.ndarray, library_size: float, rng: np.random.Generator
) -> np.ndarray:
    """Gamma-Poisson read counts: reads ∝ expression × gene length, summing to about ``library_size``."""
    weight = np.exp2(log2_expr) * length_bp
    mu = library_size * weight / weight.sum()
    lam = rng.gamma(1.0 / DISPERSION, mu * DISPERSION)
    return rng.poisson(lam).astype(np.int64)


def sample_log2_expr(
    base: np.ndarray, patient_offset: np.ndarray, log2fc: np.ndarray | None, rng: np.random.Generator
) -> np.ndarray:
    """log2 expression of one sample: gene base + patient baseline (+ fold change if tumour) + noise."""
    out = base + patient_offset + rng.normal(0, SAMPLE_SD, len(base))
    return out + log2fc if log2fc is not None else out
