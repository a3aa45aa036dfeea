"""DE accuracy against the number of matched tumour/normal pairs: how many pairs a cohort needs.

Issue 14 asks for DE that works at TCGA's matched-pair counts (BRCA ~110, LUAD ~57, LUSC ~50; the demo 21,
the acceptance cohort 13). On one large synthetic cohort this draws ``--draws`` seeded subsets of n pairs for
each n in ``--pairs``, re-assigns 5 patient folds within the subset, and runs each DE method exactly as
train_de cross-validates it (``histcode.genes.methods``) on every feature set named in ``--encoders``
(slide summaries are fitted on each fold's training patients only). Beside them, the **ceiling**: the same
models fed the generator's true slide variables of each tumour slide (tumour fraction, log lymphocyte
density, tumour nuclear density, log necrosis share; ``ground_truth/slides.csv``) instead of image features.
Per (feature set, method, n, draw): planted genes' mean held-out Pearson r, how many planted genes fall below
-0.1, and null genes' mean |r|; the figure plots the mean over draws with the range. On a real cohort (no
generator truth) there is no ceiling and no planted/null split: every gene's mean and median held-out r are
reported and plotted instead, which still answers whether more pairs help your cohort.

    cd <project with data/> && python benchmarks/bench_de_pairs.py --params params.yaml \\
        --encoders adco histomics --pairs 13 26 39 52 --out benchmarks/results/bench_de_pairs.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

TRUTH_COLUMNS = ("tumour_fraction", "lymphocyte_density", "tumour_nuclei_density", "necrosis_fraction")


def truth_design(slide_truth: pd.DataFrame, slide_ids: dict[str, str], patients: list[str]) -> np.ndarray:
    """(P, 4) true slide variables of each patient's DE slide (log of the two skewed ones)."""
    t = slide_truth.set_index("slide_id").loc[[slide_ids[p] for p in patients], list(TRUTH_COLUMNS)]
    x = t.to_numpy(dtype=np.float64, copy=True)  # pandas copy-on-write hands out read-only views
    x[:, 1] = np.log(np.maximum(x[:, 1], 1.0))
    x[:, 3] = np.log(np.maximum(x[:, 3], 1e-3))
    return x


def gene_r(pred: pd.DataFrame) -> pd.Series:
    """Each gene's pooled held-out Pearson r of long predictions (``gene, y_true_log10fc, y_pred_log10fc``)."""
    return pred.groupby("gene").apply(lambda d: float(np.corrcoef(d["y_true_log10fc"], d["y_pred_log10fc"])[0, 1]),
                                      include_groups=False)


def score(pred: pd.DataFrame, effect: pd.Series | None) -> dict[str, float]:
    """All genes' mean/median r; with generator truth also planted mean r, planted below -0.1, null mean |r|."""
    r = gene_r(pred)
    out = {"all_r_mean": float(r.mean()), "all_r_median": float(r.median())}
    if effect is None:
        return out
    kind = effect.reindex(r.index)
    planted, null = r[kind != "null"], r[kind == "null"]
    return {**out, "planted_r_mean": float(planted.mean()), "planted_below_-0.1": int((planted < -0.1).sum()),
            "null_abs_r_mean": float(null.abs().mean()), "n_planted": len(planted)}


