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
  *and* which one drives the gene: the ceiling of the task);
* ``slide_variables_told_driver``: the same one-variable fit on the gene's driver *slide variable* (a perfect
  slide reader that is also told which variable drives each gene: no image model can know more);
* ``readout_rho=R`` (``--readout R ...``): the four slide variables read with error, each replaced by
  ``R·z + sqrt(1 - R²)·e`` (z the standardised variable, e seeded standard normal noise, ``--draws`` draws):
  the ceiling of an image model whose readout of every slide variable correlates R with the truth;
* ``readout_each=R1/R2/R3/R4`` (``--readout-each R1,R2,R3,R4 ...``): the same with one R per variable (tumour
  fraction, lymphocyte density, tumour nuclear density, necrosis), e.g. the readouts benchmarks/de_readout.py
  measures for the project's own DE inputs.

With ``--null-shuffles B`` the reduced-rank ridge of every design is also tested over all genes as evaluate_de
tests the registered model: its mean held-out r against B cross-validations on the patients' target rows
shuffled (``cv_null_overall_p``; the smallest attainable p is 1 / (B + 1)).

Planted genes' mean held-out Pearson r, planted genes below -0.1, null genes' mean |r| (its chance level is the
same for every design). The one-variable fits read a gene's ``effect`` from ``gene_effects.csv``. Needs only
``de_targets`` outputs and the generator's ``ground_truth`` (no tiles or features), so fresh seeds cost a minute
each:

    benchmarks/de_ceiling.py --root DIR [DIR ...] --out benchmarks/results/de_ceiling.json

A cohort at seed S and 16 patients (13 matched pairs, 3 without a normal): a folder with a copy of params.yaml where
``base.seed`` and ``synth.seed`` are S and ``synth.n_patients`` is 16 (``synth.n_patients_external`` may be 2), then
``histcode synth``, ``histcode ingest --cohort tcga_synth`` and ``histcode de-targets`` run in it (~30 s).

It writes the table (.json, .csv) and, with ``--readout``, a figure (.png): planted genes' mean r against the
readout correlation R, and the share of cohorts that meet issue 14's two planted-gene conditions. ``--replot JSON``
redraws a figure.
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
from bench_de_pairs import gene_r, score, truth_design

LATENTS = ("z_lymph", "z_cell", "z_tumour", "z_necrosis")
# effect kind → its column in ``truth_design`` (tumour fraction, log lymphocyte density, tumour nuclear density,
# log necrosis share): the slide variable the generator renders from the gene's driver latent.
SLIDE_VARIABLE = {"tumour": 0, "lymphocyte": 1, "nuclear_density": 2, "necrosis": 3}
MODEL_NAMES = {"paper/ridge": "ridge", "paper/rrr": "reduced-rank ridge"}  # the models fit on a given design


def told_driver(y: np.ndarray, effects: pd.DataFrame, genes: list[str], driver: dict[str, np.ndarray],
                fold: np.ndarray) -> pd.DataFrame:
    """Held-out predictions of a one-variable least-squares fit of each planted gene on its driver's column
    (``driver``: effect kind → that variable per patient)."""
    rows = []
    for j, g in enumerate(genes):
        e = effects.loc[g]
        if e["effect"] == "null":
            continue
        z = driver[e["effect"]]
        for k in np.unique(fold):
            test = fold == k
            a = np.c_[np.ones((~test).sum()), z[~test]]
            coef = np.linalg.lstsq(a, y[~test, j], rcond=None)[0]
            pred = coef[0] + coef[1] * z[test]
            rows += [{"gene": g, "y_true_log10fc": t, "y_pred_log10fc": p} for t, p in zip(y[test, j], pred,
                                                                                       strict=True)]
    return pd.DataFrame(rows)


