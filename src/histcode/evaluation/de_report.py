"""Stage ``evaluate_de``: statistics, figures and (for synthetic cohorts) ground-truth checks of the DE models.

Writes reports/metrics/de.json, reports/plots/de_pearson_hist.csv (bin, count) and, under
reports/figures/de/: per_gene_stats.csv, pearson_vs_random.png, scatter.png, fc_level.csv/.png,
enrichment.csv (when ``gene_sets`` is set), per-gene heatmaps + heatmaps_index.csv, and for synthetic cohorts
truth_genes.csv / truth_heatmaps.csv.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from histcode.atomic import write_csv
from histcode.config import BaseConfig
from histcode.evaluation import de_plots
from histcode.evaluation.de_config import EvaluateDEConfig
from histcode.evaluation.de_heatmaps import GeneHeatmaps, gene_dirs, patch_sizes
from histcode.evaluation.enrichment import hypergeometric_enrichment, read_gmt, top_predicted
from histcode.genes.metrics import check_predictions, per_gene_metrics, summarise
from histcode.io.manifest import read_manifest
from histcode.metrics.de_stats import compare_to_random
from histcode.paths import Paths

log = logging.getLogger(__name__)


@dataclass
class DEEvaluation:
    metrics: dict[str, float]
    per_gene: pd.DataFrame
    figures: dict[str, Path] = field(default_factory=dict)


def read_predictions(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no DE predictions; run `dvc repro train_de` first")
    df = pd.read_parquet(path)
    check_predictions(df, str(path))
    return df


def fc_level(expression_dir: Path, patients: list[str], genes: list[str]) -> pd.Series:
    """gene → median |log2 fc| over the evaluated patients (from de_targets' ``log2_fc.parquet``)."""
    path = expression_dir / "log2_fc.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; run `dvc repro de_targets` (needed for the fold-change plot)")
    df = pd.read_parquet(path)
    if "patient_id" in df.columns:
        df = df.set_index("patient_id")
    df.index = df.index.astype(str)
    keep = [g for g in genes if g in set(df.columns)]
    return df.loc[df.index.intersection(patients), keep].abs().median(axis=0)


def evaluate_de(cfg: EvaluateDEConfig, base_cfg: BaseConfig, *, cohort: str | None = None) -> DEEvaluation:
    """Evaluate held-out DE predictions of ``cohort`` (default ``base.train_cohort``) and write the reports."""
    cohort = cohort or base_cfg.train_cohort
    paths = Paths.from_base(base_cfg)
    fig_dir = paths.figures("de")
    pred = read_predictions(paths.de_predictions(cohort))
    manifest = _manifest(paths, cohort)
    dirs = gene_dirs(paths.data_dir / "attention_genes" / cohort)
    sizes = patch_sizes({sid: paths.coords_h5(cohort, sid) for sid in _gene_slides(dirs)}) if dirs else {}
    with GeneHeatmaps(dirs if cfg.heatmap_slides else {}, manifest, sizes, fig_dir, n=cfg.heatmap_slides,
                      workers=cfg.workers) as heatmaps:  # rendered beside the statistics
        return _evaluate(cfg, base_cfg, cohort, paths, fig_dir, pred, dirs, sizes, heatmaps)


