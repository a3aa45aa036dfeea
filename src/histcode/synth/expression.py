"""Planted expression effects and simulated bulk RNA-seq counts per sample.

Tumour-vs-normal log2 fold change of gene g in patient p is ``intercept_g + coefficient_g * z_p + noise``
where ``z_p`` is the patient latent factor named by the gene's effect (lymphocyte → ``z_lymph``,
nuclear_density → ``z_cell``, tumour → ``z_tumour``, necrosis → ``z_necrosis``) — the same factors that
drive the tumour slide's morphology — and null genes have coefficient 0. The demo panel carries the
paper's structure: 38 planted genes (the five lymphocyte markers, PTEN and 32 panel genes) over the four
morphology variables with spread effect sizes, every other gene null. A shared patient baseline and
negative-binomial counting noise sit on top, so no gene is a deterministic function of the image."""

from __future__ import annotations

import numpy as np
import pandas as pd

from histcode.synth.genes import LYMPHOCYTE_GENES, PLANTED_PANEL
from histcode.synth.plan import PatientPlan

# effect kind → latent factor that drives both the tumour slide's morphology and the gene.
LATENTS: dict[str, str] = {
    "lymphocyte": "z_lymph",
    "nuclear_density": "z_cell",
    "tumour": "z_tumour",
    "necrosis": "z_necrosis",
}
# The five lymphocyte markers and PTEN keep the links the per-gene heatmap checks were built on:
# kind → (coefficient, intercept, noise sd); log2 units, coefficient per SD of the latent.
MARKER_EFFECTS: dict[str, tuple[float, float, float]] = {
    "lymphocyte": (1.0, 0.4, 0.55),
    "tumour": (-0.5, -1.8, 0.45),
}
# Panel genes: effect strength s spread evenly over [S_MIN, S_MAX] within each kind (in the listed order), so
# the |mean log2 FC| (S_ICPT0 + S_ICPT·s) grows with the slope (s): genes with a larger fold change are better
# predicted, as in the paper (Fig. 7). The noise sd is the same for every planted panel gene.
S_MIN, S_MAX = 0.35, 1.3
S_ICPT0, S_ICPT = 0.3, 1.6
PANEL_NOISE_SD = 0.4
NULL_DE_FRACTION = 0.15  # null genes with a constant (image-independent) tumour shift
PATIENT_SD = 0.35  # patient baseline shared by both samples (cancels in the fold change)
SAMPLE_SD = 0.15  # sample-level biological noise
DISPERSION = 0.03  # negative-binomial dispersion of the counts


def planted_panel_effects() -> dict[str, tuple[str, float, float, float]]:
    """gene → (kind, coefficient, intercept, noise sd) of every planted gene (markers and panel genes)."""
    out: dict[str, tuple[str, float, float, float]] = {}
    for g in LYMPHOCYTE_GENES:
        coef, icpt, sd = MARKER_EFFECTS["lymphocyte"]
        if g == "CD19":  # B cells: a weaker, noisier link than the T-cell CD3 complex
            coef, sd = coef * 0.75, sd * 1.3
        out[g] = ("lymphocyte", coef, icpt, sd)
    out["PTEN"] = ("tumour", *MARKER_EFFECTS["tumour"])
    for kind, genes in PLANTED_PANEL.items():
        strengths = np.linspace(S_MIN, S_MAX, len(genes))
        for (gene, sign), s in zip(genes, strengths, strict=True):
            out[gene] = (kind, float(sign * s), float(sign * (S_ICPT0 + S_ICPT * s)), PANEL_NOISE_SD)
    return out


def gene_effects(genes: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Per gene: ``gene, gene_id, effect, latent, coefficient, intercept, noise_sd, in_panel, is_marker``."""
    planted = planted_panel_effects()
    rows = []
    for name, gid, in_panel, marker in zip(
        genes["gene_name"], genes["gene_id"], genes["in_panel"], genes["is_marker"], strict=True
    ):
        if name in planted:
            kind, coef, icpt, sd = planted[name]
            latent = LATENTS[kind]
        else:
            kind = "null"
            shift = rng.choice([-1, 1]) * rng.normal(1.9, 0.4) if rng.uniform() < NULL_DE_FRACTION else 0.0
            latent, coef, icpt, sd = "", 0.0, float(shift), float(rng.uniform(0.35, 0.7))
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
    z = {k: np.array([getattr(p, k) for p in patients]) for k in LATENTS.values()}
    lat = np.stack([z[k] if k else np.zeros(len(patients)) for k in effects["latent"]], axis=1)
    noise = rng.standard_normal(lat.shape) * effects["noise_sd"].to_numpy()[None, :]
    fc = effects["intercept"].to_numpy()[None, :] + effects["coefficient"].to_numpy()[None, :] * lat + noise
    return pd.DataFrame(
        fc,
        index=pd.Index([p.patient_id for p in patients], name="patient_id"),
        columns=effects["gene"].tolist(),
    )


def simulate_counts(
    log2_expr: np.ndarray,
    length_bp: np.ndarray,
    library_size: float,
    rng: np.random.Generator,
    composition_log2: np.ndarray | None = None,
) -> np.ndarray:
    """Gamma-Poisson read counts: reads ∝ expression × gene length.

    Library shares are taken relative to ``composition_log2`` (default: ``log2_expr`` itself, so reads sum to
    about ``library_size``). Passing the sample's expression *without* its planted fold changes keeps the
    planted genes from moving every other gene through library composition, so null genes stay null.
    """
    weight = np.exp2(log2_expr) * length_bp
    ref = weight if composition_log2 is None else np.exp2(composition_log2) * length_bp
    mu = library_size * weight / ref.sum()
    lam = rng.gamma(1.0 / DISPERSION, mu * DISPERSION)
    return rng.poisson(lam).astype(np.int64)


def sample_log2_expr(
    base: np.ndarray, patient_offset: np.ndarray, log2fc: np.ndarray | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """log2 expression of one sample (gene base + patient baseline (+ fold change if tumour) + noise), and
    the same without the fold change (its library composition reference)."""
    out = base + patient_offset + rng.normal(0, SAMPLE_SD, len(base))
    return (out + log2fc if log2fc is not None else out), out