def with_readout_error(x: np.ndarray, rho: float | np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each column standardised and read with correlation ``rho`` (one, or one per column) to itself:
    ``rho·z + sqrt(1 - rho²)·e``."""
    z = (x - x.mean(0)) / x.std(0)
    return rho * z + np.sqrt(1.0 - rho**2) * rng.standard_normal(z.shape)


def planted_scores(pred: pd.DataFrame) -> dict[str, float]:
    """Mean held-out r and the count below -0.1 of predictions that cover the planted genes only."""
    planted = gene_r(pred)
    return {"planted_r_mean": float(planted.mean()), "planted_below_-0.1": int((planted < -0.1).sum()),
            "n_planted": len(planted)}


def overall_against_shuffles(method: str, reps, y: np.ndarray, y_cls: np.ndarray, genes: list[str], folds,
                             settings, shuffles: int, seed: int) -> dict[str, float]:
    """evaluate_de's overall CV-null test of one design: its pooled r per gene vs ``shuffles`` re-runs of the
    whole cross-validation on the patients' target rows permuted (every gene at once)."""
    from histcode.genes.methods import cross_validate_method
    from histcode.metrics.de_stats import columnwise_pearson, matrices, overall_null_test

    def pooled(yy: np.ndarray, yc: np.ndarray) -> np.ndarray:
        pred, _ = cross_validate_method(method, reps, yy, yc, genes, folds, settings)
        truth, guess, _ = matrices(pred)
        return columnwise_pearson(truth[genes].to_numpy(np.float64), guess[genes].to_numpy(np.float64))

    rng = np.random.default_rng([seed, 4343])
    null = np.stack([pooled(y[perm], y_cls[perm]) for perm in (rng.permutation(len(y)) for _ in range(shuffles))])
    out = overall_null_test(pooled(y, y_cls), null)
    return {k: out[k] for k in ("cv_null_overall_p", "cv_null_overall_z", "cv_null_overall_mean_r",
                                "cv_null_overall_null_mean_r")}


def ceiling(root: Path, readout: tuple[float, ...] = (), draws: int = 3, shuffles: int = 0,
            readout_each: tuple[tuple[float, ...], ...] = ()) -> list[dict]:
    """Score every design on the project at ``root`` (its params.yaml, data/expression, ground truth)."""
    from histcode.config import base, load_params, section
    from histcode.expression.config import ExpressionConfig
    from histcode.genes.config import de_config
    from histcode.genes.folds import assign_folds
    from histcode.genes.methods import Representations, cross_validate_method
    from histcode.genes.run import method_settings
    from histcode.genes.targets import read_targets
    from histcode.io.truth import read_gene_effects, read_patient_truth, read_slide_truth
    from histcode.metrics.de_stats import random_baseline
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
    null = (effect.reindex(genes) == "null").to_numpy()
    # the issue's chance level: null genes' mean |r| under evaluate_de's random predictions (100 draws)
    chance = float(np.nanmean(np.abs(random_baseline(y, fold, 100, bcfg.seed).pearson[:, null])))
    rows = []
    designs: list[tuple[str, np.ndarray, int]] = [("slide_variables", sv, 0), ("latents", z, 0)]
    rng = np.random.default_rng([bcfg.seed, 43])  # the readout errors: seeded, the same for both methods
    designs += [(f"readout_rho={rho:g}", with_readout_error(sv, rho, rng), d) for rho in readout for d in range(draws)]
    designs += [("readout_each=" + "/".join(f"{r:g}" for r in each), with_readout_error(sv, np.array(each), rng), d)
                for each in readout_each for d in range(draws)]
    for name, x, draw in designs:
        for method in ("paper/ridge", "paper/rrr"):
            t0 = time.perf_counter()
            reps = Representations(patients, x.astype(np.float32), None)
            pred, _ = cross_validate_method(method, reps, y, y_cls, genes, folds, settings)
            row = {"seed": bcfg.seed, "pairs": len(patients), "design": name, "draw": draw, "method": method,
                   **score(pred, effect), "chance_abs_r": chance, "seconds": round(time.perf_counter() - t0, 2)}
            if shuffles and method == "paper/rrr" and draw == 0 and name != "latents":
                row |= overall_against_shuffles(method, reps, y, y_cls, genes, folds, settings, shuffles, bcfg.seed)
            rows.append(row)
    planted = effects[effects["effect"] != "null"]
    kinds = {k: latents.loc[patients, lat].to_numpy(np.float64) for k, lat in zip(planted["effect"], planted["latent"],
                                                                                  strict=True)}
    for name, driver in (("latent_told_driver", kinds),
                         ("slide_variables_told_driver", {k: sv[:, c] for k, c in SLIDE_VARIABLE.items()})):
        rows.append({"seed": bcfg.seed, "pairs": len(patients), "design": name, "draw": 0, "method": "ols",
                     **planted_scores(told_driver(y, effects, genes, driver, fold))})
    for r in rows:
        print(f"seed {r['seed']} ({r['pairs']} pairs) {r['design']:19s} {r['method']:12s} planted r "
              f"{r['planted_r_mean']:+.3f} (< -0.1: {r['planted_below_-0.1']})"
              + (f", null |r| {r['null_abs_r_mean']:.3f} (chance {r['chance_abs_r']:.3f})"
                 if "null_abs_r_mean" in r else "")
              + (f", all genes vs shuffles p {r['cv_null_overall_p']:.4f} (z {r['cv_null_overall_z']:.2f})"
                 if "cv_null_overall_p" in r else ""), flush=True)
    return rows


def goal_columns(table: pd.DataFrame) -> pd.DataFrame:
    """Issue 14's two planted-gene conditions at once (``planted_goal``: mean r >= 0.5 and no planted gene below
    -0.1) and null genes' mean |r| over their chance level (``null_over_chance``; its third condition asks <= 0.05,
    but random predictions are not cross-validated, so even a perfect reader's null genes exceed it at 13 pairs)."""
    table = table.copy()
    table["null_over_chance"] = table.get("null_abs_r_mean", np.nan) - table.get("chance_abs_r", np.nan)
    table["planted_goal"] = (table["planted_r_mean"] >= 0.5) & (table["planted_below_-0.1"] == 0)
    return table


def readout_of(design: str) -> float:
    """The readout correlation a design stands for: 1 for the true slide variables, R for ``readout_rho=R``."""
    return float(design.split("=")[1]) if design.startswith("readout_rho=") else 1.0


def plot(table: pd.DataFrame, path: Path, label: str) -> None:
    """Planted mean r (mean and range over cohorts and readout draws) and the share of them meeting the goal,
    against the readout R."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = table[table["design"].str.startswith("readout_rho=") | (table["design"] == "slide_variables")].copy()
    t["R"] = t["design"].map(readout_of)  # one row per cohort, readout draw and model
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10.5, 4.4), gridspec_kw={"width_ratios": [1.6, 1]})
    for (method, g), colour in zip(t.groupby("method"), ("tab:blue", "tab:orange"), strict=False):
        s = g.groupby("R")["planted_r_mean"].agg(["mean", "min", "max"])
        ax.plot(s.index, s["mean"], "-o", color=colour, label=f"slide variables read at R: {MODEL_NAMES[method]}")
        ax.fill_between(s.index, s["min"], s["max"], color=colour, alpha=0.15)
        ax2.plot(s.index, 100 * g.groupby("R")["planted_goal"].mean(), "-o", color=colour, label=MODEL_NAMES[method])
    for design, marker, x in (("slide_variables_told_driver", "*", 0.99), ("latent_told_driver", "D", 1.01)):
        d = table[table["design"] == design]
        if len(d):
            ax.errorbar([x], [d["planted_r_mean"].mean()],
                        yerr=[[d["planted_r_mean"].mean() - d["planted_r_mean"].min()],
                              [d["planted_r_mean"].max() - d["planted_r_mean"].mean()]],
                        fmt=marker, color="tab:red" if marker == "*" else "tab:purple", ms=9, capsize=3,
                        label=f"{design.replace('_', ' ')} (one-variable fit)")
            ax2.plot([x], [100 * d["planted_goal"].mean()], marker, color="tab:red" if marker == "*"
                     else "tab:purple", ms=9, label=design.replace("_", " "))
    ax.axhline(0.5, color="grey", ls=":", lw=1, label="issue 14 goal: planted mean r 0.5")
    ax.axhline(0.0, color="black", lw=0.6)
    ax.set_xlabel("readout correlation R of every slide variable with its truth (1 = a perfect slide reader)")
    ax.set_ylabel("planted genes: mean held-out Pearson r")
    ax.legend(fontsize=7, loc="upper left")
    ax2.set_xlabel("readout correlation R")
    ax2.set_ylabel("cohorts × draws meeting the goal (%)\n(mean r ≥ 0.5 and no planted gene < −0.1)")
    ax2.set_ylim(-2, 102)
    ax2.legend(fontsize=7, loc="upper left")
    n = table["seed"].nunique()
    fig.suptitle(f"The DE ceiling of slide readers{': ' + label if label else ''}\n({n} cohort{'s' * (n > 1)}, "
                 f"{int(table['pairs'].iloc[0])} matched pairs; line: mean over cohorts and readout-error draws, "
                 "band: their range)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", nargs="+", type=Path, help="project dirs after de_targets")
    ap.add_argument("--replot", type=Path, help="redraw the figure of a written JSON (its .png beside it) and stop")
    ap.add_argument("--label", default="")
    ap.add_argument("--readout", nargs="*", type=float, default=[],
                    help="readout correlations R to score the slide variables read with error at")
    ap.add_argument("--readout-each", nargs="*", default=[], metavar="R1,R2,R3,R4",
                    help="one readout correlation per slide variable (tumour fraction, lymphocytes, nuclear density, "
                         "necrosis), e.g. 0.42,0.5,0,0")
    ap.add_argument("--draws", type=int, default=3, help="readout-error draws per R")
    ap.add_argument("--null-shuffles", type=int, default=0,
                    help="shuffled-target CV runs for the overall test of each design's reduced-rank ridge (0: none)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/de_ceiling.json"))
    args = ap.parse_args()
    if args.replot:
        written = json.loads(args.replot.read_text())
        plot(goal_columns(pd.DataFrame.from_records(written["rows"])), args.replot.with_suffix(".png"),
             written["label"])
        return
    if not args.root:
        ap.error("--root is required (or --replot JSON)")
    each = tuple(tuple(float(v) for v in spec.split(",")) for spec in args.readout_each)
    if any(len(e) != 4 or not all(0.0 <= v <= 1.0 for v in e) for e in each):
        ap.error(f"--readout-each takes four correlations in [0, 1] separated by commas, got {args.readout_each}")
    import torch

    torch.set_num_threads(1)
    rows = [r for root in args.root
            for r in ceiling(root.resolve(), tuple(args.readout), args.draws, args.null_shuffles, each)]
    table = goal_columns(pd.DataFrame.from_records(rows))
    cols = ["planted_r_mean", "planted_below_-0.1", "null_over_chance", "planted_goal"]
    per_seed = table.groupby(["design", "method", "seed"], sort=False)[cols].mean()
    summary = per_seed.groupby(["design", "method"], sort=False).agg(
        mean=("planted_r_mean", "mean"), min=("planted_r_mean", "min"), max=("planted_r_mean", "max"),
        below_min=("planted_below_-0.1", "min"), below_max=("planted_below_-0.1", "max"),
        null_over_chance=("null_over_chance", "mean"), planted_goal=("planted_goal", "mean"),
        seeds=("planted_r_mean", "count"))
    print(summary.round(3).to_string())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out.with_suffix(".csv"), index=False)
    args.out.write_text(json.dumps({"label": args.label, "rows": rows,
                                    "summary": summary.round(4).reset_index().to_dict("records")}, indent=1) + "\n")
    if table["design"].str.startswith("readout_rho=").any():  # the figure is the curve over one R for all variables
        plot(table, args.out.with_suffix(".png"), args.label)


if __name__ == "__main__":
    main()
