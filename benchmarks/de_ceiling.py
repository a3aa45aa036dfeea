"""How much of the planted DE signal a perfect image reader could recover at small matched-pair counts.

Oracle regressions for the generator's planted genes, cross-validated exactly as train_de/evaluate_de do
(same folds, nested-CV linear models, per-gene held-out Pearson, random baseline), with the slide
representation replaced by what an ideal reader of the tumour slide would see:

* ``z``: the four latent factors themselves (expression noise vs effect size only);
* ``knobs``: the morphology the renderer was asked for (tumour fraction, log infiltrate share, cellularity,
  log necrosis share): adds the latent → morphology mapping (clipping, log/exp);
* ``maps`` (``--render``): the four variables measured from the rendered slides' truth maps (tumour share of
  tissue, log lymphocyte density, tumour nuclear density, log necrosis share): adds how faithfully a rendered
  slide of this size shows its latents.

Also ``own_z_population_r``: each planted gene's correlation with its own latent over ``--population``
RNA-only patients (the infinite-n ceiling of a single-variable reader).

    python benchmarks/de_ceiling.py --seeds 2718 --n-patients 16 --n-without-normal 3 [--render] --out x.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from histcode.evaluation.de_methods import methods_table
from histcode.expression.targets import fold_change
from histcode.genes.folds import assign_folds
from histcode.genes.methods import MethodSettings, Representations, cross_validate_method
from histcode.synth import SynthConfig, generate, truth
from histcode.synth.expression import LATENTS
from histcode.synth.plan import plan_cohorts
from histcode.synth.rnaseq import simulate_rnaseq

KINDS = list(LATENTS)


def targets(rna, pseudo_count: float = 1.0) -> pd.DataFrame:
    """Matched patients × (panel + marker) genes log10(fc + 1) on FPKM-UQ, as the expression stage builds it."""
    keep = (rna.genes["in_panel"] | rna.genes["is_marker"]).to_numpy()
    names = rna.genes["gene_name"].to_numpy()[keep]
    values: dict[tuple[str, str], np.ndarray] = {}
    for meta, table in rna.samples:
        v = table["fpkm_uq_unstranded"].to_numpy(np.float64)[4:]
        values[(str(meta["Case ID"]), str(meta["Sample Type"]))] = v[keep]
    cases = sorted({c for c, t in values if t == "Solid Tissue Normal"})
    fc = np.stack([fold_change(values[(c, "Primary Tumor")], values[(c, "Solid Tissue Normal")], pseudo_count)
                   for c in cases])
    return pd.DataFrame(np.log10(fc + 1.0), index=cases, columns=names)


def measured(gt: Path) -> pd.DataFrame:
    """Per patient, from the tumour slide's truth maps: the four planted morphology variables."""
    rc = truth.region_codes()
    rows = []
    for r in truth.read_slide_truth(gt).itertuples():
        if r.cohort != "tcga_synth" or r.label != 1:
            continue
        mask, ds = truth.read_region_mask(gt, r.cohort, r.slide_id)
        lymph, _ = truth.read_lymphocyte_map(gt, r.cohort, r.slide_id)
        nuclei, _ = truth.read_tumour_nuclei_map(gt, r.cohort, r.slide_id)
        lumen = (truth.read_overlay_map(gt, r.cohort, r.slide_id) & truth.overlay_bits()["lumen"]) > 0
        cell_mm2 = (ds * r.mpp / 1000.0) ** 2
        tissue = np.isin(mask, [1, 2, 3, 4, 5, 8])
        tum = mask == rc["tumour"]
        zone = tum | (mask == rc["lymphocyte_dense"])
        epi = tum & ~lumen
        rows.append({"patient_id": r.patient_id, "tumour": tum.sum() / tissue.sum(),
                     "lymphocyte": np.log(lymph[zone].sum() / (zone.sum() * cell_mm2)),
                     "nuclear_density": nuclei[epi].sum() / max(epi.sum() * cell_mm2, 1e-9),
                     "necrosis": np.log((mask == rc["necrosis"]).sum() / tissue.sum() + 1e-3)})
    return pd.DataFrame(rows).set_index("patient_id")


def score(x: pd.DataFrame, y: pd.DataFrame, effects: pd.DataFrame, seed: int, models: list[str],
          n_folds: int) -> tuple[list[dict], pd.DataFrame]:
    """Held-out per-method summary (methods_table) of linear models on design ``x`` (patients × F)."""
    ids = list(y.index)
    folds = assign_folds(ids, n_folds, seed)
    reps = Representations(ids, x.loc[ids].to_numpy(np.float64), None)
    s = MethodSettings(lr=1e-3, weight_decay=1e-3, epochs=200, inner_folds=4, log2_threshold=1.5, seed=seed)
    yv = y.to_numpy(np.float64)
    frames = [cross_validate_method(f"paper/{m}", reps, yv, (np.abs(np.log2(10 ** yv - 1)) > 1.5).astype(float),
                                    list(y.columns), folds, s)[0] for m in models]
    pred = pd.concat(frames, ignore_index=True)
    table = methods_table(pred, n_random=100, seed=seed, alternative="greater", fdr=0.05, effects=effects)
    per_gene = []
    for m, p in pred.groupby("method"):
        r = p.groupby("gene")[["y_true_log10fc", "y_pred_log10fc"]].apply(
            lambda d: np.corrcoef(d.iloc[:, 0], d.iloc[:, 1])[0, 1])
        per_gene.append(r.rename(m))
    return table.to_dict("records"), pd.concat(per_gene, axis=1)


