"""Held-out DE correlations with and without the training-fold mean, where there is nothing to find.

Every held-out prediction of a cross-validated DE model carries its training fold's target mean, which at
small n is anti-correlated with the held-out values (a fold whose patients sit high leaves a low training
mean). This script measures what that does to the pooled held-out Pearson r, raw and fold-centred (each
prediction minus its training fold's target mean, ``histcode.metrics.de_stats.fold_centred``), on the
cohort's real slide representations with the targets' patient rows permuted B times: the method is
cross-validated on every shuffle exactly as train_de does. Reported per version: the mean signed r over all
genes and shuffles, the share of shuffles where the overall Wilcoxon vs random (one-sided, as evaluate_de)
rejects at 0.05, and the share of (shuffle, gene) pairs with pooled permutation-test p < 0.05. For
synthetic cohorts it also reports the unshuffled planted/null genes' mean r for both, and for any cohort the
observed mean r over genes against the B runs (``overall_raw.p``, as ``de_stats.overall_null_test``;
``--permutations 0 --shuffles 999`` reaches p 0.001 in minutes for the linear methods), and the same test of
the mean of the top tenth of the genes' r (``overall_raw.top_decile_p``; per run in the CSV).

    python benchmarks/bench_de_centring.py --shuffles 40 --out benchmarks/results/bench_de_centring_demo.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def scores(pred: pd.DataFrame, n_random: int, n_permutations: int, seed: int
           ) -> tuple[list[str], dict[str, dict[str, np.ndarray | float]]]:
    """(genes, per version (raw, fold_centred): pooled r (G,), overall Wilcoxon p, permutation p (G,))."""
    from histcode.metrics.de_stats import (
        columnwise_pearson,
        fold_centred,
        matrices,
        permutation_pearson,
        random_baseline,
        wilcoxon,
    )

    truth, guess, fold = matrices(pred)
    y, yhat, f = truth.to_numpy(np.float64), guess.to_numpy(np.float64), fold.to_numpy()
    base = random_baseline(y, f, n_random, seed)
    out: dict[str, dict[str, np.ndarray | float]] = {}
    for name, p in (("raw", yhat), ("fold_centred", fold_centred(y, yhat, f))):
        r = columnwise_pearson(y, p)
        out[name] = {"r": r, "wilcoxon_p": wilcoxon(r, base.pearson, "greater")[1],
                     "perm_p": permutation_pearson(y, p, n_permutations, seed, "greater") if n_permutations
                     else np.full(r.shape, np.nan)}
    return list(truth.columns), out


def main() -> None:
    from histcode.config import base, load_params, section
    from histcode.expression.config import ExpressionConfig
    from histcode.genes.config import de_config
    from histcode.genes.methods import Representations, cross_validate_method
    from histcode.genes.run import load_de_data, method_settings
    from histcode.metrics.de_stats import overall_null_test, top_share_k, top_share_mean

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--cohort", default=None)
    ap.add_argument("--method", default=None, help="DE method (default: de.method)")
    ap.add_argument("--shuffles", type=int, default=40)
    ap.add_argument("--n-random", type=int, default=100)
    ap.add_argument("--permutations", type=int, default=2000,
                    help="per-gene permutation test in every run (0 = skip it: many runs for the overall p)")
    ap.add_argument("--seed", type=int, default=20261201)
    ap.add_argument("--out", default="benchmarks/results/bench_de_centring.json")
    args = ap.parse_args()

    params = load_params(args.params)
    cfg, bcfg = de_config(params), base(params)
    method = args.method or cfg.method
    thr = section(ExpressionConfig, "expression", params).log2_threshold
    torch.set_num_threads(cfg.threads)
    data = load_de_data(cfg, bcfg, cohort=args.cohort)
    settings = method_settings(cfg, bcfg.seed, thr)
    reps = Representations(data.inputs.patient_ids, data.inputs.x, data.summaries)
    result: dict[str, object] = {"cohort": data.cohort, "method": method, "n_patients": len(reps.patient_ids),
                                 "n_genes": len(data.targets.genes), "shuffles": args.shuffles, "seed": args.seed}
    t0 = time.perf_counter()
    pred, _ = cross_validate_method(method, reps, data.y_reg, data.y_cls, data.targets.genes, data.folds, settings)
    genes, observed = scores(pred.drop(columns="method"), args.n_random, args.permutations, bcfg.seed)
    k = top_share_k(observed["raw"]["r"])  # the top decile of overall_null_test
    if bcfg.cohort(data.cohort).synthetic:
        from histcode.io.truth import read_gene_effects
        from histcode.paths import Paths

        effects = read_gene_effects(Paths.from_base(bcfg).ground_truth).set_index("gene")["effect"]
        kind = np.array([effects.get(g, "null") for g in genes])
        for name in ("raw", "fold_centred"):
            r = np.asarray(observed[name]["r"])
            result[f"observed_{name}"] = {
                "planted_mean_r": float(np.nanmean(r[kind != "null"])),
                "planted_below_-0.1": int((r[kind != "null"] < -0.1).sum()),
                "null_mean_r": float(np.nanmean(r[kind == "null"])),
                "wilcoxon_p_all_genes": float(observed[name]["wilcoxon_p"])}
    rng = np.random.default_rng(args.seed)
    rows = []
    null_r: dict[str, list[np.ndarray]] = {"raw": [], "fold_centred": []}
    for b in range(args.shuffles):
        perm = rng.permutation(len(reps.patient_ids))
        null_pred, _ = cross_validate_method(method, reps, data.y_reg[perm], data.y_cls[perm], data.targets.genes,
                                             data.folds, settings)
        _, s = scores(null_pred.drop(columns="method"), args.n_random, args.permutations, bcfg.seed + 1 + b)
        for name in ("raw", "fold_centred"):
            null_r[name].append(np.asarray(s[name]["r"], dtype=np.float64))
            rows.append({"shuffle": b, "version": name, "mean_r": float(np.nanmean(s[name]["r"])),
                         "top_decile_mean_r": float(top_share_mean(s[name]["r"], k)),
                         "wilcoxon_p": float(s[name]["wilcoxon_p"]),
                         "perm_p_below_0.05": float(np.nanmean(np.asarray(s[name]["perm_p"]) < 0.05))
                         if args.permutations else float("nan")})
        print(f"shuffle {b + 1}/{args.shuffles}: " + ", ".join(
            f"{r['version']} mean r {r['mean_r']:+.3f} p {r['wilcoxon_p']:.3f}" for r in rows[-2:]), flush=True)
    df = pd.DataFrame(rows)
    for name in ("raw", "fold_centred"):  # the observed statistics against these runs (de_stats.overall_null_test)
        o = overall_null_test(np.asarray(observed[name]["r"]), np.stack(null_r[name]))
        result[f"overall_{name}"] = {
            "mean_r": o["cv_null_overall_mean_r"], "p": o["cv_null_overall_p"], "z": o["cv_null_overall_z"],
            "top_k": o["cv_null_overall_top_k"], "top_decile_mean_r": o["cv_null_overall_top_mean_r"],
            "top_decile_null_mean_r": o["cv_null_overall_top_null_mean_r"],
            "top_decile_p": o["cv_null_overall_top_p"], "top_decile_z": o["cv_null_overall_top_z"],
            "top_decile_null_runs_reaching": int((df.loc[df["version"] == name, "top_decile_mean_r"]
                                                  >= o["cv_null_overall_top_mean_r"] - 1e-12).sum())}
    summary = df.groupby("version").agg(mean_r=("mean_r", "mean"), mean_r_sd=("mean_r", "std"),
                                        wilcoxon_reject_rate=("wilcoxon_p", lambda p: float((p < 0.05).mean())),
                                        perm_p_below_005=("perm_p_below_0.05", "mean"))
    result["null"] = summary.reset_index().to_dict("records")
    result["seconds"] = round(time.perf_counter() - t0, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out.with_suffix(".csv"), index=False)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
