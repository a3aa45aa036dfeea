"""Figures of the DE evaluation (matplotlib, Agg): correlation histograms, scatter plots, fold-change bins."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from histcode.atomic import save_figure

matplotlib.use("Agg")


def _save(fig: plt.Figure, path: Path) -> None:
    save_figure(fig, path, dpi=120, bbox_inches="tight")


def pearson_hist_table(pearson_r: np.ndarray, n_bins: int) -> pd.DataFrame:
    """Counts of per-gene Pearson r in ``n_bins`` equal bins over [-1, 1] → DataFrame(bin, count) (DVC plot)."""
    r = np.asarray(pearson_r, dtype=np.float64)
    edges = np.linspace(-1.0, 1.0, n_bins + 1)
    counts, _ = np.histogram(r[np.isfinite(r)], bins=edges)
    labels = [f"{lo:+.2f}..{hi:+.2f}" for lo, hi in pairwise(edges)]
    return pd.DataFrame({"bin": labels, "count": counts.astype(int)})


def plot_pearson_vs_random(pearson_r: np.ndarray, random_r: np.ndarray, path: Path, *, n_bins: int,
                           p_value: float, null_p: float | None = None, null_top_p: float | None = None) -> None:
    """Left: densities of model per-gene r vs random-baseline r. Right: box plots of the two. ``null_p`` /
    ``null_top_p``: the calibrated overall tests against the shuffled-target CV null (mean r over genes / mean
    of the top tenth, ``de_stats.overall_null_test``), if run."""
    r = np.asarray(pearson_r, dtype=np.float64)
    rr = np.asarray(random_r, dtype=np.float64).ravel()
    r, rr = r[np.isfinite(r)], rr[np.isfinite(rr)]
    edges = np.linspace(-1.0, 1.0, n_bins + 1)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [2, 1]})
    a.hist(rr, bins=edges, density=True, alpha=0.5, color="grey", label=f"random ({rr.size} r)")
    a.hist(r, bins=edges, density=True, alpha=0.6, color="tab:blue", label=f"model ({r.size} genes)")
    title = f"model vs random (Wilcoxon p={p_value:.2g})"
    if null_p is not None and np.isfinite(null_p):
        title += f"\nvs shuffled-target CV null: mean r p={null_p:.2g}"
        if null_top_p is not None and np.isfinite(null_top_p):
            title += f", top-tenth mean r p={null_top_p:.2g}"
    a.set(xlabel="held-out Pearson r per gene", ylabel="density", title=title)
    a.legend()
    b.boxplot([r, rr], tick_labels=["model", "random"])
    b.set(ylabel="Pearson r")
    _save(fig, path)


def plot_scatter(pred: pd.DataFrame, genes: Sequence[str], per_gene: pd.DataFrame, path: Path) -> list[str]:
    """True vs predicted log10(fc+1) per gene (colour = fold), r in the title; returns the genes drawn."""
    present = [g for g in genes if g in set(pred["gene"])]
    if not present:
        return []
    ncol = min(3, len(present))
    nrow = int(np.ceil(len(present) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 3.6 * nrow), squeeze=False, constrained_layout=True)
    stats_by_gene = per_gene.set_index("gene")
    for ax, gene in zip(axes.ravel(), present, strict=False):
        sub = pred[pred["gene"] == gene]
        sc = ax.scatter(sub["y_true_log10fc"], sub["y_pred_log10fc"], c=sub["fold"], cmap="tab10", s=14)
        lo = float(np.nanmin(sub[["y_true_log10fc", "y_pred_log10fc"]].to_numpy()))
        hi = float(np.nanmax(sub[["y_true_log10fc", "y_pred_log10fc"]].to_numpy()))
        ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
        r = stats_by_gene.loc[gene, "pearson_r"] if gene in stats_by_gene.index else np.nan
        ax.set(title=f"{gene}: r={r:.2f}", xlabel="true log10(fc+1)", ylabel="predicted")
    for ax in axes.ravel()[len(present):]:
        ax.axis("off")
    fig.colorbar(sc, ax=axes.ravel().tolist(), label="fold", shrink=0.6)
    _save(fig, path)
    return present


def fc_level_table(per_gene: pd.DataFrame, level: pd.Series, n_bins: int) -> pd.DataFrame:
    """Genes with their fold-change level (median |log2 fc|) and its quantile bin, beside (balanced) accuracy
    and r."""
    df = per_gene[["gene", "accuracy", "balanced_accuracy", "pearson_r"]].copy()
    df["fc_level"] = df["gene"].map(level).astype(np.float64)
    df = df[np.isfinite(df["fc_level"])]
    if not len(df):
        return df.assign(fc_bin=pd.Series(dtype=str)).reset_index(drop=True)
    q = min(n_bins, max(1, df["fc_level"].nunique()))
    codes, edges = pd.qcut(df["fc_level"], q=q, labels=False, retbins=True, duplicates="drop")
    labels = [f"{lo:.2f}–{hi:.2f}" for lo, hi in pairwise(edges)]
    df["fc_bin"] = [labels[int(c)] for c in codes]
    return df.reset_index(drop=True)


def plot_fc_level(table: pd.DataFrame, path: Path) -> None:
    """Box plots of per-gene balanced accuracy (binary task; genes with both classes) and Pearson r by
    fold-change-level bin, with the per-bin medians joined to show the trend (paper Fig. 7)."""
    order = list(dict.fromkeys(table.sort_values("fc_level")["fc_bin"]))
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for ax, col, label, chance in ((a, "balanced_accuracy", "balanced accuracy (|log2 fc| > t task)", 0.5),
                                   (b, "pearson_r", "held-out Pearson r", 0.0)):
        data = [table.loc[(table["fc_bin"] == o) & np.isfinite(table[col]), col].to_numpy() for o in order]
        ax.boxplot(data, tick_labels=order)
        meds = [np.median(d) if len(d) else np.nan for d in data]
        ax.plot(range(1, len(order) + 1), meds, "o-", color="tab:red", label="bin median")
        ax.axhline(chance, color="grey", lw=0.8, ls="--", label="chance")
        ax.set(xlabel="median |log2 fc| of the gene (bin)", ylabel=label)
        ax.tick_params(axis="x", rotation=30)
        ax.legend(fontsize=8)
    fig.suptitle("fold-change level vs prediction accuracy (one gene per point; paper Fig. 7)")
    _save(fig, path)


def plot_planted_vs_null(genes: pd.DataFrame, random_r: np.ndarray, path: Path, *, p_value: float) -> None:
    """Box plots of held-out Pearson r for planted genes by effect kind, null genes and the random baseline."""
    groups = {f"{k} ({len(s)})": s["pearson_r"].to_numpy(np.float64)
              for k, s in genes[genes["planted"]].groupby("effect")}
    groups[f"null ({int((genes['effect'] == 'null').sum())})"] = genes.loc[genes["effect"] == "null",
                                                                           "pearson_r"].to_numpy(np.float64)
    rr = np.asarray(random_r, dtype=np.float64).ravel()
    groups["random"] = rr
    data = [v[np.isfinite(v)] for v in groups.values()]
    fig, ax = plt.subplots(figsize=(1.6 * len(groups) + 2, 4))
    ax.boxplot(data, tick_labels=list(groups))
    ax.axhline(0, color="grey", lw=0.8, ls="--")
    ax.set(ylabel="held-out Pearson r", title=f"planted vs null genes (Wilcoxon planted > null p={p_value:.2g})")
    _save(fig, path)


def plot_heatmap_truth(table: pd.DataFrame, path: Path) -> None:
    """Per-slide AUC of attention for lymphocyte-rich tiles, per attention source (genes, reference), over
    all tiles and within the tumour region; 0.5 = chance."""
    ok = table[table["error"].fillna("") == ""]
    sources = sorted(ok["gene"].unique(), key=lambda g: (g == "reference", g))
    fig, axes = plt.subplots(1, 2, figsize=(2 + 1.3 * len(sources) * 2, 4), sharey=True)
    for ax, col, what in zip(axes, ("auc", "auc_tumour"), ("all tiles", "tumour region"), strict=True):
        data = [ok.loc[ok["gene"] == g, col].dropna().to_numpy(np.float64) for g in sources]
        ax.boxplot(data, tick_labels=sources)
        for i, d in enumerate(data, start=1):
            ax.scatter(np.full(len(d), i) + np.linspace(-0.15, 0.15, max(len(d), 1))[: len(d)], d, s=8,
                       alpha=0.6, color="k")
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.set(title=f"lymphocyte-rich tiles: {what}", ylabel="attention AUC per slide", ylim=(0, 1))
        ax.tick_params(axis="x", rotation=30)
    _save(fig, path)


def plot_truth_maps(maps: dict[str, np.ndarray], path: Path, title: str) -> None:
    """Side-by-side tile maps of one slide (e.g. lymphocyte density, per-gene and tumour attention), each
    as within-slide percentiles so the patterns compare; NaN = no tile."""
    fig, axes = plt.subplots(1, len(maps), figsize=(4.2 * len(maps), 3.6))
    for ax, (name, m) in zip(np.atleast_1d(axes), maps.items(), strict=True):
        ax.imshow(m, cmap="jet", vmin=0, vmax=1, interpolation="nearest")
        ax.set(title=name, xticks=[], yticks=[])
    fig.suptitle(title, fontsize=9)
    _save(fig, path)


TEST_NAMES = {"pooled": "pooled held-out r vs shuffled predictions",
              "cv_null": "pooled held-out r vs the CV re-run on shuffled targets",
              "folds": "per-fold Wilcoxon vs random"}


def plot_methods(table: pd.DataFrame, path: Path, title: str) -> None:
    """Bars per method: median held-out r, and genes better than random after BH (with the overall p)."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.6), constrained_layout=True)
    x = np.arange(len(table))
    a.bar(x, table["pearson_r_median"], color="tab:blue", label="all genes, median")
    if "planted_pearson_mean" in table.columns:
        a.plot(x, table["planted_pearson_mean"], "o", color="tab:red", label="planted genes, mean")
    a.axhline(0, color="grey", lw=0.8, ls="--")
    shown = table[[c for c in ("pearson_r_median", "planted_pearson_mean") if c in table.columns]].to_numpy(float)
    lo, hi = min(0.0, float(np.nanmin(shown))), max(0.0, float(np.nanmax(shown)))
    span = (hi - lo) or 0.1
    a.set(ylabel="held-out Pearson r", title="correlation",
          ylim=(lo - 0.08 * span, hi + 0.45 * span))  # headroom: the legend never covers a method's points
    null_p = table["cv_null_overall_p"] if "cv_null_overall_p" in table.columns else pd.Series([np.nan] * len(table))
    top_p = (table["cv_null_overall_top_p"] if "cv_null_overall_top_p" in table.columns
             else pd.Series([np.nan] * len(table)))
    b.bar(x, table["n_genes_significant_bh"], color="tab:green", label="genes > random (BH)\nbar label: p = overall "
          "Wilcoxon vs random" + ("\nnull / top: mean r / top-tenth mean r\nvs the shuffled-target CV null"
                                  if null_p.notna().any() else ""))
    tests = table["gene_test"].astype(str) if "gene_test" in table.columns else pd.Series(["pooled"] * len(table))
    mixed = tests.nunique() > 1
    for i, p in enumerate(table["wilcoxon_p"]):
        b.annotate(f"p={p:.1g}" + (f"\nnull {null_p.iloc[i]:.2g}" if np.isfinite(null_p.iloc[i]) else "")
                   + (f"\ntop {top_p.iloc[i]:.2g}" if np.isfinite(top_p.iloc[i]) else "")
                   + (f"\n{tests.iloc[i]}" if mixed else ""),
                   (i, table["n_genes_significant_bh"].iloc[i]), ha="center", va="bottom", fontsize=8)
    how = ("per-gene test under each bar" if mixed else TEST_NAMES.get(tests.iloc[0], tests.iloc[0]))
    b.set(ylabel="genes (count)", title=f"genes better than random after BH\n({how})",
          ylim=(0, max(1.0, 2.0 * float(table["n_genes_significant_bh"].max()))))
    b.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    for ax, where in ((a, "upper left"), (b, "upper right")):
        ax.set_xticks(x, table["method"], rotation=30, ha="right")
        ax.legend(fontsize=8, loc=where)
    fig.suptitle(title)
    _save(fig, path)
