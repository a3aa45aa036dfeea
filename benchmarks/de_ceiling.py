"""How well *could* any slide-based model predict the planted genes? The ceiling of a synthetic cohort's DE task.

The generator draws each patient's four latent factors (lymphocytes, cellularity, tumour, necrosis), renders the
slides from them (tumour fraction, lymphocyte density, tumour nuclear density and necrosis share, with noise),
and writes each planted gene's fold change as its driver latent times a coefficient plus noise. So a model that
reads the slides perfectly still sees only the **slide variables**, and a model that knew the latents would still
face the expression noise. This script scores the project's DE methods (cross-validated as train_de does, on 5
seeded patient folds shared by every input) on the cohort's own matched pairs, fed:

* ``slide_variables``: the generator's four true slide variables of each patient's tumour slide (what the
  slides hold: the ceiling of image models);
* ``latents``: the four latent factors themselves (no image can give more);
* ``latent_told_driver``: each gene's own driver latent alone, in a one-variable least-squares fit (the latent
  *and* which one drives the gene: the ceiling of the task).

Planted genes' mean held-out Pearson r, planted genes below -0.1, null genes' mean |r| (its chance level is the
same for every design). Needs only ``de_targets`` outputs and the generator's ``ground_truth`` (no tiles or
features), so fresh seeds cost a minute each:

    benchmarks/de_ceiling.py --root DIR [DIR ...] --out benchmarks/results/de_ceiling.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_de_pairs import score, truth_design

LATENTS = ("z_lymph", "z_cell", "z_tumour", "z_necrosis")


def told_driver(y: np.ndarray, effects: pd.DataFrame, genes: list[str], latents: pd.DataFrame,
                fold: np.ndarray, patients: list[str]) -> pd.DataFrame:
    """Held-out predictions of a one-variable least-squares fit of each planted gene on its own latent."""
    rows = []
    for j, g in enumerate(genes):
        e = effects.loc[g]
        if e["effect"] == "null":
            continue
        z = latents.loc[patients, e["latent"]].to_numpy(np.float64)
        for k in np.unique(fold):
            test = fold == k
            a = np.c_[np.ones((~test).sum()), z[~test]]
            coef = np.linalg.lstsq(a, y[~test, j], rcond=None)[0]
            pred = coef[0] + coef[1] * z[test]
            rows += [{"gene": g, "y_true_log10fc": t, "y_pred_log10fc": p} for t, p in zip(y[test, j], pred,
                                                                                       strict=True)]
    return pd.DataFrame(rows)


def ceiling(root: Path) -> list[dict]:
    """Score every design on the project at ``root`` (its params.yaml, data/expression, ground truth)."""
    from histcode.config import base, load_params, section
    from histcode.expression.config import ExpressionConfig
    from histcode.genes.config import de_config
    from histcode.genes.folds import assign_folds
    from histcode.genes.methods import Representations, cross_validate_method
    from histcode.genes.run import method_settings
    from histcode.genes.targets import read_targets
    from histcode.io.truth import read_gene_effects, read_patient_truth, read_slide_truth
    from histcode.paths import Paths

    params = load_params(root / "params.yaml")
    cfg, bcfg = de_config(params), base(params)
    paths = Paths(root / bcfg.data_dir, root / bcfg.reports_dir)  # the layout of that project, from anywhere
    targets = read_targets(paths.expression(bcfg.train_cohort))
    gt = paths.ground_truth
    effects = read_gene_effects(gt).set_index("gene")
    latents = read_patient_truth(gt).set_index("patient_id")
    slides = read_slide_truth(gt)
    patients = sorted(targets.log10_fc.index)
    tumour = slides[(slides["cohort"] == bcfg.train_cohort) & (slides["label"] == 1)]
    tumour = tumour.sort_values("tissue_mm2", ascending=False).drop_duplicates("patient_id")  # the largest section
    sv = truth_design(slides, dict(zip(tumour["patient_id"], tumour["slide_id"], strict=True)), patients)
    z = latents.loc[patients, list(LATENTS)].to_numpy(np.float64)
    genes = list(targets.genes)
    y = targets.log10_fc.loc[patients, genes].to_numpy(np.float64)
    y_cls = targets.labels.loc[patients, genes].to_numpy(np.float64, na_value=np.nan)
    folds = assign_folds(patients, cfg.n_folds, seed=bcfg.seed)
    fold = np.array([folds[p] for p in patients])
    thr = section(ExpressionConfig, "expression", params).log2_threshold
    settings = method_settings(cfg, bcfg.seed, thr)
    effect = effects["effect"]
    rows = []
    for name, x in (("slide_variables", sv), ("latents", z)):
        for method in ("paper/ridge", "paper/rrr"):
            t0 = time.perf_counter()
            pred, _ = cross_validate_method(method, Representations(patients, x.astype(np.float32), None), y, y_cls,
                                            genes, folds, settings)
            rows.append({"seed": bcfg.seed, "pairs": len(patients), "design": name, "method": method,
                         **score(pred, effect), "seconds": round(time.perf_counter() - t0, 2)})
    pred = told_driver(y, effects, genes, latents, fold, patients)
    planted = pred.groupby("gene").apply(
        lambda d: float(np.corrcoef(d["y_true_log10fc"], d["y_pred_log10fc"])[0, 1]), include_groups=False)
    rows.append({"seed": bcfg.seed, "pairs": len(patients), "design": "latent_told_driver", "method": "ols",
                 "planted_r_mean": float(planted.mean()), "planted_below_-0.1": int((planted < -0.1).sum()),
                 "n_planted": len(planted)})
    for r in rows:
        print(f"seed {r['seed']} ({r['pairs']} pairs) {r['design']:19s} {r['method']:12s} planted r "
              f"{r['planted_r_mean']:+.3f} (< -0.1: {r['planted_below_-0.1']})"
              + (f", null |r| {r['null_abs_r_mean']:.3f}" if "null_abs_r_mean" in r else ""), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", nargs="+", type=Path, required=True, help="project dirs after de_targets")
    ap.add_argument("--label", default="")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/de_ceiling.json"))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    rows = [r for root in args.root for r in ceiling(root.resolve())]
    table = pd.DataFrame.from_records(rows)
    summary = table.groupby(["design", "method"], sort=False)["planted_r_mean"].agg(["mean", "min", "max", "count"])
    print(summary.round(3).to_string())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out.with_suffix(".csv"), index=False)
    args.out.write_text(json.dumps({"label": args.label, "rows": rows,
                                    "summary": summary.round(4).reset_index().to_dict("records")}, indent=1) + "\n")


if __name__ == "__main__":
    main()