def _evaluate(cfg: EvaluateDEConfig, base_cfg: BaseConfig, cohort: str, paths: Paths, fig_dir: Path,
              pred: pd.DataFrame, dirs: dict[str, Path], sizes: dict[str, float],
              heatmaps: GeneHeatmaps) -> DEEvaluation:
    per_gene = per_gene_metrics(pred)
    nulls = read_cv_null(paths.de_predictions(cohort).with_name(f"{cohort}_cv_null.parquet"), cfg.gene_test)
    registered = next(iter(nulls), None)
    table, overall, baseline = compare_to_random(pred, n_random=cfg.n_random, seed=base_cfg.seed,
                                                 alternative=cfg.alternative, fdr=cfg.fdr,
                                                 progress=cfg.progress, gene_test=cfg.gene_test,
                                                 n_permutations=cfg.n_permutations,
                                                 cv_null=nulls.get(registered) if registered else None)
    per_gene = per_gene.merge(table.drop(columns="pearson_r_pooled"), on="gene", how="left")
    metrics: dict[str, float] = {**summarise(per_gene), **overall,
                                 "n_patients": float(pred["patient_id"].nunique()),
                                 "n_folds": float(pred["fold"].nunique())}
    figures: dict[str, Path] = {}

    hist = de_plots.pearson_hist_table(per_gene["pearson_r"].to_numpy(), cfg.hist_bins)
    write_csv(paths.plots("de_pearson_hist.csv"), hist)
    figures["pearson_vs_random"] = fig_dir / "pearson_vs_random.png"
    de_plots.plot_pearson_vs_random(per_gene["pearson_r"].to_numpy(), baseline.pearson,
                                    figures["pearson_vs_random"], n_bins=cfg.hist_bins, p_value=overall["wilcoxon_p"],
                                    null_p=overall.get("cv_null_overall_p"),
                                    null_top_p=overall.get("cv_null_overall_top_p"))
    figures["scatter"] = fig_dir / "scatter.png"
    drawn = de_plots.plot_scatter(pred, cfg.scatter_genes, per_gene, figures["scatter"])
    metrics["n_scatter_genes"] = float(len(drawn))
    for gene in drawn:
        metrics[f"pearson_r.{gene}"] = float(per_gene.loc[per_gene["gene"] == gene, "pearson_r"].iloc[0])

    level = fc_level(paths.expression(cohort), sorted(pred["patient_id"].unique()), per_gene["gene"].tolist())
    fc = de_plots.fc_level_table(per_gene, level, cfg.fc_bins)
    write_csv(fig_dir / "fc_level.csv", fc)
    if len(fc):
        figures["fc_level"] = fig_dir / "fc_level.png"
        de_plots.plot_fc_level(fc, figures["fc_level"])
        for col, key in (("balanced_accuracy", "fc_level_vs_balanced_accuracy_spearman"),
                         ("pearson_r", "fc_level_vs_pearson_spearman")):
            ok = np.isfinite(fc[col]) & np.isfinite(fc["fc_level"])
            if ok.sum() >= 3 and fc.loc[ok, col].nunique() > 1:
                metrics[key] = float(stats.spearmanr(fc.loc[ok, "fc_level"], fc.loc[ok, col]).statistic)

    if cfg.gene_sets is not None:
        selected = top_predicted(per_gene, cfg.top_genes)
        enr = hypergeometric_enrichment(selected, per_gene["gene"], read_gmt(cfg.gene_sets), fdr=cfg.fdr,
                                        min_size=cfg.min_set_size)
        write_csv(fig_dir / "enrichment.csv", enr)
        metrics.update({"enrichment.n_sets": float(len(enr)), "enrichment.n_selected": float(len(selected)),
                        "enrichment.n_significant": float(enr["significant"].sum()),
                        "enrichment.min_q": float(enr["q"].min()) if len(enr) else float("nan")})

    methods_path = paths.de_predictions(cohort).with_name(f"{cohort}_methods.parquet")
    if methods_path.exists():
        metrics.update(_methods(methods_path, paths, cohort, base_cfg, cfg, fig_dir, figures, nulls,
                                (pred, (table, overall, baseline))))

    if base_cfg.cohort(cohort).synthetic:
        metrics.update(_truth(per_gene, baseline.pearson, dirs, sizes, paths, cohort, fig_dir, cfg))

    index = heatmaps.collect()
    if index is not None:
        write_csv(fig_dir / "heatmaps_index.csv", index)
        metrics["n_gene_heatmaps"] = float((index["status"] == "ok").sum())
        metrics["n_gene_heatmaps_failed"] = float((index["status"] != "ok").sum())
    write_csv(fig_dir / "per_gene_stats.csv", per_gene)
    return DEEvaluation(metrics=metrics, per_gene=per_gene, figures=figures)


def read_cv_null(path: Path, gene_test: str) -> dict[str, pd.DataFrame]:
    """train_de's shuffled-target CV null per method (registered method first); {} when it has none, an error
    naming the fix when ``gene_test: cv_null`` needs it."""
    df = pd.read_parquet(path) if path.exists() else None
    if df is None or not len(df):
        if gene_test == "cv_null":
            raise FileNotFoundError(f"{path}: no CV null; evaluate_de.gene_test cv_null needs de.null_shuffles > 0 "
                                    "(then `dvc repro train_de`)")
        return {}
    return {str(m): g.drop(columns="method") for m, g in df.groupby("method", sort=False)}