def main() -> None:
    import torch

    from histcode.config import base, load_params, section
    from histcode.expression.config import ExpressionConfig
    from histcode.genes.config import de_config
    from histcode.genes.folds import assign_folds
    from histcode.genes.methods import Representations, cross_validate_method
    from histcode.genes.run import load_de_data, method_settings
    from histcode.genes.summaries import SlideSummaries
    from histcode.io.truth import read_gene_effects, read_slide_truth
    from histcode.paths import Paths

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--encoders", nargs="+", default=["adco"])
    ap.add_argument("--methods", nargs="+", default=["summaries/rrr", "summaries/ridge", "paper/heads"])
    ap.add_argument("--truth-methods", nargs="+", default=["paper/rrr", "paper/ridge"])
    ap.add_argument("--pairs", nargs="+", type=int, default=[13, 26, 39, 52])
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--label", default="")
    ap.add_argument("--out", default="benchmarks/results/bench_de_pairs.json")
    args = ap.parse_args()

    params = load_params(args.params)
    thr = section(ExpressionConfig, "expression", params).log2_threshold
    torch.set_num_threads(1)
    rows: list[dict] = []
    truth_done = False
    for enc in args.encoders:
        params["de"] = {**params["de"], "encoder": enc, "method": args.methods[0], "methods": args.methods,
                        "progress": False}
        cfg, bcfg = de_config(params), base(params)
        data = load_de_data(cfg, bcfg)
        gt = Paths.from_base(bcfg).ground_truth
        synthetic = bcfg.cohort(data.cohort).synthetic
        effect = read_gene_effects(gt).set_index("gene")["effect"] if synthetic else None
        ids = list(data.inputs.patient_ids)
        xt = truth_design(read_slide_truth(gt), data.inputs.slide_ids, ids) if synthetic else None
        settings = method_settings(cfg, bcfg.seed, thr)
        genes = data.targets.genes
        for n in sorted(set(min(p, len(ids)) for p in args.pairs)):
            for d in range(args.draws if n < len(ids) else 1):
                rng = np.random.default_rng([args.seed, n, d])
                idx = np.sort(rng.choice(len(ids), size=n, replace=False))
                sub = [ids[i] for i in idx]
                folds = assign_folds(sub, cfg.n_folds, seed=args.seed + d)
                s = data.summaries
                summ = None if s is None else SlideSummaries(sub, s.means[idx], [s.tiles[i] for i in idx], s.settings)
                sets = [(enc, Representations(sub, data.inputs.x[idx], summ), args.methods)]
                if not truth_done and xt is not None:
                    sets.append(("truth", Representations(sub, xt[idx], None), args.truth_methods))
                for name, reps, methods in sets:
                    for m in methods:
                        t0 = time.perf_counter()
                        pred, _ = cross_validate_method(m, reps, data.y_reg[idx], data.y_cls[idx], genes, folds,
                                                        settings)
                        row = {"features": name, "method": m, "pairs": n, "draw": d,
                               **score(pred, effect), "seconds": time.perf_counter() - t0}
                        rows.append(row)
                        detail = (f"planted r {row['planted_r_mean']:+.3f} (<-0.1: {row['planted_below_-0.1']}), "
                                  f"null |r| {row['null_abs_r_mean']:.3f}" if effect is not None else
                                  f"all genes r mean {row['all_r_mean']:+.3f}, median {row['all_r_median']:+.3f}")
                        print(f"{name:10s} {m:16s} n={n:3d} draw {d}: {detail}", flush=True)
        truth_done = True
    table = pd.DataFrame.from_records(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out.with_suffix(".csv"), index=False)
    key = "planted_r_mean" if "planted_r_mean" in table else "all_r_mean"
    agg = {"r": (key, "mean"), "r_min": (key, "min"), "r_max": (key, "max"), "all_r_median": ("all_r_median", "mean"),
           "draws": ("draw", "count")}
    if key == "planted_r_mean":
        agg.update(below=("planted_below_-0.1", "mean"), null_abs_r=("null_abs_r_mean", "mean"))
    summary = table.groupby(["features", "method", "pairs"], sort=False).agg(**agg).reset_index()
    print(summary.round(3).to_string(index=False))
    plot(summary, out.with_suffix(".png"), args.label,
         "planted genes: mean held-out Pearson r" if key == "planted_r_mean" else "all genes: mean held-out Pearson r")
    out.write_text(json.dumps({"label": args.label, "n_patients": len(ids), "pairs": args.pairs,
                               "draws": args.draws, "summary": summary.round(4).to_dict("records")}, indent=1))


def plot(summary: pd.DataFrame, path: Path, label: str, ylabel: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    cmaps = ["Blues", "Greens", "Purples", "Oranges"]  # one colour family per image feature set
    feats = [f for f in dict.fromkeys(summary["features"]) if f != "truth"]
    for (feat, method), g in summary.groupby(["features", "method"], sort=False):
        methods = list(dict.fromkeys(summary.loc[summary["features"] == feat, "method"]))
        shade = 0.85 - 0.4 * methods.index(method) / max(1, len(methods) - 1)
        colour = plt.get_cmap("Reds" if feat == "truth" else cmaps[feats.index(feat) % len(cmaps)])(shade)
        ax.plot(g["pairs"], g["r"], "--" if feat == "truth" else "-", color=colour,
                marker="os^v"[methods.index(method) % 4], label=f"{feat}: {method}")
        ax.fill_between(g["pairs"], g["r_min"], g["r_max"], color=colour, alpha=0.12)
    if "null_abs_r" in summary:
        ax.axhline(0.5, color="grey", lw=0.8, ls=":", label="issue 14 target (0.5)")
    ax.axhline(0.0, color="black", lw=0.6)
    ax.set_xlabel("matched tumour/normal pairs (patients)")
    ax.set_ylabel(ylabel)
    truth = "; dashed: models fed the true slide variables" if "truth" in set(summary["features"]) else ""
    ax.set_title(f"DE accuracy vs cohort size{': ' + label if label else ''}\n(line: mean over draws; band: range"
                 f"{truth})", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
