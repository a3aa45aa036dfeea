"""Every DE method on the same folds, scored the same way (issue 14 §2): train_de's ``<cohort>_methods.parquet``.

Per method: median/mean held-out Pearson, mean balanced accuracy of the binary task, the overall Wilcoxon
rank-sum against the random baseline (and, with a CV null, the calibrated overall tests against that null:
the mean r over genes and the mean of the top tenth),
the number of genes better than random after BH (``de_stats``), the training time, and for synthetic cohorts
the planted/null numbers against the generator's truth.
"""

from __future__ import annotations

import pandas as pd

from histcode.genes.metrics import per_gene_metrics, summarise
from histcode.metrics.de_stats import Alternative, GeneTest, compare_to_random


def methods_table(all_pred: pd.DataFrame, *, n_random: int, seed: int, alternative: Alternative, fdr: float,
                  gene_test: GeneTest = "pooled", n_permutations: int = 10_000, timing: pd.DataFrame | None = None,
                  effects: pd.DataFrame | None = None, nulls: dict[str, pd.DataFrame] | None = None,
                  known: dict[str, tuple] | None = None) -> pd.DataFrame:
    """One row per method (first-seen order). ``timing``: (method, seconds) of each method's fit (benchmarks);
    ``effects``: the generator's gene effects (gene, effect) for planted/null columns; ``nulls``: the CV null
    of the methods that have one (``gene_test: cv_null`` judges those; the others by ``pooled``, as the
    row's ``gene_test`` says); ``known``: ``compare_to_random`` results already computed with these settings,
    by method (evaluate_de's of the registered method)."""
    from histcode.evaluation.de_truth import planted_vs_null

    rows = []
    for method, pred in all_pred.groupby("method", sort=False):
        pred = pred.drop(columns="method")
        per_gene = per_gene_metrics(pred)
        null = (nulls or {}).get(str(method))
        test = "pooled" if gene_test == "cv_null" and null is None else gene_test
        table, overall, base = (known or {}).get(str(method)) or compare_to_random(
            pred, n_random=n_random, seed=seed, alternative=alternative, fdr=fdr, gene_test=test,
            n_permutations=n_permutations, cv_null=null)
        s = summarise(per_gene)
        row = {"method": method, "pearson_r_median": s["pearson_r_median"], "pearson_r_mean": s["pearson_r_mean"],
               "balanced_accuracy_mean": s["balanced_accuracy_mean"], "wilcoxon_p": overall["wilcoxon_p"],
               "n_genes_significant_bh": int(overall["n_genes_significant_bh"]), "n_genes": len(per_gene),
               "gene_test": test,
               "n_genes_significant_bh_pooled": int(overall["n_genes_significant_bh_pooled"]),
               "n_genes_significant_bh_folds": int(overall["n_genes_significant_bh_folds"]),
               "n_genes_significant_bh_cv_null": overall.get("n_genes_significant_bh_cv_null", float("nan")),
               "cv_null_overall_p": overall.get("cv_null_overall_p", float("nan")),
               "cv_null_overall_z": overall.get("cv_null_overall_z", float("nan")),
               "cv_null_overall_top_p": overall.get("cv_null_overall_top_p", float("nan")),
               "cv_null_overall_top_z": overall.get("cv_null_overall_top_z", float("nan"))}
        if effects is not None:
            _, truth = planted_vs_null(per_gene.merge(table[["gene", "significant"]], on="gene", how="left"),
                                       effects, base.pearson)
            row.update({k.removeprefix("truth."): v for k, v in truth.items()
                        if k in ("truth.planted_pearson_mean", "truth.planted_pearson_min",
                                 "truth.n_planted_below_-0.1", "truth.null_abs_pearson_mean",
                                 "truth.random_abs_pearson_mean", "truth.n_planted",
                                 "truth.n_significant_planted", "truth.n_significant_null")})
        rows.append(row)
    out = pd.DataFrame.from_records(rows)
    if timing is not None and {"method", "seconds"} <= set(timing.columns):
        out = out.merge(timing[["method", "seconds"]], on="method", how="left")
    return out