def _methods(methods_path: Path, paths: Paths, cohort: str, base_cfg: BaseConfig, cfg: EvaluateDEConfig,
             fig_dir: Path, figures: dict[str, Path], nulls: dict[str, pd.DataFrame],
             registered: tuple[pd.DataFrame, tuple]) -> dict[str, float]:
    """Every DE method of train_de on the same folds → methods.csv, methods.png and ``method.<name>.*`` metrics.
    ``registered``: the registered method's predictions and their ``compare_to_random`` result, reused for
    its row (train_de writes that method first) when they are the same predictions."""
    from histcode.evaluation.de_methods import methods_table

    effects = None
    if base_cfg.cohort(cohort).synthetic:
        from histcode.io.truth import read_gene_effects

        try:
            effects = read_gene_effects(paths.ground_truth)
        except (OSError, KeyError, ValueError) as exc:
            log.warning("no planted/null columns in methods.csv: %s", exc)
    all_pred = pd.read_parquet(methods_path)
    mil_path = methods_path.with_name(f"{cohort}_gene_mil.parquet")
    if mil_path.exists():
        mil = pd.read_parquet(mil_path)
        if len(mil):  # the per-gene attention MIL, trained for the heatmap genes only
            mil = mil.assign(method="gene_mil/heatmap_genes", y_true_label=pd.NA, p_label=np.nan)
            all_pred = pd.concat([all_pred, mil[list(all_pred.columns)]], ignore_index=True)
    first = str(all_pred["method"].iloc[0])
    rows = all_pred[all_pred["method"] == first].drop(columns="method").reset_index(drop=True)
    known = {first: registered[1]} if rows.equals(registered[0].reset_index(drop=True)) else {}
    table = methods_table(all_pred, n_random=cfg.n_random, seed=base_cfg.seed,
                          alternative=cfg.alternative, fdr=cfg.fdr, gene_test=cfg.gene_test,
                          n_permutations=cfg.n_permutations,
                          effects=effects, nulls=nulls, known=known)
    write_csv(fig_dir / "methods.csv", table)
    figures["methods"] = fig_dir / "methods.png"
    de_plots.plot_methods(table, figures["methods"], f"{cohort}: DE methods on the same patient folds "
                          f"({int(table['n_genes'].max())} genes)")
    out: dict[str, float] = {}
    for row in table.to_dict("records"):
        for key in ("pearson_r_median", "wilcoxon_p", "n_genes_significant_bh", "n_genes_significant_bh_cv_null",
                    "cv_null_overall_p", "cv_null_overall_z", "cv_null_overall_top_p", "cv_null_overall_top_z",
                    "planted_pearson_mean",
                    "null_abs_pearson_mean"):
            if key in row and row[key] is not None and np.isfinite(float(row[key])):
                out[f"method.{row['method']}.{key}"] = float(row[key])
    return out


def _manifest(paths: Paths, cohort: str) -> dict[str, str]:
    path = paths.slides_csv(cohort)
    if not path.exists():
        log.warning("%s missing: per-gene heatmaps need slide paths; none rendered", path)
        return {}
    df = read_manifest(path)
    return dict(zip(df["slide_id"], df["path"].astype(str), strict=True))


def _gene_slides(dirs: dict[str, Path]) -> list[str]:
    return sorted({h5.stem for d in dirs.values() for h5 in d.glob("*.h5")})


def _truth(per_gene: pd.DataFrame, random_r: np.ndarray, dirs: dict[str, Path], sizes: dict[str, float],
           paths: Paths, cohort: str, fig_dir: Path, cfg: EvaluateDEConfig) -> dict[str, float]:
    """Planted-vs-null and heatmap-vs-lymphocyte numbers from the generator's ground truth."""
    from histcode.evaluation.de_truth import heatmap_truth, planted_vs_null
    from histcode.io.truth import read_gene_effects

    genes, out = planted_vs_null(per_gene, read_gene_effects(paths.ground_truth), random_r)
    write_csv(fig_dir / "truth_genes.csv", genes)
    de_plots.plot_planted_vs_null(genes, random_r, fig_dir / "truth_planted_vs_null.png",
                                  p_value=out["truth.planted_vs_null_wilcoxon_p"])
    if dirs:
        ref = paths.attention(cohort, cfg.truth_reference) if cfg.truth_reference else None
        hm, hm_out = heatmap_truth(dirs, paths.ground_truth, cohort, sizes, top_k=cfg.truth_top_k,
                                   min_density=cfg.truth_min_density,
                                   reference_dir=ref if ref is not None and ref.is_dir() else None)
        write_csv(fig_dir / "truth_heatmaps.csv", hm)
        de_plots.plot_heatmap_truth(hm, fig_dir / "truth_heatmaps.png")
        out.update(hm_out)
        _truth_map_figure(hm, dirs, sizes, paths, cohort, ref, fig_dir)
    return out


def _truth_map_figure(hm: pd.DataFrame, dirs: dict[str, Path], sizes: dict[str, float], paths: Paths,
                      cohort: str, ref: Path | None, fig_dir: Path) -> None:
    """Tile maps of the slide with the most lymphocyte-rich tiles: truth beside every attention source."""
    from histcode.evaluation.de_truth import truth_maps

    ok = hm[(hm["error"].fillna("") == "") & (hm["gene"] != "reference")]
    if ok.empty:
        return
    sid = str(ok.sort_values(["n_lymphocyte_tiles", "slide_id"], ascending=[False, True])["slide_id"].iloc[0])
    try:
        maps = truth_maps(dirs, paths.ground_truth, cohort, sid, sizes[sid],
                          ref if ref is not None and ref.is_dir() else None)
    except (OSError, KeyError, ValueError) as exc:
        log.warning("truth map figure of %s failed: %s", sid, exc)
        return
    de_plots.plot_truth_maps(maps, fig_dir / "truth_maps.png", f"{sid}: within-slide percentiles")
