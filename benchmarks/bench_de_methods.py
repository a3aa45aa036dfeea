"""DE methods on the same patient folds: held-out accuracy against the random baseline, and time.

Runs every ``<representation>/<model>`` of ``histcode.genes.methods`` (the paper's top/bottom attention
tiles with its per-gene heads, all-tile summaries with nested-CV ridge / elastic net / PLS2 / reduced-rank
ridge / per-gene heads) on one cohort's DE inputs and folds, exactly as train_de cross-validates them, and
scores each as evaluate_de does (Wilcoxon vs random, BH, planted/null genes of a synthetic cohort).
``seconds`` is the wall time of the cross-validation (all folds, nested CV included; inputs read once).
With ``--null-shuffles B`` each method's cross-validation is also re-run on B target shuffles
(``histcode.genes.null``) and the per-gene tests are compared: discoveries after BH of the ``pooled`` and
``cv_null`` tests, how many of them are null genes, and null genes' share with p < 0.05 (a calibrated test
gives ~5 %); ``null_seconds`` is the time of the B shuffles. ``--ensemble M1 M2 ...`` also scores
``ensemble/mean``, the mean of those methods' held-out predictions (its ``seconds``: theirs summed).

    cd <project with data/> && python benchmarks/bench_de_methods.py --params params.yaml \\
        --out benchmarks/results/bench_de_methods.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import pandas as pd
import torch

DEFAULT_METHODS = ["paper/heads", "paper/ridge", "summaries/heads", "summaries/ridge", "summaries/enet",
                   "summaries/pls", "summaries/rrr"]


def test_calibration(all_pred: pd.DataFrame, nulls: dict[str, pd.DataFrame], effects: pd.DataFrame,
                     n_random: int, seed: int) -> pd.DataFrame:
    """Per method and per-gene test (pooled, cv_null): BH discoveries, of them null genes, null genes' p<0.05."""
    from histcode.metrics.de_stats import compare_to_random

    null_genes = set(effects.loc[effects["effect"] == "null", "gene"].astype(str))
    rows = []
    for method, pred in all_pred.groupby("method", sort=False):
        table, _, _ = compare_to_random(pred.drop(columns="method"), n_random=n_random, seed=seed,
                                        alternative="greater", fdr=0.05, gene_test="cv_null",
                                        cv_null=nulls[str(method)])
        is_null = table["gene"].astype(str).isin(null_genes)
        row = {"method": method}
        for test, p in (("pooled", "permutation"), ("cv_null", "cv_null")):
            sig = table[f"{p}_q"] <= 0.05
            row[f"{test}_discoveries"] = int(sig.sum())
            row[f"{test}_null_discoveries"] = int((sig & is_null).sum())
            row[f"{test}_null_p05_rate"] = float((table.loc[is_null, f"{p}_p"] < 0.05).mean())
        rows.append(row)
    return pd.DataFrame.from_records(rows)


def ensemble_predictions(all_pred: pd.DataFrame, members: list[str], name: str = "ensemble/mean") -> pd.DataFrame:
    """The mean of ``members``' held-out predictions per (patient, gene): each member saw only its training
    folds, so the mean is held-out too (a fixed average, nothing fitted on the folds' outcomes)."""
    keys = ["patient_id", "gene", "fold", "y_true_log10fc", "y_true_label"]
    sub = all_pred[all_pred["method"].isin(members)]
    if sub["method"].nunique() != len(members):
        raise SystemExit(f"error: --ensemble members {members} must all be in --methods")
    out = (sub.groupby(["patient_id", "gene"], sort=False)
           .agg(**{k: (k, "first") for k in keys[2:]}, y_pred_log10fc=("y_pred_log10fc", "mean"),
                p_label=("p_label", "mean")).reset_index())
    out.insert(0, "method", name)
    return out[all_pred.columns]