def own_z_heldout(y: pd.DataFrame, z: pd.DataFrame, effects: pd.DataFrame, seed: int, n_folds: int) -> pd.Series:
    """Per planted gene: held-out r of a one-variable OLS on the gene's own latent (the driver is known)."""
    ids = list(y.index)
    folds = assign_folds(ids, n_folds, seed)
    f = np.array([folds[p] for p in ids])
    out = {}
    for g, lat in effects.set_index("gene")["latent"].items():
        if not lat or g not in y.columns:
            continue
        xv, yv, pred = z.loc[ids, lat].to_numpy(), y[g].to_numpy(), np.empty(len(ids))
        for k in np.unique(f):
            b, a = np.polyfit(xv[f != k], yv[f != k], 1)
            pred[f == k] = a + b * xv[f == k]
        out[g] = np.corrcoef(pred, yv)[0, 1]
    return pd.Series(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", required=True)
    ap.add_argument("--n-patients", type=int, default=16)
    ap.add_argument("--n-without-normal", type=int, default=3)
    ap.add_argument("--n-folds", type=int, default=5)
    ap.add_argument("--models", nargs="+", default=["ridge", "rrr"])
    ap.add_argument("--render", action="store_true", help="render tiny slides and score the truth-map variables")
    ap.add_argument("--slide-px", type=int, default=1536)
    ap.add_argument("--population", type=int, default=2000)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    results = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        cfg = SynthConfig.tiny(seed=seed, n_patients=args.n_patients, n_without_normal=args.n_without_normal,
                               n_patients_external=1, n_genes_background=40, n_svs=0, n_40x=0,
                               slide_width=args.slide_px, slide_height=args.slide_px, workers=1)
        patients, _ = plan_cohorts(cfg)
        rna = simulate_rnaseq(seed, cfg.n_genes_background, patients)
        y = targets(rna)
        eff = rna.effects
        pl = pd.DataFrame([p.__dict__ for p in patients if p.cohort == "tcga_synth"]).set_index("patient_id")
        z = pl[list(LATENTS.values())]
        knobs = pd.DataFrame({"tumour": pl["tumour_fraction"], "lymphocyte": np.log(pl["inflamed_fraction"]),
                              "nuclear_density": pl["cellularity"], "necrosis": np.log(pl["necrosis_fraction"])})
        designs = {"z": z, "knobs": knobs}
        if args.render:
            with tempfile.TemporaryDirectory() as tmp:
                generate(cfg, Path(tmp))
                designs["maps"] = measured(Path(tmp) / "ground_truth")
        rec: dict = {"seed": seed, "n_matched": len(y), "n_genes": y.shape[1],
                     "n_planted": int((eff.set_index("gene").loc[y.columns, "effect"] != "null").sum())}
        planted = eff[eff["effect"] != "null"].set_index("gene")
        if "maps" in designs:
            m = designs["maps"].loc[z.index]
            rec["map_vs_latent_r"] = {k: float(np.corrcoef(m[k], z[LATENTS[k]])[0, 1]) for k in KINDS}
        for name, x in designs.items():
            table, per_gene = score(x, y, eff, seed, args.models, args.n_folds)
            rec[name] = table
            strongest = planted.groupby("effect")["coefficient"].apply(lambda c: c.abs().idxmax())
            rec[f"{name}_strongest_r"] = {k: float(per_gene.loc[g].max()) for k, g in strongest.items()}
        own = own_z_heldout(y, z, eff, seed, args.n_folds)
        rec["own_z_heldout_mean"] = float(own.mean())
        rec["own_z_heldout_by_kind"] = own.groupby(planted.loc[own.index, "effect"]).mean().round(3).to_dict()
        # population ceiling of a one-variable reader (RNA only, many patients)
        big = SynthConfig.tiny(seed=seed + 100_000, n_patients=args.population, n_without_normal=0,
                               n_patients_external=1, n_genes_background=40)
        bp, _ = plan_cohorts(big)
        brna = simulate_rnaseq(big.seed, big.n_genes_background, bp)
        by = targets(brna)
        bz = pd.DataFrame([p.__dict__ for p in bp if p.cohort == "tcga_synth"]).set_index("patient_id").loc[by.index]
        bpl = brna.effects[brna.effects["effect"] != "null"].set_index("gene")
        pop = pd.Series({g: abs(np.corrcoef(by[g], bz[bpl.loc[g, "latent"]])[0, 1]) for g in bpl.index})
        rec["own_z_population_r_mean"] = float(pop.mean())
        rec["own_z_population_r_by_kind"] = pop.groupby(bpl["effect"]).agg(["min", "mean", "max"]).round(3).to_dict()
        rec["seconds"] = round(time.perf_counter() - t0, 1)
        results.append(rec)
        print(json.dumps(rec, indent=1, default=float), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