def main() -> None:
    from histcode.config import base, load_params, section
    from histcode.evaluation.de_methods import methods_table
    from histcode.evaluation.de_plots import plot_methods
    from histcode.expression.config import ExpressionConfig
    from histcode.genes.config import de_config
    from histcode.genes.methods import Representations, cross_validate_method
    from histcode.genes.null import shuffled_cv_null
    from histcode.genes.run import load_de_data, method_settings
    from histcode.paths import Paths

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--cohort", default=None)
    ap.add_argument("--methods", nargs="+", default=DEFAULT_METHODS)
    ap.add_argument("--n-random", type=int, default=100)
    ap.add_argument("--label", default="", help="what the cohort is (recorded in the json)")
    ap.add_argument("--null-shuffles", type=int, default=0, help="target shuffles per method for the cv_null test")
    ap.add_argument("--ensemble", nargs="+", default=None, metavar="METHOD",
                    help="also score ensemble/mean: the mean of these methods' held-out predictions")
    ap.add_argument("--out", default="benchmarks/results/bench_de_methods.json")
    args = ap.parse_args()

    params = load_params(args.params)
    params["de"] = {**params["de"], "method": args.methods[0], "methods": args.methods, "progress": False}
    cfg, bcfg = de_config(params), base(params)  # de.attention_model null resolved to mil.pooling
    thr = section(ExpressionConfig, "expression", params).log2_threshold
    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    data = load_de_data(cfg, bcfg, cohort=args.cohort)
    load_s = time.perf_counter() - t0
    settings = method_settings(cfg, bcfg.seed, thr)
    reps = Representations(data.inputs.patient_ids, data.inputs.x, data.summaries)
    frames, records, nulls = [], [], {}
    for method in args.methods:
        pred, rec = cross_validate_method(method, reps, data.y_reg, data.y_cls, data.targets.genes, data.folds,
                                          settings)
        if args.null_shuffles:
            t1 = time.perf_counter()
            nulls[method] = shuffled_cv_null(method, reps, data.y_reg, data.y_cls, data.targets.genes, data.folds,
                                             settings, n_shuffles=args.null_shuffles, seed=bcfg.seed
                                             ).drop(columns="method")
            rec["null_seconds"] = time.perf_counter() - t1
        frames.append(pred)
        records.append(rec)
        print(f"{method}: {rec['seconds']:.1f} s", flush=True)
    effects = None
    if bcfg.cohort(data.cohort).synthetic:
        from histcode.io.truth import read_gene_effects

        effects = read_gene_effects(Paths.from_base(bcfg).ground_truth)
    all_pred = pd.concat(frames, ignore_index=True)
    if args.ensemble:
        ens = ensemble_predictions(all_pred, args.ensemble)
        all_pred = pd.concat([all_pred, ens], ignore_index=True)
        records.append({"method": "ensemble/mean", "representation": "ensemble", "model": "mean",
                        "seconds": sum(r["seconds"] for r in records if r["method"] in args.ensemble)})
    timing = pd.DataFrame.from_records(records)
    table = methods_table(all_pred, n_random=args.n_random, seed=bcfg.seed, alternative="greater", fdr=0.05,
                          timing=timing, effects=effects, nulls=nulls,
                          gene_test="cv_null" if nulls else "pooled")
    if nulls:
        table = table.merge(timing[["method", "null_seconds"]], on="method", how="left")
        if effects is not None:
            table = table.merge(test_calibration(all_pred, nulls, effects, args.n_random, bcfg.seed), on="method")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out.with_suffix(".csv"), index=False)
    plot_methods(table, out.with_suffix(".png"),
                 f"{data.cohort} ({args.label or 'cohort'}): {len(data.inputs.patient_ids)} patients, "
                 f"{len(data.targets.genes)} genes, {data.fold_info['n_folds']} folds")
    pd.set_option("display.width", 250)
    print(table.round(3).to_string(index=False))
    out.write_text(json.dumps({
        "label": args.label, "cohort": data.cohort, "n_patients": len(data.inputs.patient_ids),
        "n_genes": len(data.targets.genes), "n_folds": data.fold_info["n_folds"], "encoder": cfg.encoder,
        "load_inputs_s": round(load_s, 2), "null_shuffles": args.null_shuffles, "base_seed": bcfg.seed,
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(), "methods": table.round(4).to_dict("records"),
    }, indent=1))


if __name__ == "__main__":
    main()
